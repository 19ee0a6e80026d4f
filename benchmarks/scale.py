"""Scale benchmark: `nmt preprocess` and `nmt train` on 29 k, 1 M and 10 M sentence pairs.

The large corpora are synthetic but realistic: pair i joins 1-3 Multi30k training pairs drawn
with a fixed seed, the same ones on both sides, so lengths, vocabulary and alignment stay
those of real text. For each size it measures, with the real commands:

- preprocess: wall seconds, sentence pairs per second, peak RSS of the whole process tree
  (the workers included; /proc sampled every 0.1 s), the data folder's size on disk;
- train (benchmarks/configs/peer-workload.yaml, fp32, CPU): seconds from the process start to
  the end of the first step, peak RSS over 200 steps (sampled likewise), target tokens/s.

Writes benchmarks/results/scale.json and prints a table for benchmarks/README.md. The corpora
and data folders go to --work and are removed afterwards (--keep keeps them); the script says
how much disk it needs first and stops when there is not enough.

    python benchmarks/scale.py --data ../shared/data/multi30k [--sizes 29k,1M,10M] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "peer-workload.yaml"
SIZES = {"29k": 0, "1M": 1_000_000, "10M": 10_000_000}  # 0: Multi30k's own train split
BYTES_PER_PAIR = 560  # raw text (~270 B for 2 joined pairs) + encoded data (~110 B) + margin


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants, MiB (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1])
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_measured(cmd: list[str], log: Path) -> dict[str, float]:
    """Runs cmd; wall seconds and peak tree RSS (MiB), with stderr copied to `log`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, tree_rss_mib(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stderr is not None and proc.stdout is not None
    stdout_chunks: list[str] = []
    reader = threading.Thread(target=lambda: stdout_chunks.append(proc.stdout.read()))
    reader.start()
    with open(log, "w") as out:
        for line in proc.stderr:
            out.write(line)
    proc.wait()
    reader.join()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    log.with_suffix(".out").write_text("".join(stdout_chunks))
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak}


def read_train_log(path: Path, stdout: Path, started: float) -> tuple[float, float]:
    """Seconds from `started` (epoch time) to the end of step 1, from RUN/train.log
    (timestamps to the second), and the run's tokens/s from its summary on stdout."""
    text = path.read_text()
    stamp = re.search(r"^(\S+ \S+) INFO step 1 loss", text, re.M)
    tok_s = re.findall(r"([\d.,]+) target tokens/s", stdout.read_text())
    if stamp is None or not tok_s:
        raise SystemExit(f"{path}: no 'step 1' or tokens/s line")
    first = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) - started
    return first, float(tok_s[-1].replace(",", ""))


def write_synthetic(m30k: Path, out: Path, pairs: int, seed: int = 18) -> Path:
    """out/train.de and .en: `pairs` lines, each 1-3 random Multi30k train pairs joined."""
    out.mkdir(parents=True, exist_ok=True)
    src = (m30k / "train.de").read_text(encoding="utf-8").splitlines()
    tgt = (m30k / "train.en").read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(seed)
    with (
        open(out / "train.de", "w", encoding="utf-8") as fs,
        open(out / "train.en", "w", encoding="utf-8") as ft,
    ):
        for start in range(0, pairs, 100_000):
            n = min(100_000, pairs - start)
            counts = rng.integers(1, 4, n).tolist()
            picks = rng.integers(0, len(src), (n, 3)).tolist()
            for file, side in ((fs, src), (ft, tgt)):
                joined = (
                    " ".join(side[j] for j in p[:c]) for p, c in zip(picks, counts, strict=True)
                )
                file.write("\n".join(joined) + "\n")
    return out / "train"


def write_valid(m30k: Path, work: Path, lines: int) -> Path:
    """The first `lines` of Multi30k val: the final validation of a run stays short."""
    for lang in ("de", "en"):
        text = (m30k / f"val.{lang}").read_text(encoding="utf-8").splitlines()[:lines]
        (work / f"valid.{lang}").write_text("\n".join(text) + "\n", encoding="utf-8")
    return work / "valid"


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def measure(name: str, m30k: Path, work: Path, args: argparse.Namespace) -> dict:
    nmt = [sys.executable, "-m", "nmt_cli"]
    pairs = SIZES[name]
    data, run = work / f"data-{name}", work / f"run-{name}"
    result: dict = {}
    if not (args.reuse and (data / "meta.json").exists()):
        result = preprocess(name, pairs, m30k, work, args)
    if args.preprocess_only:
        return result
    print(f"[{name}] train {args.steps} steps", file=sys.stderr, flush=True)
    shutil.rmtree(run, ignore_errors=True)
    started = time.time()
    train = run_measured(
        [*nmt, "train", str(data), "--out", str(run), "--config", str(CONFIG), "--device", "cpu",
         "--set", f"train.max_steps={args.steps}", "--set", "train.log_every=1"],
        work / f"train-{name}.log",
    )  # fmt: skip
    first_step, tok_s = read_train_log(run / "train.log", work / f"train-{name}.out", started)
    result |= {
        "train_first_step_s": round(first_step),
        "train_peak_rss_mib": round(train["peak_rss_mib"]),
        "train_tok_s": round(tok_s),
    }
    if not args.keep:
        shutil.rmtree(data)
        shutil.rmtree(run, ignore_errors=True)
    print(f"[{name}] {result}", file=sys.stderr, flush=True)
    return result


def preprocess(name: str, pairs: int, m30k: Path, work: Path, args: argparse.Namespace) -> dict:
    """Builds the corpus of one size and preprocesses it into work/data-NAME, measured."""
    prefix = m30k / "train" if pairs == 0 else write_synthetic(m30k, work / f"raw-{name}", pairs)
    data = work / f"data-{name}"
    valid = write_valid(m30k, work, 100)
    print(f"[{name}] preprocess", file=sys.stderr, flush=True)
    prep = run_measured(
        [sys.executable, "-m", "nmt_cli", "preprocess", "--src", "de", "--tgt", "en",
         "--train", str(prefix), "--valid", str(valid), "--out", str(data),
         "--workers", str(args.workers)],
        work / f"preprocess-{name}.log",
    )  # fmt: skip
    meta = json.loads((data / "meta.json").read_text())
    read = int(re.search(r"\(of (\d+)\)", (data / "summary.txt").read_text()).group(1))
    if pairs:
        shutil.rmtree(work / f"raw-{name}")  # only the data folder is needed from here
    return {
        "pairs": read,
        "pairs_kept": meta["encoded"]["train"]["pairs"],
        "preprocess_s": round(prep["seconds"], 1),
        "preprocess_lines_per_s": round(read / prep["seconds"]),
        "preprocess_peak_rss_mib": round(prep["peak_rss_mib"]),
        "data_folder_mib": round(folder_mib(data), 1),
    }


def check_disk(work: Path, sizes: list[str]) -> None:
    """Stops with a clear message when the largest corpus would not fit."""
    need = max(SIZES[s] for s in sizes) * BYTES_PER_PAIR + 2**30
    free = shutil.disk_usage(work).free
    print(f"needs about {need / 2**30:.1f} GiB free in {work}; {free / 2**30:.1f} GiB free",
          file=sys.stderr)  # fmt: skip
    if free < need:
        raise SystemExit(
            f"not enough disk: {need / 2**30:.1f} GiB needed in {work}, {free / 2**30:.1f} GiB "
            "free; free space, choose --work elsewhere or leave out the largest --sizes"
        )


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    found = re.search(r"Model name:\s*(.+)", out)
    return found.group(1).strip() if found else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="Multi30k folder")
    parser.add_argument("--sizes", default="29k,1M,10M")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "scale")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--keep", action="store_true", help="keep corpora and data folders")
    parser.add_argument("--reuse", action="store_true", help="train on existing data folders")
    parser.add_argument("--preprocess-only", action="store_true")
    args = parser.parse_args()
    m30k = args.data or Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k"))
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    check_disk(args.work, sizes)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["cpu"] = cpu_model()
    for name in sizes:
        results[name] = measure(name, m30k, args.work, args)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each size: partial
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    print(table(results))


def table(results: dict) -> str:
    keys = [
        ("pairs", "pairs"), ("preprocess_s", "preprocess s"),
        ("preprocess_lines_per_s", "pairs/s"),
        ("preprocess_peak_rss_mib", "preprocess peak RSS MiB"),
        ("data_folder_mib", "data folder MiB"), ("train_first_step_s", "train first step s"),
        ("train_peak_rss_mib", "train peak RSS MiB (200 steps)"), ("train_tok_s", "train tok/s"),
    ]  # fmt: skip
    sizes = [s for s in SIZES if s in results]
    lines = ["| | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for key, label in keys:
        lines.append(
            f"| {label} | " + " | ".join(f"{results[s].get(key, '–'):,}" for s in sizes) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
