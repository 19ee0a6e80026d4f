"""Copy-through: finding protected spans, placeholders in training pairs, and putting spans back
into translations by attention (hand-made translations, no model)."""

from __future__ import annotations

import logging

import pytest
import torch

from nmt_cli.copy_through import restore
from nmt_cli.errors import ConfigError
from nmt_cli.protect import Protected, Protector, Span, protect_pairs
from nmt_cli.translate import Translation

LINE = "Visit https://x.org/a1, mail me@ex.com at 10:30: <b>3.5</b> kg"


def test_finds_every_builtin_kind_once() -> None:
    spans = [span for _, _, span in Protector().find(LINE)]
    assert spans == [
        Span("URL", "https://x.org/a1"),  # the comma after it is not part of it
        Span("EMAIL", "me@ex.com"),
        Span("NUM", "10:30"),
        Span("TAG", "<b>"),
        Span("NUM", "3.5"),
        Span("TAG", "</b>"),
    ]
    assert Protector().protect(LINE).text == (
        "Visit ⦅URL⦆, mail ⦅EMAIL⦆ at ⦅NUM⦆: ⦅TAG⦆⦅NUM⦆⦅TAG⦆ kg"
    )


def test_user_regexes_come_first_and_bad_ones_are_one_line() -> None:
    protected = Protector(["ID-[0-9]+"]).protect("Ticket ID-42 has 3 parts")
    assert protected.spans == (Span("KEEP", "ID-42"), Span("NUM", "3"))
    only_user = Protector(["ID-[0-9]+"], builtin=False).protect("ID-42 has 3 parts")
    assert only_user.text == "⦅KEEP⦆ has 3 parts"
    with pytest.raises(ConfigError, match=r"--protect-regex '\(ID'"):
        Protector(["(ID"])


def test_training_pairs_get_placeholders_only_for_spans_on_both_sides() -> None:
    src, tgt = protect_pairs(
        ["3 Hunde und 2 Katzen", "Seite <i>12</i>"], ["3 dogs and two cats", "page <i>12</i>"]
    )
    assert src == ["⦅NUM⦆ Hunde und 2 Katzen", "Seite ⦅TAG⦆⦅NUM⦆⦅TAG⦆"]
    assert tgt == ["⦅NUM⦆ dogs and two cats", "page ⦅TAG⦆⦅NUM⦆⦅TAG⦆"]


SOURCE = ["▁Ruf", "▁", "⦅NUM⦆", "▁oder", "▁", "⦅NUM⦆", "▁an"]
SPANS = (Span("NUM", "110"), Span("NUM", "112"))


def translation(
    pieces: list[str], focus: dict[int, int], source: list[str] = SOURCE
) -> Translation:
    """Target pieces whose attention rows look at one source piece each (`focus`: row -> col)."""
    attention = torch.full((len(pieces) + 1, len(source)), 0.01)
    for row, col in focus.items():
        attention[row, col] = 0.9
    text = "".join(pieces).replace("▁", " ").strip()
    return Translation(text, -1.0, pieces, attention, source)


def test_placeholders_get_the_spans_they_attend_to() -> None:
    # The model swapped the order: its first placeholder looks at the second source one.
    out = translation(["▁Call", "▁", "⦅NUM⦆", "▁or", "▁", "⦅NUM⦆"], {2: 5, 5: 2})
    restored = restore(out, Protected("", SPANS), 1, placeholders=True)
    assert restored.text == "Call 112 or 110"
    assert restored.pieces == out.pieces  # the pieces stay the model's


def test_a_dropped_span_is_put_back_by_attention_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = translation(["▁Call", "▁", "⦅NUM⦆", "▁or", "▁dial"], {2: 2, 4: 5})
    with caplog.at_level(logging.WARNING):
        restored = restore(out, Protected("", SPANS), 7, placeholders=True)
    assert restored.text == "Call 110 or dial 112"
    assert "line 7: the model dropped protected NUM '112'; put back after 'dial'" in caplog.text


def test_an_extra_placeholder_is_removed_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    out = translation(["▁", "⦅NUM⦆", "▁", "⦅NUM⦆", "▁", "⦅NUM⦆", "▁now"], {1: 2, 3: 5})
    with caplog.at_level(logging.WARNING):
        restored = restore(out, Protected("", SPANS), 2, placeholders=True)
    assert restored.text == "110 112 now"
    assert "line 2: removed a ⦅NUM⦆ with no protected span left" in caplog.text


def test_without_placeholders_missing_spans_are_put_back(caplog: pytest.LogCaptureFixture) -> None:
    source = ["▁Ruf", "▁1", "1", "0", "▁oder", "▁1", "1", "2"]
    kept = translation(["▁Call", "▁1", "1", "0", "▁or", "▁1", "1", "2"], {}, source)
    assert restore(kept, Protected("", SPANS), 1, placeholders=False) is kept
    out = translation(["▁Call", "▁1", "1", "0", "▁or", "▁fire"], {5: 6}, source)
    with caplog.at_level(logging.WARNING):
        restored = restore(out, Protected("", SPANS), 3, placeholders=False)
    assert restored.text == "Call 110 or fire 112"
    assert "dropped protected NUM '112'" in caplog.text


def test_a_span_is_put_back_after_whole_words() -> None:
    out = translation(["▁Call", "▁", "⦅NUM⦆", "▁or", "▁emer", "gency"], {2: 2, 4: 5})
    restored = restore(out, Protected("", SPANS), 1, placeholders=True)
    assert restored.text == "Call 110 or emergency 112"  # not "emer 112 gency"
