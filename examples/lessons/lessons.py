"""Classic encoder-decoder experiments, one command each, measured by exact match per length.

    python examples/lessons/lessons.py LESSON [--out examples/lessons/out] [--steps N]

LESSON is one of
  bottleneck  fixed context (`model.attention: none`) vs attention, on reversal and addition
  reverse     reversed source (`data.reverse_source`), with and without attention, on copying
  cells       LSTM vs GRU vs plain RNN cells (fixed context, reversal)
  sampling    teacher forcing vs scheduled sampling (`train.scheduled_sampling`), attention
  all         the four in turn

Each lesson writes its synthetic data (offline, seeded), runs the real `nmt preprocess`,
`nmt train` and `nmt translate` commands, one training at a time, bounded by `train.max_steps`
(not minutes: the numbers do not depend on machine load), then scores exact match by source
length and writes OUT/LESSON/{results.json, results.md, accuracy.png} (the plot needs
matplotlib; without it the plot is skipped with a note). Test sets include lengths longer than
any training example, marked "unseen". A run already finished with the same settings and data,
in this or another lesson (the LSTM of `cells` is the fixed-context model of `bottleneck`), is
scored from its output instead of trained again; `--fresh` trains everything again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# beside this script, whose folder Python puts first on sys.path
from lesson_data import Task, accuracy_by_length, make_splits

HERE = Path(__file__).resolve().parent

# ---- lessons ---------------------------------------------------------------------------------

REVERSAL = Task("reversal", train_lengths=(3, 32), test_max=37, bucket=5)
COPY = Task("copy", train_lengths=(3, 32), test_max=37, bucket=5)
ADDITION = Task("addition", train_lengths=(3, 17), test_max=20, bucket=4, steps=6000)

# Small models that train in a few minutes on 2 CPU cores; settings a lesson changes are
# given per run as `--set` style overrides.
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "model": {
        "emb_size": 64,
        "enc_hidden": 128,
        "dec_hidden": 128,
        "attn_hidden": 64,
        "attention": "general",
        "dropout": 0.0,
        "emb_dropout": 0.0,
    },
    "train": {
        "batch_tokens": 2000,
        "lr": 0.003,
        "label_smoothing": 0.0,
        "log_every": 100,
        "keep_last": 1,
        "keep_best": 1,
    },
    "decode": {"beam": 1, "max_len_a": 1.2, "max_len_b": 5},
}


@dataclass(frozen=True)
class Run:
    """One training: a task, a label for the tables, and config overrides."""

    task: Task
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)  # "section.key" -> value


@dataclass(frozen=True)
class Lesson:
    """A question and the runs that answer it, compared in one table per task."""

    title: str
    question: str
    runs: tuple[Run, ...]


LESSONS: dict[str, Lesson] = {
    "bottleneck": Lesson(
        "The fixed-context bottleneck",
        "A plain encoder-decoder passes the whole source through one vector; attention looks "
        "back at every encoder state. How does exact match fall with input length?",
        runs=tuple(
            Run(task, label, {"model.attention": attention})
            for task in (REVERSAL, ADDITION)
            for label, attention in (("fixed context", "none"), ("attention", "general"))
        ),
    ),
    "reverse": Lesson(
        "Reversing the source",
        "Sutskever et al. (2014) fed the source backwards so that the first target words sit "
        "close to the last encoder steps. Does it help a unidirectional encoder copy, with and "
        "without attention?",
        runs=tuple(
            Run(
                COPY,
                f"{name}, {'reversed' if reverse else 'forward'} source",
                {
                    "model.attention": attention,
                    "model.bidirectional": False,
                    "data.reverse_source": reverse,
                },
            )
            for name, attention in (("fixed context", "none"), ("attention", "general"))
            for reverse in (False, True)
        ),
    ),
    "cells": Lesson(
        "LSTM vs GRU vs plain RNN",
        "Without attention the recurrent state must carry the whole sequence. Which cell keeps "
        "it over long inputs?",
        runs=tuple(
            Run(REVERSAL, cell.upper(), {"model.attention": "none", "model.cell": cell})
            for cell in ("lstm", "gru", "rnn")
        ),
    ),
    "sampling": Lesson(
        "Teacher forcing vs scheduled sampling",
        "Training feeds the reference prefix; translation feeds the model's own output. Does "
        "feeding its own predictions during training (rising linearly to p) help the "
        "attention model on long outputs?",
        runs=tuple(
            Run(
                REVERSAL,
                "teacher forcing" if p == 0 else f"scheduled sampling p={p}",
                {"train.scheduled_sampling": p},
            )
            for p in (0.0, 0.25, 0.5)
        ),
    ),
}


def run_config(run: Run, steps: int, seed: int) -> dict[str, dict[str, Any]]:
    """BASE_CONFIG + the run's overrides + the step budget (one validation, at the end)."""
    config = {section: dict(values) for section, values in BASE_CONFIG.items()}
    config.setdefault("data", {})
    config["train"].update(max_steps=steps, valid_every=steps, seed=seed)
    for key, value in run.overrides.items():
        section, name = key.split(".")
        config.setdefault(section, {})[name] = value
    return config


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


# ---- running the nmt command ----------------------------------------------------------------


def nmt_command() -> list[str]:
    """The `nmt` next to this Python (the venv's), else `python -m nmt_cli`."""
    script = Path(sys.executable).with_name("nmt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nmt_cli"]


def call(args: list[str], log_path: Path) -> float:
    """Run one nmt command, its output into `log_path`; returns the minutes it took."""
    start = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(args) + "\n")
        log.flush()
        done = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        sys.exit(f"lessons: `{' '.join(args[:3])} ...` failed; see {log_path}")
    return (time.perf_counter() - start) / 60


def prepare_data(task: Task, out: Path, seed: int) -> Path:
    """Write the task's text splits and preprocess them; returns the data folder."""
    folder = out / "data" / task.name
    text, data = folder / "text", folder / "bin"
    text.mkdir(parents=True, exist_ok=True)
    for split, pairs in make_splits(task, seed).items():
        for side, i in (("src", 0), ("tgt", 1)):
            lines = "".join(pair[i] + "\n" for pair in pairs)
            (text / f"{split}.{side}").write_text(lines, encoding="utf-8", newline="\n")
    shutil.rmtree(data, ignore_errors=True)
    nmt = nmt_command()
    call(
        [*nmt, "preprocess", "--src", "src", "--tgt", "tgt", "--train", str(text / "train"),
         "--valid", str(text / "valid"), "--out", str(data), "--vocab-size", "32",
         "--model-type", "bpe"],
        folder / "preprocess.log",
    )  # fmt: skip
    return folder


def run_key(config: dict[str, Any], data: Path, device: str) -> str:
    """What a run's result depends on: the resolved config, the data's bytes, the device."""
    from nmt_cli.config import from_dict

    digest = hashlib.sha256(device.encode())
    digest.update(json.dumps(from_dict(config).to_dict(), sort_keys=True).encode())
    for path in sorted((data / "text").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def find_finished(out: Path, key: str) -> Path | None:
    """A run folder under `out` (any lesson) that already trained and translated `key`."""
    for path in sorted(out.glob("*/*/result.json")):
        try:
            if json.loads(path.read_text(encoding="utf-8"))["key"] == key:
                return path.parent
        except (OSError, ValueError, KeyError):
            continue
    return None


def train_and_score(
    run: Run, data: Path, folder: Path, steps: int, seed: int, device: str, fresh: bool
) -> dict[str, Any]:
    """Train one run, translate the test set greedily, score it by length.

    A run with the same resolved config, data and device that already finished (in any
    lesson's folder, e.g. an interrupted `all`) is scored again from its output instead of
    trained again, unless `fresh`.
    """
    config = run_config(run, steps, seed)
    key = run_key(config, data, device)
    finished = None if fresh else find_finished(folder.parent.parent, key)
    if finished is not None:
        timing = json.loads((finished / "result.json").read_text(encoding="utf-8"))
        reused_from = str(finished.relative_to(folder.parent.parent))
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
        )
        nmt, log = nmt_command(), folder / "log.txt"
        train_minutes = call(
            [*nmt, "train", str(data / "bin"), "--out", str(folder / "run"),
             "--config", str(folder / "config.yaml"), "--device", device],
            log,
        )  # fmt: skip
        translate_minutes = call(
            [*nmt, "translate", str(folder / "run"), "--checkpoint", "last", "--beam", "1",
             "--batch-size", "200", "--device", device,
             "--input", str(data / "text" / "test.src"), "--output", str(folder / "test.hyp")],
            log,
        )  # fmt: skip
        timing = {
            "key": key,
            "train_minutes": round(train_minutes, 2),
            "translate_minutes": round(translate_minutes, 2),
        }
        (folder / "result.json").write_text(json.dumps(timing) + "\n", encoding="utf-8")
        finished, reused_from = folder, None
    sources, refs = (
        (data / "text" / f"test.{side}").read_text(encoding="utf-8").splitlines()
        for side in ("src", "tgt")
    )
    hyps = (finished / "test.hyp").read_text(encoding="utf-8").splitlines()
    return {
        "task": run.task.name,
        "label": run.label,
        "overrides": run.overrides,
        "steps": steps,
        "train_minutes": timing["train_minutes"],
        "translate_minutes": timing["translate_minutes"],
        "reused_from": reused_from,
        "buckets": accuracy_by_length(sources, refs, hyps, run.task.buckets()),
    }


# ---- reporting --------------------------------------------------------------------------------


def bucket_name(lengths: Sequence[int], task: Task) -> str:
    lo, hi = lengths
    name = str(lo) if lo == hi else f"{lo}–{hi}"
    return name + " (unseen)" if lo > task.train_lengths[1] else name


def markdown_tables(lesson: Lesson, results: list[dict[str, Any]]) -> str:
    """One table per task: a row per run, a column per length bucket, then steps and minutes."""
    parts = []
    for task in dict.fromkeys(run.task for run in lesson.runs):
        rows = [r for r in results if r["task"] == task.name]
        if not rows:
            continue
        names = [bucket_name(b["lengths"], task) for b in rows[0]["buckets"]]
        parts.append(f"**{task.name}**, exact match (%) by source length:\n")
        parts.append("| | " + " | ".join(names) + " | steps | train min |")
        parts.append("|---|" + "---:|" * (len(names) + 2))
        for r in rows:
            cells = ["–" if b["accuracy"] is None else f"{b['accuracy']:.1f}" for b in r["buckets"]]
            parts.append(
                f"| {r['label']} | "
                + " | ".join(cells)
                + f" | {r['steps']} | {r['train_minutes']:.1f} |"
            )
        parts.append("")
    return "\n".join(parts)


def plot(lesson: Lesson, results: list[dict[str, Any]], path: Path) -> str:
    """accuracy.png: exact match against length, a panel per task. Returns a status line."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed, no plot (pip install 'nmt-cli[plot]')"
    tasks = list(dict.fromkeys(run.task for run in lesson.runs))
    figure = Figure(figsize=(5.5 * len(tasks), 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        for r in (r for r in results if r["task"] == task.name):
            xs = [sum(b["lengths"]) / 2 for b in r["buckets"]]
            ys = [b["accuracy"] for b in r["buckets"]]
            ax.plot(xs, ys, marker="o", label=r["label"])
        ax.axvline(task.train_lengths[1] + 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{task.name} ({lesson.title.lower()})", fontsize=10)
        ax.set_xlabel("source length (characters); dotted: longest in training")
        ax.set_ylabel("exact match (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return f"plot: {path}"


def run_lesson(
    name: str, out: Path, steps: int | None, seed: int, device: str, fresh: bool
) -> None:
    lesson = LESSONS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"== {name}: {lesson.title} ({len(lesson.runs)} trainings)")
    data: dict[str, Path] = {}
    results = []
    for run in lesson.runs:
        if run.task.name not in data:
            data[run.task.name] = prepare_data(run.task, out, seed)
        print(f"   {run.task.name}, {run.label}:", end="", flush=True)
        result = train_and_score(
            run, data[run.task.name], folder / slug(f"{run.task.name} {run.label}"),
            steps or run.task.steps, seed, device, fresh,
        )  # fmt: skip
        results.append(result)
        accuracies = [b["accuracy"] for b in result["buckets"]]
        done = (
            f"already trained in {result['reused_from']}"
            if result["reused_from"]
            else f"{result['steps']} steps in {result['train_minutes']:.1f} min"
        )
        print(
            f" {done}; exact match by length: "
            + " ".join("–" if a is None else f"{a:.0f}" for a in accuracies)
        )
    summary = {
        "lesson": name,
        "title": lesson.title,
        "question": lesson.question,
        "seed": seed,
        "device": device,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "command": f"python examples/lessons/lessons.py {name}",
        "runs": results,
    }
    (folder / "results.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    tables = markdown_tables(lesson, results)
    (folder / "results.md").write_text(f"### {lesson.title}\n\n{tables}", encoding="utf-8")
    print("\n" + tables)
    print(plot(lesson, results, folder / "accuracy.png"))
    print(f"results: {folder / 'results.json'}, {folder / 'results.md'}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Classic seq2seq experiments, measured by exact match per input length."
    )
    parser.add_argument("lesson", choices=[*LESSONS, "all"])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="output folder")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the task's)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the data and training")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--fresh", action="store_true", help="train every run again, even one already finished"
    )
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be positive")
    for name in LESSONS if args.lesson == "all" else [args.lesson]:
        run_lesson(name, args.out, args.steps, args.seed, args.device, args.fresh)


if __name__ == "__main__":
    main()
