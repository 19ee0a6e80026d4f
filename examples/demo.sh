#!/usr/bin/env bash
# The whole pipeline on a synthetic task generated here, offline: data -> preprocess ->
# train (a few minutes on a CPU) -> translate held-out examples -> scores.
# Usage: bash examples/demo.sh [WORK_DIR=demo]   (expects `nmt` on PATH; `make demo` does that)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:-demo}
mkdir -p "$WORK"
python "$HERE/demo_data.py" "$WORK/text" --seed 1 --train 20000 --valid 300 --test 500
nmt preprocess --src src --tgt tgt --train "$WORK/text/train" --valid "$WORK/text/valid" \
  --test "$WORK/text/test" --out "$WORK/data" --vocab-size 120 --model-type bpe >/dev/null
rm -rf "$WORK/run"
nmt train "$WORK/data" --out "$WORK/run" --config "$HERE/demo.yaml" --seed 1
nmt translate "$WORK/run" --input "$WORK/text/test.src" --output "$WORK/test.hyp"
echo
echo "== held-out test set (500 examples)"
nmt eval --ref "$WORK/text/test.tgt" "$WORK/test.hyp" --metrics bleu,chrf
python - "$WORK/text/test.src" "$WORK/text/test.tgt" "$WORK/test.hyp" <<'PY'
import sys
src, ref, hyp = (open(p, encoding="utf-8").read().splitlines() for p in sys.argv[1:])
for task, is_task in (("dates", lambda s: "+" not in s), ("addition", lambda s: "+" in s)):
    rows = [(r, h) for s, r, h in zip(src, ref, hyp) if is_task(s)]
    exact = sum(r == h for r, h in rows)
    print(f"exact match, {task}: {exact}/{len(rows)} = {100 * exact / len(rows):.1f}%")
print("\nsome translations:")
for s, r, h in list(zip(src, ref, hyp))[:8]:
    print(f"  {s:<32} -> {h:<12} {'ok' if h == r else 'expected ' + r}")
PY
