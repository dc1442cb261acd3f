#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (run from the repository root): checks the CUDA path end to end
# and measures it. Writes everything under $OUT (default bench/gpu-out): the benchmark suite on the device
# (images/s per step, ratios to the reference loop, and the paper grid's estimated device-hours), the CUDA-only
# tests, and one pass of the CLI chain gen -> classifier -> gen -> train (bf16 too) -> attack with --device.
#   DEVICE=cuda (default) | cpu     QUICK=1: the bench's smoke sizes (how this script is checked on a CPU)
# Python packages the GPU image lacks (advertorch, mlxtend, umap-learn, ...) travel as wheels in ./.whl.
set -euo pipefail
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-bench/gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "== $* ($(date +%T))"; }

if [ -d .whl ]; then
    log "installing carried wheels"
    $PY -m pip install --quiet --no-index --find-links .whl --no-deps .whl/*.whl
fi
$PY -c "import madvae" 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY - <<PYEOF
import torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PYEOF

log "benchmark suite on $DEVICE"
$PY bench/run.py --device "$DEVICE" ${QUICK:+--quick} --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"

log "CUDA tests"
$PY -m pytest -q -p no:cacheprovider tests/test_precision.py -k "cuda or bf16" 2>&1 | tee "$OUT/tests.log" || true

log "CLI chain with --device $DEVICE"
work=$(mktemp -d)
limit=$([ -n "${QUICK:-}" ] && echo 256 || echo 3500)
test_limit=$([ -n "${QUICK:-}" ] && echo 128 || echo 1000)
chain() {
    $PY -m madvae gen --dataset mnist-5k --split train --limit "$limit" --out "$work/train.h5" --no-progress
    $PY -m madvae gen --dataset mnist-5k --split test --limit "$test_limit" --out "$work/test.h5" --no-progress
    $PY -m madvae classifier --train "$work/train.h5" --test "$work/test.h5" --epochs 2 --device "$DEVICE" \
        --out "$work/magnet.pt" --no-progress
    $PY -m madvae gen --attack fgsm --preset train-0 -i "$work/train.h5" --classifier "$work/magnet.pt" \
        --batch-size 4096 --device "$DEVICE" --out "$work/fgsm.h5" --no-progress
    $PY -m madvae gen --attack pgd -i "$work/test.h5" --classifier "$work/magnet.pt" --batch-size 4096 \
        --device "$DEVICE" --out "$work/pgd.h5" --no-progress
    for precision in fp32 bf16; do
        $PY -m madvae train "$work/fgsm.h5" --loss vanilla --epochs 2 --batch-size 512 --precision $precision \
            --device "$DEVICE" --out "$work/vae-$precision.pt" --no-progress
        $PY -m madvae attack --set "$work/pgd.h5" --classifier "$work/magnet.pt" --vae "$work/vae-$precision.pt" \
            --device "$DEVICE" --out "$OUT/pgd-$precision.json" --no-progress
    done
}
/usr/bin/time -v bash -c "$(declare -f chain); PY=$PY work=$work limit=$limit test_limit=$test_limit DEVICE=$DEVICE OUT=$OUT; chain" \
    > "$OUT/chain.log" 2>&1 || { tail -20 "$OUT/chain.log"; exit 1; }
grep -E "trained|defended|Elapsed|Maximum resident" "$OUT/chain.log"
rm -rf "$work"
log "done: $OUT"
