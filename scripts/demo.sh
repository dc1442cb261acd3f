#!/usr/bin/env bash
# The embedded default on 2 CPU cores: mnist-5k clean sets, the MagNet classifier, the six test attacks.
# Resumable: a step whose output already exists is skipped (outputs appear only when complete).
set -euo pipefail
out=${1:-results/demo}
mkdir -p "$out"
start=$(date +%s)
step() {  # step OUTPUT COMMAND...: run unless OUTPUT exists, print its wall time
  local target=$1; shift
  if [ -e "$target" ]; then echo "skip   $target (exists)"; return; fi
  local t0=$(date +%s)
  "$@"
  echo "done   $target in $(( $(date +%s) - t0 )) s"
}
step "$out/mnist-5k_train.h5" madvae gen --attack none --dataset mnist-5k --split train --out "$out/mnist-5k_train.h5"
step "$out/mnist-5k_test.h5" madvae gen --attack none --dataset mnist-5k --split test --out "$out/mnist-5k_test.h5"
step "$out/magnet.pt" madvae classifier --train "$out/mnist-5k_train.h5" --test "$out/mnist-5k_test.h5" \
  --arch magnet --epochs 8 --out "$out/magnet.pt"
for attack in fgsm rfgsm cw mifgsm pgd single-pixel; do
  quick=(); [ "$attack" = cw ] && quick=(--quick)  # full CW (1,500 iterations x 9 steps) is a GPU job
  step "$out/test_$attack.h5" madvae gen --attack "$attack" --preset test "${quick[@]}" \
    --input "$out/mnist-5k_test.h5" --classifier "$out/magnet.pt" --out "$out/test_$attack.h5"
done
madvae inspect "$out"/test_*.h5 "$out/magnet.pt"
echo "demo finished in $(( $(date +%s) - start )) s; outputs in $out"
