"""The demo's verdict: did the model learn both tasks? Exact match per task, some samples, one line.

Usage:
    python examples/demo_verdict.py SRC REF HYP [--threshold 95]

prints a mix of translations (right and wrong ones of both tasks), then one line such as
`demo: PASS, dates 99.6 %, addition 97.1 %, BLEU 98.9` and exits 0; when either task's exact
match is below the threshold the line says FAIL and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

THRESHOLD = 95.0  # percent exact match each task must reach
TASKS = ("dates", "addition")


def task_of(source: str) -> str:
    """`3+5 2+4 1+0` is addition, everything else a date."""
    return "addition" if "+" in source else "dates"


@dataclass(frozen=True)
class Verdict:
    """Exact match per task (percent) and corpus BLEU of one test set."""

    exact: dict[str, float]
    bleu: float
    threshold: float = THRESHOLD

    @property
    def passed(self) -> bool:
        """Every task at or above the threshold (and at least one example of each)."""
        return set(self.exact) == {"dates", "addition"} and all(
            e >= self.threshold for e in self.exact.values()
        )

    def line(self) -> str:
        scores = ", ".join(f"{task} {self.exact.get(task, 0.0):.1f} %" for task in TASKS)
        verdict = "PASS" if self.passed else "FAIL"
        short = "" if self.passed else f" (each task must reach {self.threshold:g} %)"
        return f"demo: {verdict}, {scores}, BLEU {self.bleu:.1f}{short}"


def judge(src: list[str], ref: list[str], hyp: list[str], threshold: float = THRESHOLD) -> Verdict:
    """Exact match per task and BLEU of `hyp` against `ref` (one line each, aligned with `src`).

    Raises:
        ValueError: the three lists differ in length.
    """
    if not len(src) == len(ref) == len(hyp):
        raise ValueError(f"{len(src)} sources, {len(ref)} references, {len(hyp)} hypotheses")
    exact: dict[str, float] = {}
    for task in TASKS:
        rows = [(r, h) for s, r, h in zip(src, ref, hyp, strict=True) if task_of(s) == task]
        if rows:
            exact[task] = 100 * sum(r == h for r, h in rows) / len(rows)
    return Verdict(exact, corpus_bleu(hyp, ref), threshold)


def corpus_bleu(hyp: list[str], ref: list[str]) -> float:
    """sacreBLEU's corpus BLEU, as `nmt eval` computes it."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hyp, [ref]).score)


def samples(src: list[str], ref: list[str], hyp: list[str], per_task: int = 4) -> list[str]:
    """Up to `per_task` lines of each task: its first mistakes, then correct ones."""
    lines = []
    for task in TASKS:
        rows = [(s, r, h) for s, r, h in zip(src, ref, hyp, strict=True) if task_of(s) == task]
        wrong = [row for row in rows if row[1] != row[2]]
        right = [row for row in rows if row[1] == row[2]]
        for s, r, h in (wrong[: per_task // 2] + right)[:per_task]:
            lines.append(f"  {s:<36} -> {h:<12} {'ok' if h == r else 'expected ' + r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Judge the demo's test translations.")
    parser.add_argument("src", type=Path)
    parser.add_argument("ref", type=Path)
    parser.add_argument("hyp", type=Path)
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="percent per task")
    args = parser.parse_args(argv)
    src, ref, hyp = (
        p.read_text(encoding="utf-8").splitlines() for p in (args.src, args.ref, args.hyp)
    )
    verdict = judge(src, ref, hyp, args.threshold)
    print("some translations (addition is written column by column, ones first:")
    print("3+5 2+4 1+0 -> 861 is 123 + 45 = 168):")
    print("\n".join(samples(src, ref, hyp)))
    print(verdict.line())
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
