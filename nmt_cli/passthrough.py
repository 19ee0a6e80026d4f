"""Characters the vocabulary lacks: carried into the translation, or reported, never lost silently.

A tokenizer with byte fallback (nmt_cli.tokenizer) spells a character it has no piece for (an
emoji, a rare letter) as the character's UTF-8 bytes, so the encoder sees it. A model trained
on text without such characters has not learned to write them, though, so after the search each
such run of characters that the translation lacks is inserted after the target word that
attended to it most: unknown-word replacement (Luong et al., 2015) for characters, the source
span copied through the attention. A tokenizer without byte fallback (models trained before it)
reads such characters as `<unk>`, and a model without attention cannot place them: then the
line gets a warning naming the characters instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from nmt_cli.special_ids import UNK_ID
from nmt_cli.tokenizer import Tokenizer

WORD_START = "▁"


@dataclass(frozen=True)
class Span:
    """A run of source pieces that spell characters the vocabulary has no piece for.

    Attributes:
        text: the characters (empty for `<unk>`: the tokenizer kept no trace of them).
        start: the index of the run's first source piece.
        end: one past its last piece.
    """

    text: str
    start: int
    end: int


def unknown_spans(tok: Tokenizer, ids: Sequence[int]) -> list[Span]:
    """The runs of byte pieces and `<unk>` in an encoded source, in order.

    Args:
        tok: the source tokenizer.
        ids: the source's token ids, shape (S,).
    """
    spans: list[Span] = []
    start = None
    for i, idx in enumerate([*ids, None]):
        unknown = idx is not None and (idx == UNK_ID or tok.is_byte(idx))
        if unknown and start is None:
            start = i
        elif not unknown and start is not None:
            run = [int(x) for x in ids[start:i]]
            text = "" if UNK_ID in run else tok.decode(run).strip()
            spans.append(Span(text, start, i))
            start = None
    return spans


def describe(chars: str) -> str:
    """`'🐕' (U+1F415)` for each distinct character, e.g. for a warning."""
    unique = dict.fromkeys(c for c in chars if not c.isspace())
    return ", ".join(f"{c!r} (U+{ord(c):04X}, {unicodedata.name(c, '?').lower()})" for c in unique)


def unknown_chars(tok: Tokenizer, text: str) -> str:
    """The characters of `text` that `tok` encodes as `<unk>` (without byte fallback)."""
    return "".join(c for c in dict.fromkeys(text) if not c.isspace() and UNK_ID in tok.encode(c))


def carry_spans(
    tokens: Sequence[int], attention: Tensor, spans: Sequence[Span], tgt_tok: Tokenizer
) -> str:
    """The translation's text with each span it lacks inserted where the attention points.

    A span goes after the target word holding the piece that gave the span's source pieces
    the most attention weight (or alone, for an empty translation).

    Args:
        tokens: the target ids, without bos and eos, shape (T,).
        attention: T+1 x S, one row per target piece and eos, columns in source order.
        spans: the source's unknown spans (from `unknown_spans`).
        tgt_tok: the target tokenizer.
    """
    text = tgt_tok.decode(tokens)
    inserts: dict[int, list[str]] = {}
    for span in spans:
        if not span.text or span.text in text:
            continue
        if not tokens:
            inserts.setdefault(0, []).append(span.text)
            continue
        focus = int(attention[: len(tokens), span.start : span.end].sum(1).argmax())
        after = next(
            (k for k in range(focus + 1, len(tokens)) if _starts_word(tgt_tok, tokens[k])),
            len(tokens),
        )
        inserts.setdefault(after, []).append(span.text)
    if not inserts:
        return text
    parts, previous = [], 0
    for at in sorted(inserts):
        parts += [tgt_tok.decode(tokens[previous:at]), *inserts[at]]
        previous = at
    parts.append(tgt_tok.decode(tokens[previous:]))
    return " ".join(part for part in parts if part)


def _starts_word(tok: Tokenizer, idx: int) -> bool:
    return tok.id_to_piece(idx).startswith(WORD_START)


def lost_characters(tok: Tokenizer, text: str, ids: Sequence[int], can_carry: bool) -> str:
    """The characters of a source line that its translation will lack (to warn about).

    Args:
        tok: the source tokenizer.
        text: the source line.
        ids: its token ids.
        can_carry: the model has attention, so `carry_spans` can place byte-spelled spans.
    """
    spans = unknown_spans(tok, ids)
    if not spans:
        return ""
    if any(not span.text for span in spans):  # <unk>: find the characters in the text
        return unknown_chars(tok, text)
    return "" if can_carry else "".join(span.text for span in spans)
