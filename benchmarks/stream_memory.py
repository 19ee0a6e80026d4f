"""Memory of `nmt translate` over a long stream, and over one huge line (issue 22).

Runs the real command on a generated input and samples its resident memory (VmRSS, from
/proc) twice a second, with the output written so far, so the curve shows whether memory
levels off as lines stream through or keeps growing:

    python benchmarks/stream_memory.py --model RUN --text test.de --lines 100000 1000000
    python benchmarks/stream_memory.py --model RUN --text test.de --long-line 1000000

`--lines N` cycles the sentences of `--text` into N lines; `--long-line B` joins them into
one line of about B bytes. Each run prints its peak (VmHWM) and rate and is added to
`--out` (default benchmarks/results/stream_memory.json) with its curve. Greedy by default.

`--eos-first` translates with a copy of the checkpoint whose output bias makes `</s>` win at
the first step: every line still goes through reading, cleaning, encoding, a search step,
decoding and writing, so the stream's own memory is measured at a million lines in minutes
on a loaded CPU (a real model's per-line work is constant too, only slower).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from itertools import cycle, islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def status_kb(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM` figure of /proc/PID/status, in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_input(path: Path, sentences: list[str], lines: int, long_line: int) -> int:
    """The input file: `lines` cycled sentences, or one line of about `long_line` bytes."""
    with path.open("w", encoding="utf-8") as f:
        if long_line:
            size = 0
            for sentence in cycle(sentences):
                f.write(sentence + " ")
                size += len(sentence.encode()) + 1
                if size >= long_line:
                    break
            f.write("\n")
            return 1
        for sentence in islice(cycle(sentences), lines):
            f.write(sentence + "\n")
    return lines


def eos_first_copy(model: str, checkpoint: str, folder: Path) -> Path:
    """A copy of the checkpoint whose output bias makes `</s>` win at once (see --eos-first)."""
    from nmt_cli.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
    from nmt_cli.special_ids import EOS_ID

    ckpt = load_checkpoint(resolve_checkpoint(Path(model), checkpoint))
    weights = {k: v.clone() for k, v in ckpt.model.items()}
    weights["generator.bias"][EOS_ID] = 1e4
    path = folder / "eos-first.pt"
    save_checkpoint(replace(ckpt, model=weights), path)
    return path


def measure(args: argparse.Namespace, lines: int, long_line: int) -> dict[str, Any]:
    """One run of `nmt translate` on a fresh input, its memory sampled until it ends."""
    sentences = [s for s in Path(args.text).read_text(encoding="utf-8").splitlines() if s]
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        n_lines = write_input(source, sentences, lines, long_line)
        model = [args.model, "--checkpoint", args.checkpoint]
        if args.eos_first:
            model = [str(eos_first_copy(args.model, args.checkpoint, Path(tmp)))]
        command = [
            sys.executable, "-m", "nmt_cli", "-q", "translate", *model,
            "--beam", str(args.beam), "--precision", "fp32", "-i", str(source), "-o", str(output),
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=args.tree, stderr=subprocess.PIPE, text=True)
        curve, peak = [], 0
        while proc.poll() is None:
            rss = status_kb(proc.pid, "VmRSS")
            peak = max(peak, status_kb(proc.pid, "VmHWM"))
            out_bytes = output.stat().st_size if output.exists() else 0
            curve.append([round(time.perf_counter() - started, 1), rss // 1024, out_bytes])
            time.sleep(args.every)
        seconds = time.perf_counter() - started
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"nmt translate failed ({proc.returncode}):\n{stderr[-2000:]}")
        written = output.read_text(encoding="utf-8").count("\n")
    assert written == n_lines, (written, n_lines)
    return {
        "tree": args.tree,
        "model": args.model,
        "checkpoint": args.checkpoint,
        "eos_first": args.eos_first,
        "beam": args.beam,
        "lines": n_lines,
        "input_bytes": source_bytes(long_line, lines, sentences),
        "long_line": bool(long_line),
        "seconds": round(seconds, 1),
        "lines_per_s": round(n_lines / seconds, 1),
        "peak_rss_mb": peak // 1024,
        "curve": curve,  # [seconds, RSS MiB, output bytes so far]
    }


def source_bytes(long_line: int, lines: int, sentences: list[str]) -> int:
    if long_line:
        return long_line
    mean = sum(len(s.encode()) + 1 for s in sentences) / len(sentences)
    return round(mean * lines)


def summary(run: dict[str, Any]) -> str:
    """Peak, and RSS at each tenth of the output, to read the curve at a glance."""
    curve, total = run["curve"], max((c[2] for c in run["curve"]), default=0) or 1
    tenths = []
    for k in range(1, 11):
        at = next((c for c in curve if c[2] >= total * k / 10), curve[-1] if curve else None)
        tenths.append(at[1] if at else 0)
    kind = "1 line of" if run["long_line"] else f"{run['lines']:,} lines,"
    return (
        f"{kind} {run['input_bytes']:,} bytes: peak {run['peak_rss_mb']} MiB, "
        f"{run['seconds']} s ({run['lines_per_s']} lines/s); RSS MiB by tenth of the output: "
        f"{tenths}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or checkpoint")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--text", required=True, help="sentences to cycle (one per line)")
    parser.add_argument("--lines", type=int, nargs="*", default=[])
    parser.add_argument("--long-line", type=int, nargs="*", default=[])
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--eos-first", action="store_true", help="see the module docstring")
    parser.add_argument("--tree", default=str(ROOT), help="the nmt source tree to run")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/stream_memory.json"))
    args = parser.parse_args()
    out = Path(args.out)
    runs = json.loads(out.read_text()) if out.exists() else []
    for lines, long_line in [(n, 0) for n in args.lines] + [(0, b) for b in args.long_line]:
        run = measure(args, lines, long_line)
        print(summary(run), flush=True)
        runs.append(run)
        out.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
