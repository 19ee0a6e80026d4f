"""Copy-through: numbers, URLs, e-mail addresses, XML/HTML tags and user patterns come out of
translation exactly as they went in.

Before translation each protected span becomes a placeholder of its kind (⦅NUM⦆, ⦅URL⦆,
⦅EMAIL⦆, ⦅TAG⦆, ⦅KEEP⦆ for `--protect-regex` patterns). After it, each placeholder in the output
gets back a span of its kind: among those not yet placed, the one its target piece attends to
most. A span whose placeholder the model dropped is put back after the target piece that
attends to it most, with a warning on stderr: never silently lost. A placeholder with no span
left is removed, with a warning.

A model learns to carry placeholders from a corpus that has them: `nmt preprocess --protect`
replaces the spans found on both sides of a pair (`protect_pair`) and makes every placeholder
one sentencepiece piece. A model trained without them has never seen one; for it the spans stay
in the text and the output is checked instead: a span missing from it is put back by attention.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from nmt_cli.errors import ConfigError

BUILTIN_PATTERNS = (  # earlier kinds win where matches overlap: no number inside a URL
    ("TAG", r"</?[A-Za-z][^<>]*>"),
    ("URL", r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]']"),
    ("EMAIL", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("NUM", r"\d+(?:[.,:/]\d+)*"),
)
USER_KIND = "KEEP"
KINDS = (*(kind for kind, _ in BUILTIN_PATTERNS), USER_KIND)
WORD = "▁"  # sentencepiece's word-start mark


def placeholder(kind: str) -> str:
    """The placeholder text of a kind, e.g. ⦅NUM⦆ (NFKC-stable, so sentencepiece keeps it)."""
    return f"⦅{kind}⦆"


PLACEHOLDERS = tuple(placeholder(kind) for kind in KINDS)


def placeholders_in(texts: Sequence[str]) -> list[str]:
    """Every placeholder if any text holds one (`nmt preprocess --protect` data), else none:
    the pieces sentencepiece must keep whole."""
    return list(PLACEHOLDERS) if any(p in t for t in texts for p in PLACEHOLDERS) else []


@dataclass(frozen=True)
class Span:
    """One protected span of a source line."""

    kind: str
    value: str


@dataclass(frozen=True)
class Protected:
    """A source line ready to translate: `text` (with placeholders, or not) and its spans in
    order."""

    text: str
    spans: tuple[Span, ...]


class Protector:
    """Finds protected spans: the built-in kinds (`builtin`) and user regexes (kind KEEP, first).

    Raises:
        ConfigError: a user regex that does not compile, or nothing to protect at all.
    """

    def __init__(self, regexes: Sequence[str] = (), builtin: bool = True) -> None:
        named = [(f"{USER_KIND}{i}", r) for i, r in enumerate(regexes)]
        named += list(BUILTIN_PATTERNS) if builtin else []
        for _, regex in named:
            try:
                re.compile(regex)
            except re.error as e:
                raise ConfigError(f"--protect-regex {regex!r}: {e}") from None
        if not named:
            raise ConfigError("nothing to protect: give --protect or --protect-regex")
        self.names = [name for name, _ in named]
        self.pattern = re.compile("|".join(f"(?P<{name}>{regex})" for name, regex in named))

    def find(self, line: str) -> list[tuple[int, int, Span]]:
        """Every protected span of `line`: (start, end, span), left to right, none empty."""
        found = []
        for m in self.pattern.finditer(line):
            if m.end() > m.start():
                name = next(n for n in self.names if m.group(n) is not None)
                kind = USER_KIND if name.startswith(USER_KIND) else name
                found.append((m.start(), m.end(), Span(kind, m.group())))
        return found

    def protect(self, line: str, placeholders: bool = True) -> Protected:
        """The line with each span replaced by its placeholder (kept as is without
        `placeholders`), and the spans."""
        found = self.find(line)
        spans = tuple(span for _, _, span in found)
        if not placeholders:
            return Protected(line, spans)
        return Protected(
            _replace(line, [(s, e, placeholder(sp.kind)) for s, e, sp in found]), spans
        )

    def protect_pair(self, source: str, target: str) -> tuple[str, str]:
        """A training pair with the spans found on both sides (same kind and text) replaced by
        placeholders on both: the model learns to carry them across."""
        src, tgt = self.find(source), self.find(target)
        shared = Counter(span for _, _, span in src) & Counter(span for _, _, span in tgt)

        def replaced(line: str, found: list[tuple[int, int, Span]]) -> str:
            left = shared.copy()
            edits = []
            for start, end, span in found:
                if left[span] > 0:
                    left[span] -= 1
                    edits.append((start, end, placeholder(span.kind)))
            return _replace(line, edits)

        return replaced(source, src), replaced(target, tgt)


def protect_pairs(sources: list[str], targets: list[str]) -> tuple[list[str], list[str]]:
    """`Protector().protect_pair` over a corpus: the per-line transform of `nmt preprocess
    --protect`."""
    protector = Protector()
    pairs = [protector.protect_pair(s, t) for s, t in zip(sources, targets, strict=True)]
    return [s for s, _ in pairs], [t for _, t in pairs]


def _replace(line: str, edits: list[tuple[int, int, str]]) -> str:
    """`line` with each (start, end) range, left to right and disjoint, replaced by its text."""
    out, last = [], 0
    for start, end, text in edits:
        out += [line[last:start], text]
        last = end
    return "".join([*out, line[last:]])


def bare(piece: str) -> str:
    return piece.removeprefix(WORD)
