"""The lessons script: its synthetic tasks are right, its splits disjoint, its scoring exact.

Nothing is trained here; the lessons themselves are run by hand (examples/lessons/README.md).
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pytest

from nmt_cli.config import from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "lessons"))

import lesson_data
import lessons


@pytest.mark.parametrize("length", [3, 4, 9, 25])
def test_tasks_have_the_asked_length_and_are_correct(length: int) -> None:
    rng = random.Random(length)
    for _ in range(200):
        src, tgt = lesson_data.reversal(length, rng)
        assert len(src) == length and src.isdigit() and tgt == "".join(reversed(src))
        src, tgt = lesson_data.copy(length, rng)
        assert len(src) == length and tgt == src
        src, tgt = lesson_data.addition(length, rng)
        # checked by parsing the text, independently of the generator: numbers are written
        # least-significant digit first, without leading (here: trailing) zeros
        a, b = (n[::-1] for n in src.split("+"))
        assert len(src) == length and a.isdigit() and b.isdigit()
        assert all(n == "0" or not n.startswith("0") for n in (a, b, tgt[::-1]))
        assert int(tgt[::-1]) == int(a) + int(b)


def test_addition_needs_three_characters() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        lesson_data.addition(2, random.Random(0))


def test_splits_are_deterministic_disjoint_and_cover_the_lengths() -> None:
    task = lesson_data.Task("addition", train_lengths=(3, 8), test_max=10, bucket=3, n_train=3000)
    splits = lesson_data.make_splits(task, seed=5)
    assert splits == lesson_data.make_splits(task, seed=5)
    assert splits != lesson_data.make_splits(task, seed=6)
    train, valid, test = (splits[name] for name in ("train", "valid", "test"))
    assert len(train) == 3000
    test_sources = {s for s, _ in test}
    valid_sources = {s for s, _ in valid}
    assert len(test_sources) == len(test) and len(valid_sources) == len(valid)
    assert not test_sources & valid_sources
    assert not {s for s, _ in train} & (test_sources | valid_sources)
    test_lengths = [len(s) for s, _ in test]
    assert {n: test_lengths.count(n) for n in range(3, 11)} == dict.fromkeys(range(3, 11), 40)
    assert {len(s) for s, _ in valid} == set(range(3, 9))  # never longer than training
    assert {len(s) for s, _ in train} == set(range(3, 9))


def test_too_few_distinct_sources_is_an_error() -> None:
    task = lesson_data.Task("reversal", train_lengths=(1, 2), test_max=2, bucket=1, per_length=11)
    with pytest.raises(ValueError, match="distinct sources of length 1"):
        lesson_data.make_splits(task, seed=1)  # only 10 one-digit sources exist


def test_buckets_split_seen_from_unseen_lengths() -> None:
    task = lesson_data.Task("reversal", train_lengths=(3, 14), test_max=18, bucket=5)
    assert task.buckets() == [(3, 7), (8, 12), (13, 14), (15, 18)]
    assert lesson_data.Task("copy", (3, 7), 7, 5).buckets() == [(3, 7)]


def test_accuracy_by_length_counts_exact_matches() -> None:
    sources = ["123", "4567", "89", "12345678", "999999999"]
    references = ["321", "7654", "98", "87654321", "999999999"]
    hypotheses = ["321", "7645", "98 ", "87654321", ""]
    rows = lesson_data.accuracy_by_length(sources, references, hypotheses, [(1, 3), (4, 6), (7, 8)])
    assert [(r["lengths"], r["n"], r["correct"]) for r in rows] == [
        ([1, 3], 2, 2),
        ([4, 6], 1, 0),
        ([7, 8], 1, 1),
    ]  # the length-9 pair is in no bucket
    assert [r["accuracy"] for r in rows] == [100.0, 0.0, 100.0]
    empty = lesson_data.accuracy_by_length(["1"], ["1"], ["1"], [(5, 6)])
    assert empty[0]["accuracy"] is None
    with pytest.raises(ValueError, match="1 sources, 1 references, 2 hypotheses"):
        lesson_data.accuracy_by_length(["1"], ["1"], ["1", "2"], [(1, 1)])


def test_every_lesson_config_is_valid() -> None:
    for lesson in lessons.LESSONS.values():
        for run in lesson.runs:
            config = from_dict(lessons.run_config(run, run.task.steps, seed=1))
            assert config.train.max_steps == run.task.steps == config.train.valid_every
            for key, value in run.overrides.items():
                section, name = key.split(".")
                assert getattr(getattr(config, section), name) == value


def test_markdown_table_marks_unseen_lengths() -> None:
    task = lesson_data.Task("copy", train_lengths=(3, 4), test_max=5, bucket=2)
    lesson = dataclasses.replace(
        lessons.LESSONS["reverse"], runs=(lessons.Run(task, "a"), lessons.Run(task, "b"))
    )
    results = [
        {
            "task": "copy",
            "label": label,
            "steps": 30,
            "train_minutes": 1.5,
            "buckets": [
                {"lengths": [3, 4], "accuracy": 90.0},
                {"lengths": [5, 5], "accuracy": None},
            ],
        }
        for label in ("a", "b")
    ]
    table = lessons.markdown_tables(lesson, results)
    assert "| | 3–4 | 5 (unseen) | steps | train min |" in table
    assert "| a | 90.0 | – | 30 | 1.5 |" in table and "| b |" in table


def test_finished_runs_are_found_by_resolved_config_and_data(tmp_path: Path) -> None:
    data = tmp_path / "data" / "copy"
    (data / "text").mkdir(parents=True)
    (data / "text" / "test.src").write_text("12\n")
    task = lesson_data.Task("copy", (3, 4), 5, 2)
    lstm = lessons.run_config(lessons.Run(task, "a", {"model.cell": "lstm"}), 10, seed=1)
    default = lessons.run_config(lessons.Run(task, "b"), 10, seed=1)
    key = lessons.run_key(lstm, data, "cpu")
    assert key == lessons.run_key(default, data, "cpu")  # lstm is the default: same run
    assert key != lessons.run_key(default, data, "cuda")
    assert key != lessons.run_key(lessons.run_config(lessons.Run(task, "b"), 11, 1), data, "cpu")
    assert lessons.find_finished(tmp_path, key) is None
    done = tmp_path / "cells" / "copy-lstm"
    done.mkdir(parents=True)
    (done / "result.json").write_text(f'{{"key": "{key}", "train_minutes": 1.0}}')
    assert lessons.find_finished(tmp_path, key) == done
    (data / "text" / "test.src").write_text("13\n")  # other data: train again
    assert lessons.find_finished(tmp_path, lessons.run_key(lstm, data, "cpu")) is None
