"""Multi30k quality benchmark: raw text -> preprocess -> train (time budget) -> translate -> BLEU.

Runs the real `nmt` commands, as a user would, and writes
benchmarks/results/multi30k-SRC-TGT[-Nmin].json (or --results FILE) with BLEU per test set (beam
search, from best.pt), training minutes, target tokens/s, the sacreBLEU signature, the git
commit and the CPU.

    python benchmarks/quality.py --data ../shared/data/multi30k --minutes 60 --src de --tgt en
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ("test_2016_flickr", "test_2017_flickr")


def nmt(*args: str) -> str:
    """Run `nmt` (progress and logs pass through to stderr); return its stdout."""
    cmd = [sys.executable, "-m", "nmt_cli", *args]
    print("+ nmt " + " ".join(args), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def cpu_model() -> str:
    """lscpu's model name and the CPU's native bf16 features: the figures depend on both."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    name = re.search(r"Model name:\s*(.+)", out)
    flags = re.search(r"Flags:\s*(.+)", out)
    have = flags.group(1).split() if flags else []
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in have] or ["no native bf16"]
    return f"{name.group(1).strip() if name else 'unknown'} ({', '.join(native)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--minutes", type=float, default=60.0, help="training wall-clock budget")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="work folder (default benchmarks/work/multi30k-SRC-TGT)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results file (default benchmarks/results/multi30k-SRC-TGT[-Nmin].json)",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "multi30k-de-en.yaml")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="extra config override"
    )
    args = parser.parse_args()
    src, tgt = args.src, args.tgt
    out = args.out or ROOT / "benchmarks" / "work" / f"multi30k-{src}-{tgt}"
    data, run = out / "data", out / "run"
    for name in ("train", "val", *TESTS):
        for lang in (src, tgt):
            if not (args.data / f"{name}.{lang}").is_file():
                sys.exit(f"quality.py: {args.data / f'{name}.{lang}'} not found (pass --data)")
    out.mkdir(parents=True, exist_ok=True)

    nmt(
        "preprocess",
        "--src",
        src,
        "--tgt",
        tgt,
        "--train",
        str(args.data / "train"),
        "--valid",
        str(args.data / "val"),
        *[a for t in TESTS for a in ("--test", str(args.data / t))],
        "--out",
        str(data),
    )
    if run.exists():
        subprocess.run(["rm", "-rf", str(run)], check=True)
    start = time.perf_counter()
    sets = [f"train.max_minutes={args.minutes}", *args.overrides]
    nmt(
        "train",
        str(data),
        "--out",
        str(run),
        "--config",
        str(args.config),
        *[a for s in sets for a in ("--set", s)],
    )
    wall_minutes = (time.perf_counter() - start) / 60
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in rows if "valid_bleu" in row]  # the validations' rows
    best = max(rows, key=lambda r: r["valid_bleu"])

    results: dict[str, object] = {
        "pair": f"{src}-{tgt}",
        "commit": git_commit(),
        "cpu": cpu_model(),
        "config": str(
            args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
        ),
        "overrides": sets,
        "train_minutes": round(rows[-1]["minutes"], 2),
        "train_wall_minutes_with_startup": round(wall_minutes, 2),
        "steps": rows[-1]["step"],
        "target_tokens_per_s": rows[-1]["tokens_per_s"],
        "best_valid_bleu_greedy": best["valid_bleu"],
        "best_step": best["step"],
        "beam": args.beam,
        "test": {},
    }
    for test in TESTS:
        hyp = out / f"{test}.hyp.{tgt}"
        t0 = time.perf_counter()
        nmt(
            "translate",
            str(run),
            "--beam",
            str(args.beam),
            "--precision",
            "fp32",  # the model as trained, on every host
            "--input",
            str(args.data / f"{test}.{src}"),
            "--output",
            str(hyp),
        )
        seconds = time.perf_counter() - t0
        scores = json.loads(
            nmt(
                "eval",
                "--ref",
                str(args.data / f"{test}.{tgt}"),
                str(hyp),
                "--metrics",
                "bleu,chrf",
                "--json",
            )
        )
        results["test"][test] = {  # type: ignore[index]
            "bleu": round(scores["bleu"]["score"], 2),
            "chrf": round(scores["chrf"]["score"], 2),
            "translate_seconds": round(seconds, 1),
            "signature": scores["bleu"]["signature"],
        }
    # the 60-minute run is the headline; other budgets get their own file
    budget = "" if args.minutes == 60 else f"-{args.minutes:g}min"
    path = args.results or ROOT / "benchmarks" / "results" / f"multi30k-{src}-{tgt}{budget}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\nMulti30k {src}->{tgt}: {results['steps']} steps in {results['train_minutes']} min, "
        f"{results['target_tokens_per_s']:,.0f} target tokens/s"
    )
    for test, r in results["test"].items():  # type: ignore[attr-defined]
        print(f"  {test}: BLEU {r['bleu']:.2f}  chrF {r['chrf']:.2f}  (beam {args.beam})")
    print(f"  signature: {results['test'][TESTS[0]]['signature']}")  # type: ignore[index]
    print(f"written to {path}; run folder {run}")


if __name__ == "__main__":
    main()
