#!/usr/bin/env bash
# Multi30k German -> English, raw text to BLEU, with the four nmt commands.
# Usage: bash examples/multi30k.sh [MULTI30K_FOLDER] [WORK_DIR=work/multi30k]
#   MULTI30K_FOLDER defaults to $MULTI30K_DIR, else ../shared/data/multi30k; it holds
#   train.de/en, val.de/en, test_2016_flickr.de/en and test_2017_flickr.de/en.
# Extra arguments for `nmt train` can go in NMT_TRAIN_ARGS, e.g. "--set train.max_minutes=20".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=${1:-${MULTI30K_DIR:-../shared/data/multi30k}}
WORK=${2:-work/multi30k}
for f in train.de train.en val.de val.en test_2016_flickr.de test_2016_flickr.en; do
  [ -f "$D/$f" ] || { echo "multi30k.sh: $D/$f not found (pass the Multi30k folder)" >&2; exit 2; }
done
mkdir -p "$WORK"
nmt preprocess --src de --tgt en --train "$D/train" --valid "$D/val" \
  --test "$D/test_2016_flickr" --test "$D/test_2017_flickr" --out "$WORK/data"
# shellcheck disable=SC2086
nmt train "$WORK/data" --out "$WORK/run" --config "$HERE/multi30k-de-en.yaml" ${NMT_TRAIN_ARGS:-}
for test in test_2016_flickr test_2017_flickr; do
  [ -f "$D/$test.de" ] || continue
  nmt translate "$WORK/run" --beam 5 --input "$D/$test.de" --output "$WORK/$test.hyp.en"
  echo "== $test"
  nmt eval --ref "$D/$test.en" "$WORK/$test.hyp.en" --metrics bleu,chrf
done
