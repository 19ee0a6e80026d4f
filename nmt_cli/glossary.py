"""Where translation constraints come from: phrases after the source line, and glossaries.

With `nmt translate --constraints`, an input line is `SOURCE<TAB>PHRASE<TAB>PHRASE...`: the
target phrases must appear in the line's translation. A glossary file (`--glossary FILE.tsv`)
holds `SOURCE TERM<TAB>TARGET TERM` lines; a line whose source contains a source term (as whole
words, case-sensitive; the longest term wins where terms overlap) must get its target term.
Both give plain data, one list of target phrases per line, which is what
`Translator.translate_lines(..., constraints=...)` takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from nmt_cli.errors import DataError


class Glossary:
    """Source terms and the target terms they must be translated to."""

    def __init__(self, terms: Mapping[str, str]) -> None:
        self.terms = dict(terms)
        longest_first = sorted(self.terms, key=len, reverse=True)
        alternatives = "|".join(re.escape(term) for term in longest_first)
        # (?<!\w) and (?!\w): whole words only ("Hund" is not in "Hundehütte")
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)") if terms else None

    @classmethod
    def load(cls, path: Path) -> Glossary:
        """Read `SOURCE<TAB>TARGET` lines (blank lines are skipped).

        Raises:
            DataError: an unreadable file, or a line without exactly two non-empty fields or
                with a source term given twice (the message names the file and line).
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read the glossary: {e}") from None
        terms: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) != 2 or not all(fields):
                raise DataError(f"{path}:{number}: expected SOURCE TERM<TAB>TARGET TERM")
            if fields[0] in terms:
                raise DataError(f"{path}:{number}: {fields[0]!r} is already in the glossary")
            terms[fields[0]] = fields[1]
        return cls(terms)

    def phrases_for(self, source: str) -> list[str]:
        """The target terms of the source terms in `source`, in order, without repeats."""
        if self._pattern is None:
            return []
        return list(dict.fromkeys(self.terms[m.group()] for m in self._pattern.finditer(source)))


def split_constraints(
    lines: Sequence[str], inline: bool, glossary: Glossary | None
) -> tuple[Sequence[str], list[list[str]] | None]:
    """Sources and their target phrases, from `SOURCE<TAB>PHRASE...` lines and a glossary.

    Args:
        lines: raw input lines.
        inline: the lines carry phrases after tabs (without it a tab is part of the source).
        glossary: adds the target terms of the source terms each line contains.

    Returns:
        The source of each line, and each line's phrases (empty ones dropped, no repeats);
        `lines` and None when neither gives any.
    """
    if not inline and glossary is None:
        return lines, None
    sources, phrases = [], []
    for line in lines:
        source, *mine = line.split("\t") if inline else [line]
        if glossary is not None:
            mine += glossary.phrases_for(source)
        sources.append(source)
        phrases.append(list(dict.fromkeys(p.strip() for p in mine if p.strip())))
    return sources, phrases
