#!/usr/bin/env bash
# Run ON the lent GPU machine (device tool, carry [".whl"]) after prepare.sh: installs seqzoo and the peers,
# then runs every GPU benchmark and leaves their results (and logs) in $OUT.
#   bash benchmarks/gpu/run.sh                 # all: kernels at 1K..256K, hybridna-small memory at 8K..64K
#   SKIP_BUILD=1 LENGTHS=4096,16384 bash benchmarks/gpu/run.sh   # no mamba-ssm / causal-conv1d build, fewer T
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
# seqzoo itself, into the image's environment (its torch, lightning, pandas... are already there)
python3 -m pip install -q --no-deps --no-build-isolation --no-index .
if [ -z "${SKIP_BUILD:-}" ]; then
  # Hopper only, so the CUDA builds take minutes, not tens of minutes
  export TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE
  for pkg in causal_conv1d mamba_ssm; do
    src=$(ls .whl/${pkg}-*.tar.gz 2>/dev/null | head -1)
    [ -n "$src" ] && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site "$src" \
      2>&1 | tail -3 | tee -a "$OUT/build.log"
  done
fi
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/device.txt"
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
python3 benchmarks/kernels.py --lengths "${LENGTHS:-1024,4096,16384,65536,262144}" --write "$OUT/RESULTS.md" \
  2>&1 | tee "$OUT/kernels.log"
python3 benchmarks/memory.py --write "$OUT/RESULTS.md" 2>&1 | tee "$OUT/memory.log"
