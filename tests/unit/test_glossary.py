"""Constraint input: `SOURCE<TAB>PHRASE...` lines and glossary files."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt_cli.errors import DataError
from nmt_cli.glossary import Glossary, split_constraints

TERMS = {"Hund": "dog", "New York": "NYC", "York": "Yorkshire", "C++": "C plus plus"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Ein Hund und noch ein Hund.", ["dog"]),  # once, though twice in the line
        ("Die Hundehütte.", []),  # whole words only
        ("ein hund", []),  # case-sensitive
        ("New York, nicht York.", ["NYC", "Yorkshire"]),  # the longest term wins where they overlap
        ("Ich mag C++ sehr", ["C plus plus"]),  # terms are text, not patterns
        ("Hund in New York", ["dog", "NYC"]),  # in the order of the source
    ],
)
def test_a_glossary_gives_the_target_terms_of_the_source_terms_a_line_contains(
    source: str, expected: list[str]
) -> None:
    assert Glossary(TERMS).phrases_for(source) == expected


def test_an_empty_glossary_gives_nothing() -> None:
    assert Glossary({}).phrases_for("Hund") == []


def test_load_reads_tab_separated_terms(tmp_path: Path) -> None:
    path = tmp_path / "terms.tsv"
    path.write_text("Hund\tdog\n\n  Katze \t cat\n", encoding="utf-8")
    assert Glossary.load(path).terms == {"Hund": "dog", "Katze": "cat"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hund\tdog\nKatze\n", r"terms.tsv:2: expected SOURCE TERM<TAB>TARGET TERM"),
        ("Hund\tdog\tpuppy\n", r"terms.tsv:1: expected"),
        ("Hund\t \n", r"terms.tsv:1: expected"),
        ("Hund\tdog\nHund\thound\n", r"terms.tsv:2: 'Hund' is already in the glossary"),
    ],
)
def test_a_bad_glossary_line_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "terms.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        Glossary.load(path)


def test_a_missing_glossary_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read the glossary"):
        Glossary.load(tmp_path / "nope.tsv")


def test_split_constraints_takes_phrases_after_tabs_and_from_the_glossary() -> None:
    lines = ["Ein Hund.\tpuppy\t a dog \t", "Eine Katze.", "\tcat", "Hund\tdog"]
    sources, phrases = split_constraints(lines, True, Glossary({"Hund": "dog"}))
    assert sources == ["Ein Hund.", "Eine Katze.", "", "Hund"]
    assert phrases == [["puppy", "a dog", "dog"], [], ["cat"], ["dog"]]
    # Without --constraints a tab is part of the source.
    assert split_constraints(["a\tb"], False, Glossary({})) == (["a\tb"], [[]])
    assert split_constraints(["a\tb"], False, None) == (["a\tb"], None)
