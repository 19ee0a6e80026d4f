"""No silent loss of characters: byte fallback, unknown spans, carried through attention."""

from __future__ import annotations

import pytest
import torch

from nmt_cli.passthrough import carry_spans, describe, lost_characters, unknown_spans
from nmt_cli.tokenizer import BYTE_FALLBACK_MIN_VOCAB, UNK_ID, Tokenizer, train_sentencepiece

_NOUNS = ["Hund", "Katze", "Haus", "Garten", "Straße", "Mädchen", "Mann", "Frau"]
TEXTS = [f"Der {_NOUNS[i % 8]} schläft im {_NOUNS[i * 3 % 8]} mit {i} Bällen." for i in range(40)]
TEXTS += [f"The {noun.lower()} is {i} years old." for i, noun in enumerate(_NOUNS)]
RARE = "Der Hund 🐕 schläft mit Jürgen ǂ."


@pytest.fixture(scope="module")
def with_bytes() -> Tokenizer:
    return Tokenizer.from_bytes(train_sentencepiece(TEXTS, BYTE_FALLBACK_MIN_VOCAB))


@pytest.fixture(scope="module")
def without_bytes() -> Tokenizer:
    return Tokenizer.from_bytes(train_sentencepiece(TEXTS, 120))


def test_a_large_vocabulary_spells_unknown_characters_as_bytes(with_bytes: Tokenizer) -> None:
    assert with_bytes.byte_fallback
    ids = with_bytes.encode(RARE)
    assert UNK_ID not in ids
    assert with_bytes.decode(ids) == RARE  # every character survives the round trip
    assert [s.text for s in unknown_spans(with_bytes, ids)] == ["🐕", "Jü", "ǂ"]


def test_a_small_vocabulary_has_no_room_for_bytes(without_bytes: Tokenizer) -> None:
    assert not without_bytes.byte_fallback
    ids = without_bytes.encode(RARE)
    assert UNK_ID in ids
    assert [s.text for s in unknown_spans(without_bytes, ids)] == ["", "", ""]
    assert lost_characters(without_bytes, RARE, ids, can_carry=True) == "🐕Jüǂ"


def test_byte_spans_are_lost_only_without_attention(with_bytes: Tokenizer) -> None:
    ids = with_bytes.encode(RARE)
    assert lost_characters(with_bytes, RARE, ids, can_carry=True) == ""
    assert lost_characters(with_bytes, RARE, ids, can_carry=False) == "🐕Jüǂ"
    assert describe("🐕 🐕") == "'🐕' (U+1F415, dog)"


def test_a_missing_span_goes_after_the_word_that_attended_to_it(with_bytes: Tokenizer) -> None:
    source = with_bytes.encode("Hund 🐕 schläft")
    (span,) = unknown_spans(with_bytes, source)
    target = with_bytes.encode("The dog is 7 years old.")
    word_starts = [i for i, t in enumerate(target) if with_bytes.id_to_piece(t).startswith("▁")]
    attention = torch.full((len(target) + 1, len(source)), 0.01)  # T+1 x S
    attention[word_starts[1], span.start : span.end] = 1.0  # the first piece of "dog"
    assert carry_spans(target, attention, [span], with_bytes) == "The dog 🐕 is 7 years old."
    attention[-1, span.start : span.end] = 5.0  # eos is no place to put it
    assert carry_spans(target, attention, [span], with_bytes) == "The dog 🐕 is 7 years old."


def test_a_span_already_translated_or_an_empty_translation(with_bytes: Tokenizer) -> None:
    source = with_bytes.encode("🐕")
    spans = unknown_spans(with_bytes, source)
    copied = with_bytes.encode("a 🐕")
    attention = torch.ones(len(copied) + 1, len(source))
    assert carry_spans(copied, attention, spans, with_bytes) == "a 🐕"
    assert carry_spans([], torch.ones(1, len(source)), spans, with_bytes) == "🐕"
