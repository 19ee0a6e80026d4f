"""The lessons' synthetic tasks, their splits by length, and exact match by length.

Standard library only, so the tests can check the data without training anything.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DIGITS = "0123456789"


def reversal(length: int, rng: random.Random) -> tuple[str, str]:
    """`length` random digits -> the same digits backwards ("4021" -> "1204")."""
    src = "".join(rng.choice(DIGITS) for _ in range(length))
    return src, src[::-1]


def copy(length: int, rng: random.Random) -> tuple[str, str]:
    """`length` random digits -> the same digits: a monotone "translation"."""
    src = "".join(rng.choice(DIGITS) for _ in range(length))
    return src, src


def _number(digits: int, rng: random.Random) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def addition(length: int, rng: random.Random) -> tuple[str, str]:
    """A sum written in `length` characters -> its value, digits least-significant first.

    123+4567=4690 is "321+7654" -> "0964": the carry flows the way the decoder writes, so an
    output digit never depends on digits the decoder has not reached yet.
    """
    if length < 3:
        raise ValueError(f"an addition needs at least 3 characters, not {length}")
    a_digits = rng.randint(1, length - 2)
    a, b = _number(a_digits, rng), _number(length - 1 - a_digits, rng)
    return f"{str(a)[::-1]}+{str(b)[::-1]}", str(a + b)[::-1]


TASKS: dict[str, Callable[[int, random.Random], tuple[str, str]]] = {
    "reversal": reversal,
    "copy": copy,
    "addition": addition,
}


@dataclass(frozen=True)
class Task:
    """A task and the source lengths (in characters) it is trained and tested on."""

    name: str
    train_lengths: tuple[int, int]  # inclusive range, drawn uniformly
    test_max: int  # test lengths run from train_lengths[0] to this (beyond training = unseen)
    bucket: int  # width of a length bucket in the tables
    steps: int = 2000  # training steps per run: what a small model needs to learn the task
    n_train: int = 40_000
    per_length: int = 40  # test examples per length (valid: a quarter of that)

    def buckets(self) -> list[tuple[int, int]]:
        """Inclusive length ranges; training lengths and unseen lengths never share one."""
        lo, hi = self.train_lengths
        seen = [(s, min(s + self.bucket - 1, hi)) for s in range(lo, hi + 1, self.bucket)]
        unseen = [(hi + 1, self.test_max)] if self.test_max > hi else []
        return seen + unseen


def make_splits(task: Task, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Test, valid and train pairs; no source is in two splits, and test/valid never repeat.

    Test and valid have the same number of examples of every length; train draws its lengths
    uniformly from `task.train_lengths` and may repeat a pair (short lengths have few).
    """
    make, rng = TASKS[task.name], random.Random(seed)
    held_out: set[str] = set()

    def distinct(length: int, count: int) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for _ in range(100 * count):
            if len(pairs) == count:
                break
            src, tgt = make(length, rng)
            if src not in held_out:
                held_out.add(src)
                pairs.append((src, tgt))
        if len(pairs) < count:
            raise ValueError(f"{task.name}: only {len(pairs)} distinct sources of length {length}")
        return pairs

    lo, hi = task.train_lengths
    lengths = range(lo, task.test_max + 1)
    test = [pair for n in lengths for pair in distinct(n, task.per_length)]
    valid = [pair for n in range(lo, hi + 1) for pair in distinct(n, max(1, task.per_length // 4))]
    train: list[tuple[str, str]] = []
    while len(train) < task.n_train:
        src, tgt = make(rng.randint(lo, hi), rng)
        if src not in held_out:
            train.append((src, tgt))
    return {"train": train, "valid": valid, "test": test}


def accuracy_by_length(
    sources: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    buckets: Sequence[tuple[int, int]],
) -> list[dict[str, Any]]:
    """Exact match per bucket of source length (characters; spaces around the output ignored).

    Returns:
        one row per bucket: {"lengths": [lo, hi], "n", "correct", "accuracy" (percent, or None
        for an empty bucket)}.
    """
    if not len(sources) == len(references) == len(hypotheses):
        raise ValueError(
            f"{len(sources)} sources, {len(references)} references, {len(hypotheses)} hypotheses"
        )
    rows = [{"lengths": [lo, hi], "n": 0, "correct": 0} for lo, hi in buckets]
    for src, ref, hyp in zip(sources, references, hypotheses, strict=True):
        for row, (lo, hi) in zip(rows, buckets, strict=True):
            if lo <= len(src) <= hi:
                row["n"] += 1
                row["correct"] += hyp.strip() == ref.strip()
                break
    for row in rows:
        row["accuracy"] = 100 * row["correct"] / row["n"] if row["n"] else None
    return rows
