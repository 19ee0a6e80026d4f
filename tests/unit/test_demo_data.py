"""The demo corpus must be deterministic, aligned, disjoint across splits, and correct.

Correctness is checked by reading each source with a parser written here, independently of the
generator, and comparing with the target.
"""

from __future__ import annotations

import datetime
import importlib.util
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

DEMO_DATA = Path(__file__).resolve().parents[2] / "examples" / "demo_data.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_data", DEMO_DATA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_data = _load()

MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
FULL_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
}  # fmt: skip
DAY_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "twenty-first": 21, "twenty-second": 22,
    "twenty-third": 23, "twenty-fourth": 24, "twenty-fifth": 25, "twenty-sixth": 26,
    "twenty-seventh": 27, "twenty-eighth": 28, "twenty-ninth": 29, "thirtieth": 30,
    "thirty-first": 31,
}  # fmt: skip
SUFFIXED = {f"{d}{s}": d for d, s in [
    (1, "st"), (2, "nd"), (3, "rd"), (4, "th"), (5, "th"), (6, "th"), (7, "th"), (8, "th"),
    (9, "th"), (10, "th"), (11, "th"), (12, "th"), (13, "th"), (14, "th"), (15, "th"),
    (16, "th"), (17, "th"), (18, "th"), (19, "th"), (20, "th"), (21, "st"), (22, "nd"),
    (23, "rd"), (24, "th"), (25, "th"), (26, "th"), (27, "th"), (28, "th"), (29, "th"),
    (30, "th"), (31, "st"),
]}  # fmt: skip
# Column by column, ones first: "3+5 2+4 1+0" is 123 + 45, one to three columns.
ADDITION = re.compile(r"^\d\+\d( \d\+\d){0,2}$")


def _month(token: str) -> int:
    """Accepts "March", "march", "Mar", "mar", "Mar." (never "May.")."""
    word = token[:-1] if token.endswith(".") and token != "May." else token
    assert word in (word.lower(), word.capitalize()), token
    assert word.lower() in FULL_MONTHS or len(word) == 3, token
    assert not (token.endswith(".") and len(word) != 3), token
    return MONTHS[word.lower()[:3]]


def _parse_date(src: str) -> datetime.date:
    """Reads day, month and year from the source without the generator's code."""
    tokens = src.replace(",", "").split()
    if tokens[0] == "the":
        assert tokens[2] == "of", src
        tokens = tokens[1:]
    if len(tokens) == 4:  # ORDINAL of MONTH YEAR
        assert tokens[1] == "of" and not tokens[0].isdigit(), src
        day_token, month_token, year_token = tokens[0], tokens[2], tokens[3]
    elif tokens[0].lower().rstrip(".")[:3] in MONTHS:
        month_token, day_token, year_token = tokens  # MONTH DAY YEAR
    else:
        day_token, month_token, year_token = tokens  # DAY MONTH YEAR
    if day_token.isdigit():
        assert not day_token.startswith("0"), src
        day = int(day_token)
    else:
        day = DAY_WORDS.get(day_token) or SUFFIXED[day_token]
    assert re.fullmatch(r"(19|20)\d\d", year_token), src
    return datetime.date(int(year_token), _month(month_token), day)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo_data.write_splits(out, seed=1, n_train=3000, n_valid=300, n_test=300)
    return out


def _read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_same_seed_same_bytes_other_seed_differs(corpus: Path, tmp_path: Path) -> None:
    demo_data.write_splits(tmp_path / "again", seed=1, n_train=3000, n_valid=300, n_test=300)
    demo_data.write_splits(tmp_path / "other", seed=2, n_train=3000, n_valid=300, n_test=300)
    for f in sorted(corpus.iterdir()):
        assert (tmp_path / "again" / f.name).read_bytes() == f.read_bytes(), f.name
        assert (tmp_path / "other" / f.name).read_bytes() != f.read_bytes(), f.name


def test_splits_are_aligned_and_sized(corpus: Path) -> None:
    sizes = {"train": 3000, "valid": 300, "test": 300}
    assert sorted(p.name for p in corpus.iterdir()) == sorted(
        f"{split}.{side}" for split in sizes for side in ("src", "tgt")
    )
    for split, n in sizes.items():
        src, tgt = _read(corpus / f"{split}.src"), _read(corpus / f"{split}.tgt")
        assert len(src) == len(tgt) == n
        assert all(line and line == line.strip() and "\t" not in line for line in src + tgt)


def test_no_source_repeats_within_or_across_splits(corpus: Path) -> None:
    sources = {split: _read(corpus / f"{split}.src") for split in ("train", "valid", "test")}
    everything = [s for lines in sources.values() for s in lines]
    assert len(set(everything)) == len(everything)


def test_test_and_valid_do_not_depend_on_train_size(corpus: Path, tmp_path: Path) -> None:
    demo_data.write_splits(tmp_path, seed=1, n_train=10, n_valid=300, n_test=300)
    for name in ("valid.src", "valid.tgt", "test.src", "test.tgt"):
        assert (tmp_path / name).read_bytes() == (corpus / name).read_bytes()


def test_every_target_is_correct(corpus: Path) -> None:
    src = _read(corpus / "train.src") + _read(corpus / "test.src")
    tgt = _read(corpus / "train.tgt") + _read(corpus / "test.tgt")
    n_dates = 0
    for s, t in zip(src, tgt, strict=True):
        if ADDITION.match(s):
            cols = s.split()
            a, b = (int("".join(col[i] for col in reversed(cols))) for i in (0, 2))
            assert t == str(a + b)[::-1], s
            assert len(cols) == max(len(str(a)), len(str(b))), s  # no column of two padding 0s
        else:
            assert t == _parse_date(s).isoformat(), s
            n_dates += 1
    assert 0.4 < n_dates / len(src) < 0.6


def test_surface_forms_vary(corpus: Path) -> None:
    src = _read(corpus / "train.src")
    patterns = {
        "day in words": r"(^| )(third|eleventh|thirtieth) ",
        "twenty-something day": r"(^| )twenty-[a-z]+ ",
        "suffixed day": r"\b\d{1,2}(st|nd|rd|th)\b",
        "the ... of": r"^the \S+ of ",
        "month first with comma": r"^[A-Za-z]+\.? \S+, \d{4}$",
        "day first": r"^\d{1,2} [A-Za-z]+\.? \d{4}$",
        "abbreviation with dot": r"\b[A-Z][a-z]{2}\. ",
        "lowercase month": r"\b(january|february|march|april|june|july|august)\b",
        "one column": r"^\d\+\d$",
        "three columns": r"^\d\+\d \d\+\d \d\+\d$",
        "a shorter first operand": r" 0\+[1-9]$",
        "a shorter second operand": r" [1-9]\+0$",
    }
    for name, pattern in patterns.items():
        assert any(re.search(pattern, s) for s in src), name


@pytest.mark.parametrize(
    ("day", "word", "suffixed"),
    [(1, "first", "1st"), (2, "second", "2nd"), (3, "third", "3rd"), (11, "eleventh", "11th"),
     (12, "twelfth", "12th"), (13, "thirteenth", "13th"), (20, "twentieth", "20th"),
     (21, "twenty-first", "21st"), (22, "twenty-second", "22nd"), (23, "twenty-third", "23rd"),
     (30, "thirtieth", "30th"), (31, "thirty-first", "31st")],
)  # fmt: skip
def test_day_words_for_every_tricky_day(day: int, word: str, suffixed: str) -> None:
    """Sampling may miss a rare day form; the day spellings are checked directly."""
    assert demo_data._ordinal_word(day) == word
    assert demo_data._ordinal_suffix(day) == suffixed


@pytest.mark.parametrize(
    ("n", "written"), [(0, "0"), (7, "7"), (10, "01"), (123, "321"), (100, "001")]
)
def test_numbers_are_written_least_significant_digit_first(n: int, written: str) -> None:
    assert demo_data.reversed_digits(n) == written


@pytest.mark.parametrize(
    ("a", "b", "written"),
    [(0, 0, "0+0"), (123, 45, "3+5 2+4 1+0"), (7, 120, "7+0 0+2 0+1"), (999, 1, "9+1 9+0 9+0")],
)
def test_additions_are_written_column_by_column(a: int, b: int, written: str) -> None:
    assert demo_data.columns(a, b) == written


def test_generate_is_importable_and_seeded() -> None:
    first = demo_data.generate(200, random.Random(7))
    assert first == demo_data.generate(200, random.Random(7))
    assert len(first) == 200 and len({s for s, _ in first}) == 200
    assert demo_data.generate(0, random.Random(7)) == []


def test_command_line(tmp_path: Path) -> None:
    cmd = [sys.executable, str(DEMO_DATA), str(tmp_path / "out"), "--seed", "3"]
    cmd += ["--train", "50", "--valid", "5", "--test", "7"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "50 train" in result.stdout
    assert len(_read(tmp_path / "out" / "train.src")) == 50
    assert len(_read(tmp_path / "out" / "test.tgt")) == 7
    bad = subprocess.run([*cmd[:3], "--train", "-1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "must not be negative" in bad.stderr
