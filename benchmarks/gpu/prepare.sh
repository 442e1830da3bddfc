#!/usr/bin/env bash
# Run HERE (a machine with PyPI) before a GPU session: fetches what the lent GPU machine lacks into .whl/
# (git-ignored), for its Python 3.12. The GPU machine reaches no network; the device tool carries .whl/.
#   bash benchmarks/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
wheel() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$@"
}
# seqzoo's own dependencies missing from the GPU image (it has torch, lightning, pandas, ... already)
wheel biopython jsonargparse docstring-parser typeshed-client
# peers of benchmarks/kernels.py that are pure Python + Triton / JIT CUDA
wheel mlstm-kernels fla-core flashrnn
# peers that compile CUDA code: their source archives, built on the GPU machine by run.sh. Fetched from
# PyPI's JSON API (sha256 checked) because `pip download` of an sdist runs its build, which needs CUDA.
python3 - <<'PY'
import hashlib, json, urllib.request
for name in ("causal-conv1d", "mamba-ssm"):
    meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60))
    sdist = next(u for u in meta["urls"] if u["packagetype"] == "sdist")
    data = urllib.request.urlopen(sdist["url"], timeout=300).read()
    assert hashlib.sha256(data).hexdigest() == sdist["digests"]["sha256"], f"{name}: checksum mismatch"
    open(f".whl/{sdist['filename']}", "wb").write(data)
    print("fetched", sdist["filename"])
PY
ls -la .whl
du -sh .whl
