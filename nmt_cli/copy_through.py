"""Translation with protected spans (see nmt_cli.protect): placeholders in, spans back out, by
the model's attention.

    from nmt_cli.copy_through import translate_protected
    from nmt_cli.protect import Protector

    results = translate_protected(translator, ["Call 555-0123 at <b>9</b>."], Protector())
    print(results[0][0].text)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch import Tensor

from nmt_cli.errors import ConfigError
from nmt_cli.protect import KINDS, PLACEHOLDERS, WORD, Protected, Protector, Span, bare
from nmt_cli.tokenizer import Tokenizer
from nmt_cli.translate import Translation, Translator

log = logging.getLogger(__name__)

_KIND_OF = dict(zip(PLACEHOLDERS, KINDS, strict=True))


def knows_placeholders(tokenizer: Tokenizer) -> bool:
    """Is every placeholder one piece of this tokenizer (`nmt preprocess --protect`)?"""
    return all(ph in tokenizer.encode_pieces(ph) for ph in PLACEHOLDERS)


def translate_protected(
    translator: Translator,
    lines: Sequence[str],
    protector: Protector,
    first_line: int = 1,
    **options: Any,
) -> list[list[Translation]]:
    """`translator.translate_lines(lines, first_line=first_line, **options)` with every span
    `protector` finds copied through; the Translations' texts have the spans back (their
    pieces keep the placeholders the model wrote).

    Raises:
        ConfigError: the model has no attention to place spans with.
    """
    if translator.config.model.attention == "none":
        raise ConfigError("--protect needs a model with attention (model.attention: none)")
    placeholders = knows_placeholders(translator.src_tok)
    protected = [protector.protect(line, placeholders) for line in lines]
    results = translator.translate_lines(
        [p.text for p in protected], first_line=first_line, **options
    )
    return [
        [restore(t, p, first_line + i, placeholders) for t in hyps]
        for i, (hyps, p) in enumerate(zip(results, protected, strict=True))
    ]


def restore(
    translation: Translation, protected: Protected, line: int, placeholders: bool
) -> Translation:
    """Put the spans of `protected` back into its translation (see the module docstring).

    Args:
        translation: the model's output for `protected.text`, with attention (T x S).
        protected: the source line's spans, in order.
        line: its 1-based line number, for warnings.
        placeholders: the source had placeholders (else the spans were left in the text).
    """
    spans = protected.spans
    columns = _source_columns(translation.source, spans, placeholders)
    out = list(translation.pieces)
    if placeholders:
        placed = _fill_placeholders(out, translation.attention, spans, columns, line)
    else:
        placed = _present(translation.text, spans)
    if all(placed) and not placeholders:
        return translation
    after: dict[int, list[str]] = {}  # target piece -> spans put back after it
    for i, span in enumerate(spans):
        if not placed[i]:
            j = _word_end(out, _most_attending(translation.attention, columns[i], len(out)))
            after.setdefault(j, []).append(span.value)
            words = "".join(out[: j + 1]).replace(WORD, " ").split()
            where = f"after {words[-1]!r}" if words else "at the start"
            log.warning(
                "line %d: the model dropped protected %s %r; put back %s", line, span.kind,
                span.value, where,
            )  # fmt: skip
    chunks = []
    for j, piece in enumerate(out):
        chunks += [piece.replace(WORD, " "), *(f" {value} " for value in after.get(j, []))]
    chunks += [f" {value}" for value in after.get(len(out), [])]
    return replace(translation, text=" ".join("".join(chunks).split()))


def _fill_placeholders(
    out: list[str],
    attention: Tensor | None,
    spans: Sequence[Span],
    columns: list[list[int]],
    line: int,
) -> list[bool]:
    """Replace, in place, each placeholder piece of `out` by the value of the unplaced span of
    its kind it attends to most (an extra one by nothing); returns which spans were placed."""
    placed = [False] * len(spans)
    for j, piece in enumerate(out):
        kind = _KIND_OF.get(bare(piece))
        if kind is None:
            continue
        prefix = piece[: len(piece) - len(bare(piece))]
        free = [i for i, s in enumerate(spans) if not placed[i] and s.kind == kind]
        if not free:
            log.warning("line %d: removed a %s with no protected span left", line, bare(piece))
            out[j] = prefix
            continue
        best = max(free, key=lambda i: _weight(attention, j, columns[i]))  # ties: the first
        placed[best] = True
        out[j] = prefix + spans[best].value
    return placed


def _present(text: str, spans: Sequence[Span]) -> list[bool]:
    """Which spans the output text has verbatim (as a whole token; each occurrence used once)."""
    found: dict[str, int] = {}
    placed = []
    for span in spans:
        pattern = rf"(?<![\w]){re.escape(span.value)}(?![\w])"
        found.setdefault(span.value, len(re.findall(pattern, text)))
        placed.append(found[span.value] > 0)
        found[span.value] -= 1
    return placed


def _source_columns(
    source: Sequence[str], spans: Sequence[Span], placeholders: bool
) -> list[list[int]]:
    """For each span, the source pieces (attention columns) that stand for it."""
    if placeholders:
        where = [[i] for i, piece in enumerate(source) if bare(piece) in _KIND_OF]
        return [where[k] if k < len(where) else [] for k in range(len(spans))]
    text, starts = "", []
    for piece in source:
        starts.append(len(text))
        text += piece.replace(WORD, " ")
    ends = [*starts[1:], len(text)]
    columns: list[list[int]] = []
    position = 0
    for span in spans:
        at = text.find(span.value, position)
        if at < 0:
            columns.append([])
            continue
        position = at + len(span.value)
        columns.append([i for i in range(len(source)) if starts[i] < position and ends[i] > at])
    return columns


def _word_end(pieces: Sequence[str], j: int) -> int:
    """The last piece of the word that piece j is in (a span goes after whole words)."""
    while j + 1 < len(pieces) and not pieces[j + 1].startswith(WORD):
        j += 1
    return j


def _weight(attention: Tensor | None, row: int, columns: list[int]) -> float:
    if attention is None or not columns:
        return 0.0
    return float(attention[row, columns].sum())


def _most_attending(attention: Tensor | None, columns: list[int], n_pieces: int) -> int:
    """The target piece that attends most to `columns` (n_pieces: eos, i.e. the end)."""
    if attention is None or not columns:
        return n_pieces
    return int(attention[:, columns].sum(dim=1).argmax())
