"""Speed of two source trees, interleaved: did a change make training or translation slower?

Each round runs, for tree A and then tree B, the same work with the tree's own `nmt`:
training the peers' workload (benchmarks/configs/peer-workload.yaml) for `--steps` updates in
fp32 (steady target tokens/s, steps after the first 50), and translating test_2016_flickr
with beam 5 and greedy (the seconds `nmt translate` reports for translating, and the whole
process). The translations use the model tree A trained in the first round, so both trees
translate with the same weights. This machine's speed drifts within minutes, so only the
per-round ratios B / A are compared, as their median and range.

    python benchmarks/ab.py --trees BEFORE AFTER [--rounds 3] [--steps 300] --out ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, *args: str) -> tuple[float, str]:
    """`nmt ARGS` with the tree's own package; (wall seconds, stderr)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "nmt_cli", *args], cwd=tree, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"ab.py: nmt {' '.join(args)} failed in {tree}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result.stderr


def train_speed(tree: Path, data: Path, run_dir: Path, steps: int) -> float:
    config = ROOT / "benchmarks" / "configs" / "peer-workload.yaml"
    run(
        tree,
        "-q",
        "train",
        str(data),
        "--out",
        str(run_dir),
        "--config",
        str(config),
        "--device",
        "cpu",
        "--set",
        f"train.max_steps={steps}",
        "--set",
        "train.log_every=25",
        "--set",
        f"train.valid_every={steps}",
    )
    log = (run_dir / "train.log").read_text()
    rates = [int(r) for s, r in re.findall(r"step (\d+) loss \S+ tok/s (\d+)", log) if int(s) > 50]
    return sum(rates) / len(rates)


def translate_speed(tree: Path, model: Path, source: Path, beam: int) -> dict[str, float]:
    seconds, stderr = run(
        tree,
        "translate",
        str(model),
        "--beam",
        str(beam),
        "--precision",
        "fp32",  # what every tree compared can run (auto came later)
        "--batch-size",
        "64",
        "--input",
        str(source),
        "--output",
        os.devnull,
    )
    timing = re.search(r"\) in ([\d.]+) s", stderr.strip().splitlines()[-1])
    assert timing, f"no speed line from nmt translate: {stderr[-500:]}"
    return {"whole_s": round(seconds, 3), "translate_s": float(timing.group(1))}


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeat: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return round(2 * n**3 * repeat / (time.perf_counter() - start) / 1e9, 1)


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    found = re.search(r"Model name:\s*(.+)", out)
    return found.group(1).strip() if found else platform.processor()


def commit(tree: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()


def ratios(rounds: list[dict], key: str, inverse: bool = False) -> dict[str, float]:
    """Median and range of B / A per round (A / B for times, so > 1 means B is faster)."""
    values = [
        (r["A"][key] / r["B"][key]) if inverse else (r["B"][key] / r["A"][key]) for r in rounds
    ]
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", nargs=2, type=Path, required=True, metavar=("A", "B"))
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ab.json")
    args = parser.parse_args()
    trees = {"A": args.trees[0].resolve(), "B": args.trees[1].resolve()}
    source = args.data / "test_2016_flickr.de"
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run(
            trees["A"],
            "-q",
            "preprocess",
            "--src",
            "de",
            "--tgt",
            "en",
            "--train",
            str(args.data / "train"),
            "--valid",
            str(args.data / "val"),
            "--out",
            str(work / "data"),
        )
        for r in range(args.rounds):
            row: dict = {}
            for name, tree in trees.items():
                run_dir = work / f"run-{name}-{r}"
                tok_s = train_speed(tree, work / "data", run_dir, args.steps)
                model = work / "run-A-0"
                row[name] = {"train_tok_s": round(tok_s)}
                for beam in (5, 1):
                    for k, v in translate_speed(tree, model, source, beam).items():
                        row[name][f"beam{beam}_{k}"] = v
                print(f"round {r + 1} {name}: {row[name]}", flush=True)
            rounds.append(row)
    keys = [k for k in rounds[0]["A"] if k != "train_tok_s"]
    summary = {"train_tok_s": ratios(rounds, "train_tok_s")}
    summary.update({k: ratios(rounds, k, inverse=True) for k in keys})
    result = {
        "A": commit(trees["A"]),
        "B": commit(trees["B"]),
        "cpu": cpu_model(),
        "matmul_gflops": {
            "fp32": matmul_gflops(torch.float32),
            "bf16": matmul_gflops(torch.bfloat16),
        },
        "steps": args.steps,
        "rounds": rounds,
        "speed_of_B_over_A": summary,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["speed_of_B_over_A"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
