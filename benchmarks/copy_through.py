"""Copy-through on Multi30k: how often numbers come out of translation exactly as they went in.

The test set: test_2016_flickr sentences that contain digits, plus generated ones: every
sentence whose German side contains a number word (zwei .. zehn) and whose reference holds the
English one gets both replaced by the same random number (2..999, seeded), e.g. "Zwei Hunde"
/ "Two dogs" -> "417 Hunde" / "417 dogs". Preservation is the share of source numbers that
appear, as a whole token, in the output (each occurrence counted once).

    python benchmarks/copy_through.py RUN [--data DIR] [--beam 5]

Writes benchmarks/results/copy-through.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

from quality import ROOT, git_commit

from nmt_cli.copy_through import translate_protected
from nmt_cli.evaluate import score_corpus
from nmt_cli.protect import Protector
from nmt_cli.translate import Translator

NUMBER_WORDS = {
    "zwei": "two", "drei": "three", "vier": "four", "fünf": "five", "sechs": "six",
    "sieben": "seven", "acht": "eight", "neun": "nine", "zehn": "ten",
}  # fmt: skip
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")


def numbered(src: list[str], ref: list[str], seed: int = 1) -> tuple[list[str], list[str]]:
    """The sentence pairs with digits, and the generated ones (see the module docstring)."""
    rng = random.Random(seed)
    out_src, out_ref = [], []
    for s, r in zip(src, ref, strict=True):
        if NUMBER.search(s):
            out_src.append(s)
            out_ref.append(r)
            continue
        for de, en in NUMBER_WORDS.items():
            de_hit = re.search(rf"\b{de}\b", s, re.IGNORECASE)
            en_hit = re.search(rf"\b{en}\b", r, re.IGNORECASE)
            if de_hit and en_hit:
                n = str(rng.randint(2, 999))
                out_src.append(s[: de_hit.start()] + n + s[de_hit.end() :])
                out_ref.append(r[: en_hit.start()] + n + r[en_hit.end() :])
                break
    return out_src, out_ref


def preserved(sources: list[str], outputs: list[str]) -> tuple[int, int, int]:
    """(numbers in the sources, of them found verbatim in the outputs, lines with all kept)."""
    total = kept = whole = 0
    for s, o in zip(sources, outputs, strict=True):
        numbers = NUMBER.findall(s)
        found = NUMBER.findall(o)
        hits = 0
        for n in numbers:
            if n in found:
                found.remove(n)
                hits += 1
        total, kept, whole = total + len(numbers), kept + hits, whole + (hits == len(numbers))
    return total, kept, whole


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
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/copy-through.json")
    args = parser.parse_args()
    translator = Translator.load(args.run)
    src = (args.data / f"{args.test}.{args.src}").read_text(encoding="utf-8").splitlines()
    ref = (args.data / f"{args.test}.{args.tgt}").read_text(encoding="utf-8").splitlines()
    if args.limit:
        src, ref = src[: args.limit], ref[: args.limit]
    sources, refs = numbered(src, ref)
    rows = []
    for setting in ("plain", "--protect"):
        start = time.perf_counter()
        if setting == "plain":
            hyps = translator.translate(sources, beam=args.beam)
        else:
            results = translate_protected(translator, sources, Protector(), beam=args.beam)
            hyps = [r[0].text for r in results]
        seconds = time.perf_counter() - start
        total, kept, whole = preserved(sources, hyps)
        rows.append({
            "setting": setting, "lines": len(sources), "numbers": total,
            "numbers_kept_pct": round(100 * kept / total, 1),
            "lines_all_kept_pct": round(100 * whole / len(sources), 1),
            "bleu": round(score_corpus(hyps, refs)[0].score, 2), "seconds": round(seconds, 1),
        })  # fmt: skip
        print(rows[-1], flush=True)
    record = {"run": str(args.run), "test": args.test, "lines": len(src), "beam": args.beam,
              "commit": git_commit(), "rows": rows}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        "| setting | lines | numbers | numbers kept exactly (%) | lines with all kept (%) | BLEU |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['lines']} | {r['numbers']} | {r['numbers_kept_pct']} | "
            f"{r['lines_all_kept_pct']} | {r['bleu']} |"
        )


if __name__ == "__main__":
    main()
