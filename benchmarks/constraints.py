"""Lexically constrained decoding on Multi30k: BLEU and time with and without constraints.

Each test_2016_flickr sentence gets one constraint from its reference: the reference word
rarest in the training targets (`train.en`; ties: the longer word, then the earlier). The test
set is translated `--rounds` times through the library (`Translator`, beam 5), plain and
constrained in turn, since this machine's speed drifts within minutes; the report has BLEU,
the share of outputs that contain their word (as pieces, and as a whole word), and the median
seconds of each.

With `--baseline TREE` (a checkout without constraints, e.g. `git archive BASE | tar -x -C
DIR`), it also times plain `nmt translate` of that tree and of this one in turn (beam 5 and
greedy, the seconds `nmt translate` reports) and checks that both write identical outputs:
unused, constraints must cost nothing.

    python benchmarks/constraints.py --model /work/models/m30k [--data DIR] [--rounds 3]
        [--baseline DIR] [--out benchmarks/results/constraints.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ab import commit, cpu_model

from nmt_cli.errors import NmtError
from nmt_cli.evaluate import score_corpus
from nmt_cli.textio import check_not_input
from nmt_cli.translate import Translator

ROOT = Path(__file__).resolve().parents[1]
WORD = re.compile(r"\w+(?:['-]\w+)*")


def rarest_words(references: list[str], counts: collections.Counter[str]) -> list[str]:
    """Each reference's word that is rarest in the training targets (ties: longer, earlier)."""
    out = []
    for ref in references:
        words = WORD.findall(ref)
        out.append(min(words, key=lambda w: (counts[w], -len(w))) if words else "")
    return out


def has_word(text: str, word: str, whole: bool) -> bool:
    if whole:
        return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None
    return word in text


def timed_translations(
    translator: Translator, sources: list[str], constraints: list[list[str]] | None
) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = translator.translate(sources, constraints=constraints)
    return time.perf_counter() - start, out


def library_rounds(args: argparse.Namespace, sources: list[str], refs: list[str]) -> dict:
    """Plain and constrained translation of the test set, interleaved, in this process."""
    counts = collections.Counter(WORD.findall((args.data / "train.en").read_text("utf-8")))
    words = rarest_words(refs, counts)
    constraints = [[w] if w else [] for w in words]
    translator = Translator.load(args.model)
    translator.translate(sources[:64])  # warm-up: kernels, allocator
    seconds: dict[str, list[float]] = {"plain": [], "constrained": []}
    outputs: dict[str, list[str]] = {}
    for r in range(args.rounds):
        for name, cons in (("plain", None), ("constrained", constraints)):
            took, outputs[name] = timed_translations(translator, sources, cons)
            seconds[name].append(round(took, 2))
            print(f"round {r + 1} {name}: {took:.1f} s", flush=True)
    result: dict = {"constraint": "the reference's rarest word in train.en, one per sentence"}
    for name, out in outputs.items():
        result[name] = {
            "bleu": round(score_corpus(out, refs)[0].score, 2),
            "with_word_pieces": sum(has_word(o, w, False) for o, w in zip(out, words, strict=True)),
            "with_whole_word": sum(has_word(o, w, True) for o, w in zip(out, words, strict=True)),
            "seconds": seconds[name],
            "median_s": round(statistics.median(seconds[name]), 2),
        }
    result["sentences"] = len(sources)
    result["words_unseen_in_train"] = sum(counts[w] == 0 for w in words)
    result["cost"] = round(result["constrained"]["median_s"] / result["plain"]["median_s"], 3)
    return result


def nmt_translate(tree: Path, model: Path, source: Path, beam: int, out: Path) -> float:
    """`nmt translate` with the tree's own package; the translating seconds it reports."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    args = [
        "translate",
        str(model),
        "--beam",
        str(beam),
        "--precision",
        "fp32",
        "--batch-size",
        "64",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "nmt_cli", *args, "--input", str(source), "--output", str(out)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"constraints.py: nmt translate failed in {tree}:\n{result.stderr[-3000:]}")
    timing = re.search(r"\) in ([\d.]+) s", result.stderr.strip().splitlines()[-1])
    assert timing, f"no speed line from nmt translate: {result.stderr[-500:]}"
    return float(timing.group(1))


def baseline_rounds(args: argparse.Namespace, sources: list[str]) -> dict:
    """Plain `nmt translate` of the baseline tree and this one, interleaved; same outputs?"""
    trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    work = Path(tempfile.mkdtemp(prefix="constraints-"))
    source = work / "source.de"
    source.write_text("\n".join(sources) + "\n", encoding="utf-8")
    result: dict = {"baseline": commit(trees["baseline"]) or str(trees["baseline"])}
    for beam in (5, 1):
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name, tree in trees.items():
                took = nmt_translate(tree, args.model, source, beam, work / f"{name}-{beam}.txt")
                seconds[name].append(took)
                print(f"beam {beam} round {r + 1} {name}: {took:.2f} s", flush=True)
        ratios = [b / t for b, t in zip(seconds["baseline"], seconds["this"], strict=True)]
        same = (work / f"baseline-{beam}.txt").read_bytes() == (
            work / f"this-{beam}.txt"
        ).read_bytes()
        result[f"beam{beam}"] = {
            "seconds": seconds,
            "speed_this_over_baseline": {
                "median": round(statistics.median(ratios), 3),
                "min": round(min(ratios), 3),
                "max": round(max(ratios), 3),
            },
            "identical_outputs": same,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="run folder (uses best.pt)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, help="only the first N sentences (a quick try)")
    parser.add_argument("--baseline", type=Path, help="a tree without constraints, to compare")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "constraints.json"
    )
    args = parser.parse_args()
    args.model = args.model.resolve()  # the baseline's `nmt translate` runs in its own tree
    source, ref = args.data / f"{args.split}.de", args.data / f"{args.split}.en"
    inputs = [source, ref, args.data / "train.en", args.model, args.model / "best.pt"]
    check_not_input(args.out, inputs)  # the report is written at the end: refuse it now
    sources = source.read_text(encoding="utf-8").splitlines()[: args.limit]
    refs = ref.read_text(encoding="utf-8").splitlines()[: args.limit]
    result = {
        "commit": commit(ROOT),
        "cpu": cpu_model(),
        "split": args.split,
        "rounds": args.rounds,
        "limit": args.limit,
        "library": library_rounds(args, sources, refs),
    }
    if args.baseline:
        result["unconstrained_speed"] = baseline_rounds(args, sources)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except NmtError as e:  # a missing model, an input given as --out: one line
        sys.exit(f"constraints.py: {e}")
