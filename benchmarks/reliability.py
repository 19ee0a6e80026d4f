"""kill -9 at random moments during `nmt train`, then `--resume`, over many trials.

Each trial starts a tiny training run (a checkpoint every few steps) and kills it with SIGKILL
at a random moment, `--kills` times, resuming after each kill; the last resume runs to the end.
After every kill it checks that every .pt file in checkpoints/ loads; after every resume that
the run started from the newest complete checkpoint; at the end that the weights (and the
validation rows in metrics.jsonl) equal those of an uninterrupted run with the same seed, bit
for bit on the CPU. Most kills land during training (after the "training on" log line, spread
over the remaining steps), some during start-up.

    python benchmarks/reliability.py [--trials 20] [--kills 2] [--seed 1] [--data DATA_DIR]

prints one line per trial and writes benchmarks/results/reliability.json. Without --data it
generates the demo corpus and preprocesses it in a temporary folder first.
tests/e2e/test_faults.py runs a 3-trial version of the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from nmt_cli.checkpoint import load_checkpoint  # noqa: E402

CONFIG = """\
model:
  emb_size: 16
  enc_hidden: 32
  dec_hidden: 32
  attn_hidden: 16
  dropout: 0.1
  emb_dropout: 0.1
train:
  batch_tokens: 600
  lr: 0.003
  max_steps: 36
  valid_every: 3
  log_every: 3
  keep_last: 2
  keep_best: 1
  seed: 7
decode:
  batch_size: 32
"""
_RESUMED = re.compile(r"resumed from step (\d+)")
_STEP_FILE = re.compile(r"step-(\d+)\.pt")


@dataclass
class Trial:
    """What happened in one trial."""

    kills: list[dict] = field(default_factory=list)  # per kill: when, what was left
    resumes: list[int] = field(default_factory=list)  # the step each resume started from
    recovered_saves: int = 0  # interrupted saves that the resume finished
    equal_weights: bool = False
    equal_metrics: bool = False
    seconds: float = 0.0


def train_command(data: Path, run: Path, config: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "nmt_cli", "train", str(data), "--out", str(run)]
    cmd += ["--config", str(config), "--device", "cpu"]
    return cmd + (["--resume"] if resume else [])


def checkpoint_steps(run: Path) -> list[int]:
    """Load every .pt file of a run (any failure raises); the steps of its step files."""
    folder = run / "checkpoints"
    steps = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        state = load_checkpoint(path)  # raises CheckpointError on a damaged file
        if match := _STEP_FILE.fullmatch(path.name):
            assert state.step == int(match.group(1)), path
            steps.append(state.step)
    return steps


def temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp")] if run.exists() else []


def metrics(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row["valid_ppl"]) for row in rows if "valid_ppl" in row]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def reference_run(
    data: Path, work: Path, config: Path, max_steps: int
) -> tuple[Path, dict[str, float]]:
    """An uninterrupted run, timed: start-up, and training up to the last validation."""
    run = work / "reference"
    start = time.perf_counter()
    proc = subprocess.Popen(
        train_command(data, run, config, resume=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    started = _wait_for_log(proc, run / "train.log", 0, b"training on")
    last = f"validation at step {max_steps}:".encode()  # then only the last save and exit
    ended = _wait_for_log(proc, run / "train.log", 0, last)
    if proc.wait() != 0:
        raise RuntimeError(f"the reference run failed; see {run / 'train.log'}")
    return run, {"startup": started - start, "training": ended - started}


def _wait_for_log(proc: subprocess.Popen, log: Path, offset: int, text: bytes) -> float:
    """Poll until this process logs `text` (past `offset` in train.log) or exits."""
    while proc.poll() is None:
        if log.exists() and text in log.read_bytes()[offset:]:
            break
        time.sleep(0.005)
    return time.perf_counter()


def run_trial(
    data: Path,
    run: Path,
    config: Path,
    reference: Path,
    timing: dict[str, float],
    kills: int,
    max_steps: int,
    rng: random.Random,
) -> Trial:
    trial = Trial()
    start = time.perf_counter()
    for k in range(kills + 1):
        steps = checkpoint_steps(run)  # every .pt loads, or this raises
        resume = bool(steps)
        log = run / "train.log"
        offset = log.stat().st_size if log.exists() else 0
        err_path = run.with_name(f"{run.name}.{k}.stderr")  # a file: a full pipe would block
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                train_command(data, run, config, resume),
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=_env(),
            )
        if k < kills:
            kill: dict[str, Any] = {"resumed_from": max(steps, default=0)}
            if rng.random() < 0.2:  # during start-up: imports, data, model, run folder
                kill["phase"] = "startup"
                time.sleep(rng.uniform(0, timing["startup"]))
            else:
                kill["phase"] = "training"
                _wait_for_log(proc, log, offset, b"training on")
                left = 1 - max(steps, default=0) / max_steps
                time.sleep(rng.uniform(0, timing["training"] * left))
            kill["finished_first"] = proc.poll() is not None
            if not kill["finished_first"]:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            kill["temp_files_left"] = len(temp_files(run))
            after = checkpoint_steps(run)  # all load
            kill["checkpoints"], kill["newest_step"] = len(after), max(after, default=0)
            trial.kills.append(kill)
        elif proc.wait() != 0:
            raise AssertionError(f"final run failed ({proc.returncode}):\n{err_path.read_text()}")
        stderr = err_path.read_text(errors="replace")
        if resume:
            found = _RESUMED.search(stderr)
            if found or k == kills:  # a kill during start-up may come before the log line
                assert found, stderr
                resumed = int(found.group(1))
                assert resumed == max(steps), (resumed, steps)  # the newest complete one
                trial.resumes.append(resumed)
        trial.recovered_saves += stderr.count("interrupted save")
    assert not temp_files(run), temp_files(run)
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    expected = load_checkpoint(reference / "checkpoints" / "last.pt")
    assert final.step == expected.step == max_steps
    trial.equal_weights = all(
        torch.equal(tensor, final.model[name]) for name, tensor in expected.model.items()
    )
    trial.equal_metrics = metrics(run) == metrics(reference)
    trial.seconds = round(time.perf_counter() - start, 2)
    return trial


def run_trials(
    data: Path, work: Path, trials: int, kills: int, seed: int, log: bool = True
) -> dict:
    """Run the experiment; returns the summary (see the module docstring)."""
    config = work / "tiny.yaml"
    config.write_text(CONFIG)
    max_steps = int(re.search(r"max_steps: (\d+)", CONFIG).group(1))  # type: ignore[union-attr]
    reference, timing = reference_run(data, work, config, max_steps)
    rng = random.Random(seed)
    results = []
    for i in range(trials):
        trial = run_trial(
            data, work / f"trial-{i}", config, reference, timing, kills, max_steps, rng
        )
        results.append(trial)
        if log:
            kills_text = ", ".join(
                f"{k['phase']}{' (already done)' if k['finished_first'] else ''}"
                f" -> newest step-{k['newest_step']}, {k['temp_files_left']} tmp"
                for k in trial.kills
            )
            print(
                f"trial {i + 1:2d}: kills [{kills_text}]; resumed from {trial.resumes}; "
                f"recovered {trial.recovered_saves}; weights equal {trial.equal_weights}; "
                f"{trial.seconds:.1f}s",
                flush=True,
            )
    all_kills = [k for t in results for k in t.kills]
    return {
        "trials": trials,
        "kills_per_trial": kills,
        "seed": seed,
        "max_steps": max_steps,
        "reference_seconds": {k: round(v, 2) for k, v in timing.items()},
        "kills": len(all_kills),
        "kills_during_startup": sum(k["phase"] == "startup" for k in all_kills),
        "newest_checkpoint_at_kill": sorted(k["newest_step"] for k in all_kills),
        "kills_after_the_run_ended": sum(k["finished_first"] for k in all_kills),
        "kills_that_cut_a_write": sum(k["temp_files_left"] > 0 for k in all_kills),
        "interrupted_saves_recovered": sum(t.recovered_saves for t in results),
        "resumes": sum(len(t.resumes) for t in results),
        "all_resumes_from_newest_checkpoint": True,  # asserted in run_trial
        "all_checkpoints_loaded": True,  # asserted in run_trial
        "all_weights_equal": all(t.equal_weights for t in results),
        "all_metrics_equal": all(t.equal_metrics for t in results),
        "per_trial": [asdict(t) for t in results],
    }


def prepare_data(work: Path) -> Path:
    import demo_data

    corpus, data = work / "corpus", work / "data"
    demo_data.write_splits(corpus, seed=3, n_train=1500, n_valid=60, n_test=10)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nmt_cli",
            "preprocess",
            "--src",
            "src",
            "--tgt",
            "tgt",
            "--train",
            str(corpus / "train"),
            "--valid",
            str(corpus / "valid"),
            "--out",
            str(data),
            "--vocab-size",
            "100",
            "--model-type",
            "bpe",
        ],
        check=True,
        capture_output=True,
        env=_env(),
    )
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kills", type=int, default=2, help="kills per trial before the end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, help="a preprocessed data folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reliability.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nmt-reliability-") as tmp:
        work = Path(tmp)
        data = args.data or prepare_data(work)
        start = time.perf_counter()
        summary = run_trials(data, work, args.trials, args.kills, args.seed)
        summary["minutes"] = round((time.perf_counter() - start) / 60, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{summary['kills']} kills in {summary['trials']} trials "
        f"({summary['kills_that_cut_a_write']} cut a write, "
        f"{summary['interrupted_saves_recovered']} interrupted saves recovered): every "
        f"checkpoint loaded, every resume started from the newest one, final weights equal: "
        f"{summary['all_weights_equal']}, metrics equal: {summary['all_metrics_equal']}; "
        f"{summary['minutes']} min -> {args.out}"
    )
    if not (summary["all_weights_equal"] and summary["all_metrics_equal"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
