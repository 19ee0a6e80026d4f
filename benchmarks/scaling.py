"""How cost grows: training tokens/s against batch size, translation time against length.

- Training: the peer workload (configs/peer-workload.yaml) with `train.batch_tokens` of
  512 ... 8192, each run long enough for ~150k target tokens, steady tokens/s from its log.
- Translation: inputs of exactly N words cut from test_2016_flickr (consecutive sentences
  joined), one batch of 64 per length, beam 5 and greedy, timed in one process after a
  warm-up; seconds per batch, per source word, and per output word (the decoder's work follows
  the output length: flat per output word when cost grows linearly).

    python benchmarks/scaling.py --model RUN [--data MULTI30K] [--precision fp32]

Writes benchmarks/results/scaling-PRECISION.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from quality import git_commit
from speed import CONFIG, ROOT, nmt_cmd, steady_tokens_per_s, timed

from nmt_cli.translate import Translator

BATCH_TOKENS = (512, 1024, 2048, 4096, 8192)
LENGTHS = (5, 10, 20, 40, 80)  # source words


def train_rate(data: Path, work: Path, batch_tokens: int, precision: str) -> dict[str, float]:
    steps = max(30, 150_000 // batch_tokens)
    run = work / f"scaling-{precision}-{batch_tokens}"
    subprocess.run(["rm", "-rf", str(run)], check=True)
    sets = {
        "train.max_steps": steps,
        "train.batch_tokens": batch_tokens,
        "train.precision": precision,
        "train.log_every": max(5, steps // 6),
        "train.valid_every": steps,
    }
    cmd = nmt_cmd("train", str(data), "--out", str(run), "--config", str(CONFIG))
    cmd += [a for key, value in sets.items() for a in ("--set", f"{key}={value}")]
    _, rss, _ = timed(cmd)
    rate = steady_tokens_per_s(run / "train.log", after_step=steps // 3)
    return {"batch_tokens": batch_tokens, "steps": steps, "tokens_per_s": round(rate),
            "peak_rss_mib": round(rss)}  # fmt: skip


def inputs_of_length(sentences: list[str], words: int, count: int) -> list[str]:
    """`count` inputs of exactly `words` words, cut from the running text of `sentences`."""
    text = " ".join(sentences).split()
    return [" ".join(text[i * words : (i + 1) * words]) for i in range(count)]


def translate_times(model: Path, source: Path, precision: str) -> list[dict[str, float]]:
    translator = Translator.load(model, precision=precision)
    sentences = source.read_text(encoding="utf-8").splitlines()
    translator.translate(sentences[:64], beam=5)  # warm-up
    rows = []
    for words in LENGTHS:
        batch = inputs_of_length(sentences, words, 64)
        row: dict[str, float] = {"words": words}
        for name, beam in (("beam5", 5), ("greedy", 1)):
            start = time.perf_counter()
            out = translator.translate(batch, beam=beam)
            seconds = time.perf_counter() - start
            row[f"{name}_s"] = round(seconds, 3)
            row[f"{name}_ms_per_word"] = round(1000 * seconds / (64 * words), 2)
            output_words = sum(len(o.split()) for o in out)
            row[f"{name}_output_words"] = round(output_words / 64, 1)
            # The decoder's work follows the output length, which the model chooses.
            row[f"{name}_ms_per_output_word"] = round(1000 * seconds / output_words, 2)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--model", type=Path, required=True, help="run folder to translate with")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "speed")
    parser.add_argument("--precision", default="fp32", help="training and translation precision")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    encoded = args.work / "data"  # speed.py's preprocessed peer data
    source = args.data / "test_2016_flickr.de"
    if not source.is_file():  # before the training runs, not after them
        parser.error(f"{source} is missing: pass --data MULTI30K_DIR")
    if not args.skip_train and not (encoded / "meta.json").is_file():
        parser.error(f"{encoded} is missing: run benchmarks/speed.py once first")
    results: dict[str, object] = {"precision": args.precision}
    if not args.skip_train:
        train = []
        for batch_tokens in BATCH_TOKENS:
            train.append(train_rate(encoded, args.work, batch_tokens, args.precision))
            print(train[-1], flush=True)
        results["train"] = train
    results["translate"] = translate_times(args.model, source, args.precision)
    results["commit"] = git_commit()
    path = ROOT / "benchmarks" / "results" / f"scaling-{args.precision}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    if "train" in results:
        print("\n| target tokens per batch | steps | target tokens/s | peak RSS MiB |")
        print("|---|---|---|---|")
        for r in results["train"]:  # type: ignore[attr-defined]
            print(f"| {r['batch_tokens']:,} | {r['steps']} | {r['tokens_per_s']:,} | "
                  f"{r['peak_rss_mib']:,} |")  # fmt: skip
    print("\n| source words | search | s / 64 inputs | output words | ms per source word | "
          "ms per output word |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in results["translate"]:  # type: ignore[attr-defined]
        for name in ("beam5", "greedy"):
            cells = (f"{r[name + key]}" for key in ("_s", "_output_words", "_ms_per_word",
                                                     "_ms_per_output_word"))  # fmt: skip
            print(f"| {r['words']} | {name} | " + " | ".join(cells) + " |")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
