#!/usr/bin/env bash
# MHIST has no public data on these machines: run the whole MHIST pipeline end to end
# on a generated fixture in the release format (random 224x224 PNGs + annotations.csv)
# at 64 px, and record what every command printed in docs/results/mhist_fixture_pipeline.md.
# The accuracies are those of random images and mean nothing; the run shows that
# loading, validation, distillation (ConvNet-5 at 64 px), evaluation with balanced
# accuracy and AUC, and the pictures all work on MHIST-shaped data.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN/python" -c "import sys; sys.path.insert(0, 'tests'); from helpers import write_mhist; write_mhist('$work/MHIST', n_train=40, n_test=20)"
out=docs/results/mhist_fixture_pipeline.md
{
  echo "# MHIST pipeline on a generated fixture (64 px)"
  echo
  echo "Command: \`bash tests/benchmarks/mhist_fixture_pipeline.sh\`  "
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, no GPU  "
  echo "Data: 40 train / 20 test random 224x224 PNGs in the MHIST release format (not real MHIST)."
  echo
  for cmd in \
    "data check mhist --root $work" \
    "data info mhist --root $work --image-size 64" \
    "distill mhist --root $work --image-size 64 --ipc 2 --iterations 20 --batch-real 8 --out $work/mhist.safetensors" \
    "show $work/mhist.safetensors --out $work/grid.png" \
    "evaluate $work/mhist.safetensors --root $work --runs 2 --epochs 20 --json $work/eval.json"; do
    echo "\`\`\`"
    echo "\$ datadam ${cmd//$work/FIXTURE}"
    COLUMNS=100 "$BIN/datadam" $cmd 2>&1 | sed "s#$work#FIXTURE#g"
    echo "\`\`\`"
  done
  echo
  echo "Metrics of the first evaluation run (keys show balanced accuracy and AUC are reported):"
  echo
  echo "\`\`\`"
  "$BIN/python" -c "import json; r=json.load(open('$work/eval.json'))['runs']; k=next(iter(r)); print(k, {m: v for m, v in r[k][0].items() if m != 'per_class_accuracy'})"
  echo "\`\`\`"
} > "$out"
echo "wrote $out"
