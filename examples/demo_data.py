"""Seeded, offline synthetic "translation" corpus for `make demo` and the tests.

Two tasks share one corpus, so one small model must learn both:

- written dates to ISO dates: "the third of march 1998", "March 3, 1998", "3rd of Mar. 1998",
  "twenty-first Feb 2003" -> "1998-03-03", ..., "2003-02-21";
- addition, written the way one adds by hand: column by column, ones first, each column the
  two digits to add: "3+5 2+4 1+0" (123 + 45) -> "861" (168, also ones first), operands
  0..999. Each answer digit then sits under its own column, and the carry travels the way the
  decoder writes. Written as two numbers ("321+54", even ones first), each answer digit
  depends on two digits far apart, and the demo's model learned it far too slowly
  (benchmarks/README.md, "The demo's addition").

Usage:
    python examples/demo_data.py OUT_DIR [--seed 1] [--train 20000] [--valid 500] [--test 500]

writes OUT_DIR/{train,valid,test}.{src,tgt}: UTF-8, one example per line, aligned. The same seed
gives the same bytes. No source appears twice, so valid and test never overlap train. Test is
drawn first and valid next, so both stay the same when only --train changes.

Standard library only: this runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import datetime
import random
from pathlib import Path

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_ORDINAL_WORDS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth",
)  # fmt: skip
_FIRST_DAY = datetime.date(1900, 1, 1).toordinal()
_LAST_DAY = datetime.date(2099, 12, 31).toordinal()


def _ordinal_word(day: int) -> str:
    """1 -> "first", 20 -> "twentieth", 21 -> "twenty-first", 31 -> "thirty-first"."""
    if day < 20:
        return _ORDINAL_WORDS[day - 1]
    tens, ones = divmod(day, 10)
    tens_word = ("twenty", "thirty")[tens - 2]
    if ones == 0:
        return tens_word[:-1] + "ieth"
    return f"{tens_word}-{_ORDINAL_WORDS[ones - 1]}"


def _ordinal_suffix(day: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _month_form(month: int, rng: random.Random) -> str:
    name = _MONTHS[month - 1]
    form = rng.randrange(5)
    if form == 0:
        return name
    if form == 1:
        return name.lower()
    abbr = name[:3] if form != 4 else name[:3].lower()
    # "Mar." but never "May." ("May" is the whole name)
    return abbr + "." if form == 3 and len(name) > 3 else abbr


def _date_source(date: datetime.date, rng: random.Random) -> str:
    ordinal = _ordinal_word(date.day) if rng.random() < 0.5 else _ordinal_suffix(date.day)
    day = str(date.day) if rng.random() < 0.4 else ordinal
    month = _month_form(date.month, rng)
    comma = "," if rng.random() < 0.5 else ""
    template = rng.randrange(4)
    if template == 0:
        return f"{day} {month} {date.year}"  # 3 March 1998
    if template == 1:
        return f"{month} {day}{comma} {date.year}"  # March 3, 1998
    if template == 2:
        return f"the {ordinal} of {month}{comma} {date.year}"  # the third of march 1998
    return f"{ordinal} of {month}{comma} {date.year}"  # 3rd of Mar. 1998


def _operand(rng: random.Random) -> int:
    # Draw the digit count first, so 1- and 2-digit operands are not swamped by 3-digit ones.
    digits = rng.randint(1, 3)
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def reversed_digits(n: int) -> str:
    """123 -> "321", 100 -> "001": the number, least significant digit first."""
    return str(n)[::-1]


def columns(a: int, b: int) -> str:
    """(123, 45) -> "3+5 2+4 1+0": the digits to add, column by column, ones first."""
    width = max(len(str(a)), len(str(b)))
    ones_first = (reversed_digits(n).ljust(width, "0") for n in (a, b))
    pairs = zip(*ones_first, strict=True)
    return " ".join(f"{x}+{y}" for x, y in pairs)


def _example(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        date = datetime.date.fromordinal(rng.randint(_FIRST_DAY, _LAST_DAY))
        return _date_source(date, rng), date.isoformat()
    a, b = _operand(rng), _operand(rng)
    return columns(a, b), reversed_digits(a + b)


def generate(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Draws `n` examples with distinct sources, half dates and half additions on average.

    Args:
        n: number of examples.
        rng: the only source of randomness; the same state gives the same examples.

    Returns:
        (source, target) pairs.
    """
    examples: list[tuple[str, str]] = []
    seen: set[str] = set()
    # The space holds millions of sources, so repeats are rare; the bound only stops a runaway.
    for _ in range(20 * n + 1000):
        if len(examples) == n:
            return examples
        src, tgt = _example(rng)
        if src not in seen:
            seen.add(src)
            examples.append((src, tgt))
    if len(examples) < n:
        raise ValueError(f"could draw only {len(examples)} distinct examples, not {n}")
    return examples


def write_splits(
    out_dir: str | Path, seed: int, n_train: int, n_valid: int, n_test: int
) -> dict[str, int]:
    """Writes {train,valid,test}.{src,tgt} into `out_dir` (created if needed).

    Args:
        out_dir: target folder.
        seed: seed for `random.Random`.
        n_train: number of training examples.
        n_valid: number of validation examples.
        n_test: number of test examples.

    Returns:
        Examples written per split name.
    """
    if min(n_train, n_valid, n_test) < 0:
        raise ValueError("split sizes must not be negative")
    examples = generate(n_test + n_valid + n_train, random.Random(seed))
    splits = {
        "test": examples[:n_test],
        "valid": examples[n_test : n_test + n_valid],
        "train": examples[n_test + n_valid :],
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        for side, index in (("src", 0), ("tgt", 1)):
            text = "".join(pair[index] + "\n" for pair in pairs)
            (out / f"{name}.{side}").write_text(text, encoding="utf-8", newline="\n")
    return {name: len(pairs) for name, pairs in splits.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic dates + addition corpus.")
    parser.add_argument("out_dir", type=Path, help="folder for {train,valid,test}.{src,tgt}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train", type=int, default=20000, help="training examples")
    parser.add_argument("--valid", type=int, default=500, help="validation examples")
    parser.add_argument("--test", type=int, default=500, help="test examples")
    args = parser.parse_args(argv)
    if min(args.train, args.valid, args.test) < 0:
        parser.error("--train, --valid and --test must not be negative")
    counts = write_splits(args.out_dir, args.seed, args.train, args.valid, args.test)
    print(", ".join(f"{n} {name}" for name, n in counts.items()), f"examples in {args.out_dir}")


if __name__ == "__main__":
    main()
