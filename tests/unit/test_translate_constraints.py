"""Constraints through the library: Translator.translate(_lines) and translate_stream.

The model is test_stream's tiny untrained one: whatever it prefers, the phrases must appear.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from test_stream import LINES, translator  # noqa: F401 (a fixture)

from nmt_cli.glossary import Glossary
from nmt_cli.stream import StreamOptions, translate_stream
from nmt_cli.translate import Translator

PHRASES = [["dog"], ["cat"], ["mat 21", "the cat"], ["number"]]


def test_every_phrase_appears_in_every_translation(translator: Translator) -> None:  # noqa: F811
    plain = translator.translate(LINES)
    out = translator.translate(LINES, constraints=PHRASES)
    assert out[1] == ""  # an empty line stays empty, its phrase unused
    for line, text, phrases in zip(LINES, out, PHRASES, strict=True):
        if line:
            assert all(p in text for p in phrases), (text, phrases)
    assert any(a != b for a, b in zip(plain, out, strict=True)), "the phrases changed nothing"
    n_best = translator.translate_lines(LINES, n_best=2, constraints=PHRASES)
    for hyps, phrases in zip(n_best[2:], PHRASES[2:], strict=True):
        assert all(p in h.text for h in hyps for p in phrases)


def test_no_phrases_translate_as_without_constraints(translator: Translator) -> None:  # noqa: F811
    assert translator.translate(LINES, constraints=[[] for _ in LINES]) == translator.translate(
        LINES
    )
    for beam in (1, 2):
        assert translator.translate(LINES, beam, [[]] * len(LINES)) == translator.translate(
            LINES, beam
        )


def test_a_phrase_too_long_for_the_limit_gives_one_line_and_a_warning(
    translator: Translator,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    too_long = "the dog number 3 sat on mat 21. the cat number 4 sat on mat 28."
    with caplog.at_level(logging.WARNING):
        out = translator.translate_lines(
            ["mat", "the cat"], first_line=7, constraints=[[too_long], ["dog"]]
        )
    assert len(out) == 2 and len(out[0]) == 1 and "dog" in out[1][0].text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"line 7: constraint {too_long!r} does not fit in the output length limit; "
        "translated without it"
    ]


def test_a_phrase_outside_the_vocabulary_is_ignored_with_a_warning(
    translator: Translator,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        out = translator.translate(["the cat sat"], constraints=[["Zürich"]])
    assert out == translator.translate(["the cat sat"])
    assert "line 1: constraint 'Zürich' has characters the target vocabulary lacks" in caplog.text


def test_stream_takes_phrases_after_tabs_and_from_a_glossary(
    translator: Translator,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("the cat sat\tdog\nthe cat sat on mat 21.\n\tcat\n", encoding="utf-8")
    options = StreamOptions(constraints=True, glossary=Glossary({"mat": "number"}))
    out = io.StringIO()
    with source.open("rb") as reader:
        stats = translate_stream(translator, reader, out, options)
    lines = out.getvalue().splitlines()
    assert stats.lines == 3 and len(lines) == 3
    assert "dog" in lines[0] and "number" not in lines[0]
    assert "number" in lines[1] and lines[2] == ""
    expected = translator.translate(
        ["the cat sat", "the cat sat on mat 21.", ""], constraints=[["dog"], ["number"], []]
    )
    assert lines == expected
