#!/usr/bin/env bash
# Fine-tuning, worked example (offline, a few CPU minutes): a model trained on the demo's dates
# task alone learns its addition task with `nmt train --init-from`, on data encoded with the
# base model's tokenizer (`nmt preprocess --tokenizer-from`). Prints, for the base and the
# fine-tuned model on both tasks' test sets: exact match, chrF, and the log-probability per
# reference token (`nmt score`); and the steps each stage took.
# Usage: bash examples/finetune.sh [WORK_DIR=finetune]   (expects `nmt` on PATH)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:-finetune}
TEXT="$WORK/text"
mkdir -p "$WORK"
rm -rf "$WORK/base" "$WORK/tuned"
python "$HERE/demo_data.py" "$TEXT" --seed 1 --train 16000 --valid 200 --test 400 >/dev/null
python - "$TEXT" <<'PY'  # one folder per task: dates/ and addition/
import sys
from pathlib import Path
text = Path(sys.argv[1])
for split in ("train", "valid", "test"):
    src = (text / f"{split}.src").read_text(encoding="utf-8").splitlines()
    tgt = (text / f"{split}.tgt").read_text(encoding="utf-8").splitlines()
    for task, wanted in (("dates", False), ("addition", True)):
        rows = [(s, t) for s, t in zip(src, tgt) if ("+" in s) == wanted]
        (text / task).mkdir(exist_ok=True)
        for side, column in (("src", 0), ("tgt", 1)):
            lines = "".join(row[column] + "\n" for row in rows)
            (text / task / f"{split}.{side}").write_text(lines, encoding="utf-8")
PY

echo "== 1. base model: the dates task alone (its own tokenizer)"
nmt -q preprocess --src src --tgt tgt --train "$TEXT/dates/train" --valid "$TEXT/dates/valid" \
  --out "$WORK/data-dates" --vocab-size 60 --model-type bpe >/dev/null
nmt -q train "$WORK/data-dates" --out "$WORK/base" --config "$HERE/finetune.yaml" --seed 1

echo "== 2. fine-tuned: the addition task, encoded with the base model's tokenizer"
# The base tokenizer never saw "+": it becomes <unk>, which the model learns to read as one.
nmt -q preprocess --src src --tgt tgt --train "$TEXT/addition/train" \
  --valid "$TEXT/addition/valid" --out "$WORK/data-addition" --tokenizer-from "$WORK/base" \
  >/dev/null
# Only training settings change. BLEU is 0 for one-word outputs ("168"), so the best
# checkpoint is chosen by validation perplexity here.
nmt -q train "$WORK/data-addition" --out "$WORK/tuned" --init-from "$WORK/base" \
  --set train.max_steps=2000 --set train.valid_every=500 --set train.stop_metric=ppl

echo "== 3. both models on both tasks' test sets (greedy)"
for model in base tuned; do
  for task in dates addition; do
    nmt -q translate "$WORK/$model" --input "$TEXT/$task/test.src" --output "$WORK/$model.$task.hyp"
    nmt -q score "$WORK/$model" --src "$TEXT/$task/test.src" --tgt "$TEXT/$task/test.tgt" \
      --output "$WORK/$model.$task.scores"
  done
done
python - "$WORK" <<'PY'
import sys
from pathlib import Path
import sacrebleu
work = Path(sys.argv[1])
print(f"{'model':<6} {'task':<9} {'exact match':>11} {'chrF':>6} {'log-prob/token':>14}")
for model in ("base", "tuned"):
    for task in ("dates", "addition"):
        refs = (work / "text" / task / "test.tgt").read_text(encoding="utf-8").splitlines()
        hyps = (work / f"{model}.{task}.hyp").read_text(encoding="utf-8").splitlines()
        rows = [line.split("\t") for line in (work / f"{model}.{task}.scores").read_text().splitlines()]
        per_token = sum(float(r[0]) for r in rows) / sum(int(r[2]) for r in rows)
        exact = 100 * sum(h == r for h, r in zip(hyps, refs)) / len(refs)
        chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
        print(f"{model:<6} {task:<9} {exact:>10.1f}% {chrf:>6.1f} {per_token:>14.3f}")
PY
