"""`nmt translate --constraints` and `--glossary` on the tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import nmt

pytestmark = pytest.mark.e2e

PHRASES = ["42", "1999", "-07-", "7"]


def translate(run_dir: Path, source: str, *args: str) -> tuple[list[str], str]:
    result = nmt("translate", str(run_dir), "--checkpoint", "last", *args, input=source)
    return result.stdout.splitlines(), result.stderr


def test_every_constraint_appears_in_every_output(run_dir: Path, corpus: Path) -> None:
    sources = (corpus / "test.src").read_text().splitlines()[:12]
    wanted = [PHRASES[i % len(PHRASES) :][:2] for i in range(len(sources))]
    lines = ["\t".join([s, *w]) for s, w in zip(sources, wanted, strict=True)]
    out, stderr = translate(run_dir, "\n".join(lines) + "\n", "--constraints", "--beam", "4")
    assert len(out) == len(sources)
    for text, phrases in zip(out, wanted, strict=True):
        assert all(p in text for p in phrases), (text, phrases)
    assert "constraint" not in stderr
    plain, _ = translate(run_dir, "\n".join(sources) + "\n", "--beam", "4")
    assert plain != out


def test_without_phrases_the_output_is_unchanged(run_dir: Path, corpus: Path) -> None:
    source = (corpus / "test.src").read_text()
    plain, _ = translate(run_dir, source)
    assert translate(run_dir, source, "--constraints")[0] == plain
    # Lines without phrases in the same search batches as lines with them: still unchanged.
    lines = [f"{s}\t42" if i % 2 else s for i, s in enumerate(source.splitlines())]
    mixed, _ = translate(run_dir, "\n".join(lines) + "\n", "--constraints")
    assert mixed[::2] == plain[::2] and all("42" in text for text in mixed[1::2])
    empty = tmp_glossary(run_dir.parent / "unused.tsv", "nie gesehen\t1234\n")
    assert translate(run_dir, source, "--glossary", str(empty))[0] == plain


def test_an_unsatisfiable_constraint_gives_one_line_and_a_warning(run_dir: Path) -> None:
    too_long = " ".join(["1234-56-78"] * 8)
    out, stderr = translate(run_dir, f"3+4\t{too_long}\n12 + 7\t19\n", "--constraints")
    assert len(out) == 2 and "19" in out[1]
    assert f"line 1: constraint {too_long!r} does not fit in the output length limit" in stderr


def test_a_glossary_term_found_in_the_source_is_enforced(run_dir: Path, tmp_path: Path) -> None:
    terms = tmp_glossary(tmp_path / "terms.tsv", "March\t-03-\n+\t0\n")
    lines = ["the third of March 1998", "12 + 7", "the first of May 1960"]
    out, _ = translate(run_dir, "\n".join(lines) + "\n", "--glossary", str(terms))
    assert "-03-" in out[0] and "0" in out[1]
    assert out[2] == translate(run_dir, lines[2] + "\n")[0][0]  # no term in it


def test_a_bad_glossary_is_a_one_line_error(run_dir: Path, tmp_path: Path) -> None:
    terms = tmp_glossary(tmp_path / "bad.tsv", "March\t-03-\nMay\n")
    result = nmt("translate", str(run_dir), "--glossary", str(terms), input="3+4\n", check=False)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"nmt: error: {terms}:2: expected SOURCE TERM<TAB>TARGET TERM"
    ]


def test_help_shows_the_options_with_an_example() -> None:
    help_text = nmt("translate", "--help").stdout
    for text in ("--constraints", "--glossary", "nmt translate runs/de-en --constraints"):
        assert text in help_text


def tmp_glossary(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
