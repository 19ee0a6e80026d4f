"""Numerical fingerprint of a source tree: did a refactoring change any number?

Runs the real `nmt` commands of one tree (its own `nmt_cli`, in this interpreter) on two
workloads and records what must not move when code is only reorganized:
- the demo task (examples/demo.yaml, a small generated corpus) and the peers' workload
  (benchmarks/configs/peer-workload.yaml on Multi30k), each trained for a fixed number of
  steps from a fixed seed: the loss of every step, the validation rows, and a hash of the
  final weights (bit-identical training gives the same hash);
- translations of a fixed input (greedy and beam 5 at fp32; beam 5 at bf16 and int8 on the
  peers' model), as text.

    python benchmarks/fingerprint.py --tree . --out before.json
    python benchmarks/fingerprint.py --tree /path/to/other/checkout --out after.json
    python benchmarks/fingerprint.py --compare before.json after.json

Speed is not measured here (see speed.py); timings and tokens/s are left out of the records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
# Per-run fields that depend on the clock, not on the numbers.
CLOCK_FIELDS = ("minutes", "tokens_per_s")


def nmt(tree: Path, *args: str, stdin: str | None = None) -> str:
    """Run `nmt ARGS` with the tree's own package (cwd first on sys.path); return stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "nmt_cli", "-q", *args],
        cwd=tree,
        input=stdin,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"fingerprint.py: nmt {' '.join(args)} failed in {tree}:\n{result.stderr[-3000:]}")
    return result.stdout


def weights_hash(checkpoint: Path) -> str:
    """sha256 over the model's tensors (names sorted), wherever the file keeps them."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = _find_model(state)
    digest = hashlib.sha256()
    for name in sorted(model):
        digest.update(name.encode())
        digest.update(model[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _find_model(state: Any) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        if isinstance(state.get("model"), dict):
            return state["model"]
        for value in state.values():
            found = _find_model(value)
            if found:
                return found
    return {}


def train_record(tree: Path, data: Path, run: Path, config: Path, *settings: str) -> dict:
    overrides = [arg for s in settings for arg in ("--set", s)]
    nmt(
        tree,
        "train",
        str(data),
        "--out",
        str(run),
        "--config",
        str(config),
        "--device",
        "cpu",
        *overrides,
    )
    losses = re.findall(r"step (\d+) loss (\S+)", (run / "train.log").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    metrics = [row for row in metrics if "valid_bleu" in row]  # comparable across versions
    for row in metrics:
        for key in CLOCK_FIELDS:
            row.pop(key, None)
    return {
        "losses": [[int(s), float(v)] for s, v in losses],
        "metrics": metrics,
        "weights": weights_hash(run / "checkpoints" / "last.pt"),
    }


def translations(tree: Path, run: Path, lines: str, modes: dict[str, list[str]]) -> dict:
    return {
        name: nmt(tree, "translate", str(run), "--checkpoint", "last", *args, stdin=lines)
        for name, args in modes.items()
    }


def demo(tree: Path, work: Path, steps: int) -> dict:
    text, data, run = work / "demo-text", work / "demo-data", work / "demo-run"
    subprocess.run(
        [
            sys.executable,
            str(tree / "examples" / "demo_data.py"),
            str(text),
            "--seed",
            "1",
            "--train",
            "3000",
            "--valid",
            "100",
            "--test",
            "200",
        ],
        check=True,
        capture_output=True,
    )
    nmt(
        tree,
        "preprocess",
        "--src",
        "src",
        "--tgt",
        "tgt",
        "--train",
        str(text / "train"),
        "--valid",
        str(text / "valid"),
        "--out",
        str(data),
        "--vocab-size",
        "120",
        "--model-type",
        "bpe",
    )
    record = train_record(
        tree,
        data,
        run,
        tree / "examples" / "demo.yaml",
        f"train.max_steps={steps}",
        "train.max_minutes=0",
        f"train.valid_every={steps // 2}",
        "train.log_every=1",
        "train.seed=1",
    )
    lines = (text / "test.src").read_text(encoding="utf-8")
    record["translations"] = translations(
        tree,
        run,
        lines,
        {
            "fp32-beam5": ["--beam", "5", "--precision", "fp32"],
            "fp32-greedy": ["--beam", "1", "--precision", "fp32"],
        },
    )
    return record


def peers(tree: Path, work: Path, multi30k: Path, steps: int, lines: int) -> dict:
    data = work / "m30k-data"
    nmt(
        tree,
        "preprocess",
        "--src",
        "de",
        "--tgt",
        "en",
        "--train",
        str(multi30k / "train"),
        "--valid",
        str(multi30k / "val"),
        "--out",
        str(data),
    )
    config = tree / "benchmarks" / "configs" / "peer-workload.yaml"
    common = ["train.log_every=1", f"train.valid_every={steps}"]
    record = {
        "fp32": train_record(
            tree, data, work / "m30k-fp32", config, f"train.max_steps={steps}", *common
        ),
        "bf16": train_record(
            tree,
            data,
            work / "m30k-bf16",
            config,
            f"train.max_steps={steps // 2}",
            "train.precision=bf16",
            *common,
        ),
    }
    source = "".join(
        (multi30k / "test_2016_flickr.de").read_text(encoding="utf-8").splitlines(True)[:lines]
    )
    record["translations"] = translations(
        tree,
        work / "m30k-fp32",
        source,
        {
            "fp32-beam5": ["--beam", "5", "--precision", "fp32"],
            "fp32-greedy": ["--beam", "1", "--precision", "fp32"],
            "bf16-beam5": ["--beam", "5", "--precision", "bf16"],
            "int8-beam5": ["--beam", "5", "--precision", "int8"],
        },
    )
    return record


def compare(a: dict, b: dict, path: str = "") -> list[str]:
    """Every leaf that differs, as `path: a != b` (texts by their first differing line)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(set(a) | set(b)) for d in compare(a.get(k), b.get(k), f"{path}/{k}")
        ]
    if isinstance(a, str) and isinstance(b, str) and "\n" in a + b:
        la, lb = a.splitlines(), b.splitlines()
        diff = [i for i in range(max(len(la), len(lb))) if la[i : i + 1] != lb[i : i + 1]]
        return (
            [f"{path}: {len(diff)} of {len(la)} lines differ (first: {diff[0] + 1})"]
            if diff
            else []
        )
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--demo-steps", type=int, default=400)
    parser.add_argument("--peer-steps", type=int, default=40)
    parser.add_argument("--lines", type=int, default=200, help="test_2016 lines translated")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        diffs = compare(a["record"], b["record"])
        print(
            f"{args.compare[0]} ({a['commit']}) vs {args.compare[1]} ({b['commit']}): "
            + ("identical" if not diffs else f"{len(diffs)} differences")
        )
        print("\n".join(diffs))
        sys.exit(1 if diffs else 0)
    if not args.out:
        parser.error("--out is required (or --compare A B)")
    tree = args.tree.resolve()
    commit = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        record = {
            "demo": demo(tree, work, args.demo_steps),
            "peers": peers(tree, work, args.data, args.peer_steps, args.lines),
        }
    args.out.write_text(json.dumps({"commit": commit, "record": record}, indent=1))
    print(f"wrote {args.out} ({commit})")


if __name__ == "__main__":
    main()
