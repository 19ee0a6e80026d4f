#!/usr/bin/env bash
# The whole pipeline on a synthetic task generated here, offline: data -> preprocess ->
# train (a fixed 2,000 steps: about 6 minutes on 2 idle CPU cores) -> translate held-out
# examples -> scores -> a one-line verdict. Exits 1 when the model fell short of 95 % exact
# match on either task (see examples/demo_verdict.py).
# Usage: bash examples/demo.sh [WORK_DIR=demo]   (expects `nmt` on PATH; `make demo` does that)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:-demo}
mkdir -p "$WORK"
start=$SECONDS
python "$HERE/demo_data.py" "$WORK/text" --seed 1 --train 20000 --valid 300 --test 500
nmt preprocess --src src --tgt tgt --train "$WORK/text/train" --valid "$WORK/text/valid" \
  --test "$WORK/text/test" --out "$WORK/data" --vocab-size 120 --model-type bpe >/dev/null
rm -rf "$WORK/run"
nmt train "$WORK/data" --out "$WORK/run" --config "$HERE/demo.yaml" --seed 1
nmt translate "$WORK/run" --input "$WORK/text/test.src" --output "$WORK/test.hyp"
echo
echo "== held-out test set (500 examples)"
nmt eval --ref "$WORK/text/test.tgt" "$WORK/test.hyp" --metrics bleu,chrf
echo "(the demo took $((SECONDS - start)) s)"
python "$HERE/demo_verdict.py" "$WORK/text/test.src" "$WORK/text/test.tgt" "$WORK/test.hyp"
