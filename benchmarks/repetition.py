"""Repetition safeguards on a trained Multi30k run: repeated 3-grams and BLEU, with and without.

Two inputs: test_2016_flickr as it is, and "long" lines of GROUP consecutive test sentences
joined by a space (references joined alike), where an LSTM decoder loses its place more often.
For each decoding setting it reports BLEU (sacrebleu) and the share of outputs with a
repeated word 3-gram that their reference does not repeat (a 3-gram the output has twice or
more, the reference fewer times).

    python benchmarks/repetition.py /work/models/m30k [--data DIR] [--beam 5]

Writes benchmarks/results/repetition.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

from quality import ROOT, git_commit

from nmt_cli.evaluate import score_corpus
from nmt_cli.translate import Translator

GROUP = 4
SETTINGS: dict[str, dict[str, float]] = {
    "plain": {},
    "no-repeat-ngram 3": {"no_repeat_ngram": 3},
    "coverage-penalty 0.2": {"coverage_penalty": 0.2},
    "both": {"no_repeat_ngram": 3, "coverage_penalty": 0.2},
}


def trigrams(text: str) -> Counter[tuple[str, ...]]:
    words = text.lower().split()
    return Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))


def loops(hypothesis: str, reference: str) -> bool:
    """Does `hypothesis` repeat a 3-gram more often than `reference` does (and at least twice)?"""
    ref = trigrams(reference)
    return any(c >= 2 and c > ref[g] for g, c in trigrams(hypothesis).items())


def joined(lines: list[str], group: int) -> list[str]:
    return [" ".join(lines[i : i + group]) for i in range(0, len(lines) - group + 1, group)]


def measure(
    translator: Translator, sources: list[str], refs: list[str], beam: int, steer: dict
) -> dict[str, float]:
    start = time.perf_counter()
    hyps = translator.translate(sources, beam=beam, **steer)
    seconds = time.perf_counter() - start
    looping = sum(loops(h, r) for h, r in zip(hyps, refs, strict=True))
    return {
        "bleu": round(score_corpus(hyps, refs)[0].score, 2),
        "repeat_rate": round(100 * looping / len(hyps), 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--test", default="test_2016_flickr", help="test files: DATA/TEST.SRC|TGT")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--limit", type=int, default=0, help="only the first N test lines")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/repetition.json")
    args = parser.parse_args()
    translator = Translator.load(args.run)
    src = (args.data / f"{args.test}.{args.src}").read_text(encoding="utf-8").splitlines()
    ref = (args.data / f"{args.test}.{args.tgt}").read_text(encoding="utf-8").splitlines()
    if args.limit:
        src, ref = src[: args.limit], ref[: args.limit]
    inputs = {
        args.test: (src, ref),
        f"{args.test} x{GROUP} joined": (joined(src, GROUP), joined(ref, GROUP)),
    }
    rows = []
    for name, (sources, refs) in inputs.items():
        reference_rate = 100 * sum(loops(r, "") for r in refs) / len(refs)
        for setting, steer in SETTINGS.items():
            row = {"input": name, "setting": setting, "lines": len(sources)}
            row |= measure(translator, sources, refs, args.beam, steer)
            row["reference_repeat_rate"] = round(reference_rate, 2)
            rows.append(row)
            print(row, flush=True)
    record = {"run": str(args.run), "test": args.test, "lines": len(src), "beam": args.beam,
              "commit": git_commit(), "rows": rows}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("| input | setting | BLEU | outputs with a repeated 3-gram (%) | seconds |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['input']} | {r['setting']} | {r['bleu']} | {r['repeat_rate']} | {r['seconds']} |"
        )


if __name__ == "__main__":
    main()
