#!/usr/bin/env bash
# Ship the ETTh1 horizon-96 forecasters that benchmarks/forecasting.py kept (--keep DIR) as the bundled snapshots
# zoo/weights/<entry>/: `zoo test` of the entry's own recipe on the kept checkpoint logs the test metrics the card
# reports, then `zoo export` writes config.json + model.safetensors + README.md. Prints each snapshot's sha256
# for the entry's Weights(sha256=...) in zoo/entries/forecasting.py.
#
#   bash benchmarks/ship_forecasting_weights.sh KEEP_DIR [entry ...]
set -euo pipefail
keep=$(cd "$1" && pwd); shift
entries=("$@")
[ ${#entries[@]} -gt 0 ] || entries=(attn-ts-small hyena-ts-small mamba2-ts-small xlstm-ts-small hybrid-ts-small)
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${entries[@]}"; do
    ckpt="$keep/etth1-$entry-h96-seed0.ckpt"
    rm -rf "$work/lightning_logs"
    (cd "$work" && zoo test --config "recipe://forecasting/$entry/etth1-96" --ckpt_path "$ckpt" \
        --trainer.enable_progress_bar false > "$work/test-$entry.log")
    run="$work/lightning_logs/version_0"
    zoo export "$ckpt" "$repo/zoo/weights/$entry" --metrics "$run/metrics.csv" --run-config "$run/config.yaml" \
        --dataset etth1
    sha256sum "$repo/zoo/weights/$entry/model.safetensors"
done
