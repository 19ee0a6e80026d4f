#!/usr/bin/env bash
# Back-translation with sampling (Sennrich et al., 2016; Edunov et al., 2018), SRC -> TGT:
#   1. train a reverse TGT->SRC model on the parallel part;
#   2. sample SRC translations of TGT-only text with it (`nmt translate --sample`);
#   3. train SRC->TGT on the union of real and synthetic pairs, and, for comparison, on the
#      parallel part alone, with the same budget; score both on the test set.
# Usage: bash examples/back_translation.sh [DATA_FOLDER] [WORK_DIR=work/back-translation]
# DATA_FOLDER holds train/VALID/TEST.{SRC,TGT}; by default Multi30k de->en ($MULTI30K_DIR).
# The TGT-only text is train.TGT after the first PARALLEL lines (its SRC side is unused).
# Environment (defaults): SRC=de TGT=en VALID=val TEST=test_2016_flickr, PARALLEL=10000 pairs,
#   MONO=10000 lines, MINUTES=10 per training (or STEPS=N: a step budget, the same updates
#   however busy the machine), CONFIG=examples/multi30k-de-en.yaml, VALID_EVERY=100,
#   SAMPLE_ARGS="--sample --top-p 0.9 --seed 1", NMT="nmt" (e.g. "python -m nmt_cli").
# The demo data, small: python examples/demo_data.py D && SRC=src TGT=tgt VALID=valid TEST=test
#   PARALLEL=2000 MONO=4000 MINUTES=3 CONFIG=examples/demo.yaml bash examples/back_translation.sh D
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=${1:-${MULTI30K_DIR:-../shared/data/multi30k}}
WORK=${2:-work/back-translation}
SRC=${SRC:-de} TGT=${TGT:-en} VALID=${VALID:-val} TEST=${TEST:-test_2016_flickr}
PARALLEL=${PARALLEL:-10000}
MONO=${MONO:-10000}
MINUTES=${MINUTES:-10}
CONFIG=${CONFIG:-$HERE/multi30k-de-en.yaml}
SAMPLE_ARGS=${SAMPLE_ARGS:---sample --top-p 0.9 --seed 1}
read -r -a NMT <<< "${NMT:-nmt}"
for f in "train.$SRC" "train.$TGT" "$VALID.$SRC" "$VALID.$TGT" "$TEST.$SRC" "$TEST.$TGT"; do
  [ -f "$D/$f" ] || { echo "back_translation.sh: $D/$f not found" >&2; exit 2; }
done
mkdir -p "$WORK"
if [ -n "${STEPS:-}" ]; then
  BUDGET=(--set "train.max_steps=$STEPS" --set train.max_minutes=0)
else
  BUDGET=(--set "train.max_minutes=$MINUTES")
fi
train() {  # DATA OUT: a budgeted run; validation often enough that best.pt exists
  "${NMT[@]}" -q train "$1" --out "$2" --config "$CONFIG" --seed 1 "${BUDGET[@]}" \
    --set "train.valid_every=${VALID_EVERY:-100}"
}
score() {  # RUN NAME: beam-5 BLEU on the test set, one line
  "${NMT[@]}" -q translate "$1" --beam 5 --input "$D/$TEST.$SRC" --output "$WORK/$2.hyp"
  echo "== $2: $("${NMT[@]}" eval --ref "$D/$TEST.$TGT" "$WORK/$2.hyp" --metrics bleu | head -1)"
}

# The parallel part, and TGT-only text (sed, not tail | head: no SIGPIPE under pipefail).
for l in "$SRC" "$TGT"; do head -n "$PARALLEL" "$D/train.$l" > "$WORK/parallel.$l"; done
sed -n "$((PARALLEL + 1)),$((PARALLEL + MONO))p" "$D/train.$TGT" > "$WORK/mono.$TGT"

# 1. The reverse model.
"${NMT[@]}" -q preprocess --src "$TGT" --tgt "$SRC" --train "$WORK/parallel" --valid "$D/$VALID" \
  --out "$WORK/data-reverse"
train "$WORK/data-reverse" "$WORK/reverse"

# 2. Sampled back-translations: one SRC sentence per TGT line.
# shellcheck disable=SC2086
"${NMT[@]}" translate "$WORK/reverse" $SAMPLE_ARGS --input "$WORK/mono.$TGT" --output "$WORK/mono.$SRC"

# 3. Forward models: the parallel part alone, and the union.
for l in "$SRC" "$TGT"; do cat "$WORK/parallel.$l" "$WORK/mono.$l" > "$WORK/union.$l"; done
for corpus in parallel union; do
  "${NMT[@]}" -q preprocess --src "$SRC" --tgt "$TGT" --train "$WORK/$corpus" --valid "$D/$VALID" \
    --out "$WORK/data-$corpus"
  train "$WORK/data-$corpus" "$WORK/forward-$corpus"
  score "$WORK/forward-$corpus" "$corpus"
done
