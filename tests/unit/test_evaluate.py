"""evaluate.py must agree with the `sacrebleu` command on the same files, and fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nmt_cli.errors import DataError, NmtError
from nmt_cli.evaluate import METRICS, Score, format_scores, score_corpus
from nmt_cli.textio import read_lines

# (reference, hypothesis): plausible outputs of a mediocre English system, with word-order slips,
# synonyms, dropped and repeated words, casing and punctuation errors, and a few exact matches.
PAIRS = [
    ("A man in a blue shirt is standing on a ladder.", "A man in a blue shirt stands on a ladder."),
    ("Two dogs are playing in the snow.", "Two dogs play in the snow."),
    ("The children are sitting at a long table.", "Children sit at a long table."),
    ("A woman is riding a bicycle down the street.", "A woman rides a bike on the street."),
    ("Several people are waiting for the bus.", "Several people are waiting for the bus."),
    ("A little girl is climbing into a wooden playhouse.", "A small girl climbs in a wood house."),
    ("The old man is reading a newspaper on a bench.", "The old man reads the newspaper on bench."),
    ("A group of friends are having dinner together.", "A group of friends is eating dinner."),
    ("Workers are repairing the road in front of the station.", "Workers repair the road."),
    ("A brown dog is running through the tall grass.", "A brown dog runs through high grass."),
    ("Two men are carrying a heavy box up the stairs.", "Two men carry a heavy box the stairs up."),
    ("She is holding an umbrella because it is raining.", "She holds an umbrella, it rains."),
    ("The musicians are playing on a small stage.", "the musicians are playing on a small stage"),
    ("A boy in a red jacket is jumping over a puddle.", "A boy in red jacket jumps over a puddle."),
    ("People are walking along the beach at sunset.", "People walk along the beach in the sunset."),
    ("A chef is preparing food in a busy kitchen.", "A cook prepares food in a busy kitchen."),
    ("The cat is sleeping on the warm windowsill.", "The cat sleeps on the window."),
    ("Three women are talking outside a cafe.", "Three women are talking outside of a café."),
    ("A skier is racing down a steep slope.", "A skier races down a steep slope."),
    ("The baby is laughing at the funny clown.", "The baby laughs about the funny clown."),
    ("A man is selling fruit at the market.", "A man sells fruit on the market."),
    ("Two girls are painting a mural on a wall.", "Two girls paint a picture on a wall."),
    ("The police officer is directing traffic.", "The policeman directs the traffic."),
    ("A crowd has gathered to watch the parade.", "A crowd gathered, to watch the the parade."),
    ("An elderly couple is dancing in the park.", "An old couple dances in the park."),
    ("A student is writing notes in a notebook.", "A student is writing notes in a notebook."),
    ("The fisherman is pulling a net onto his boat.", "The fisher pulls a net on his boat."),
    ("A young man is playing the guitar on the sidewalk.", "A young man plays guitar on sidewalk."),
    ("Children are splashing in a fountain on a hot day.", "Children splash in fountain."),
    ("A woman in a hat is buying flowers.", "A woman with a hat buys flowers."),
    ("The team is celebrating after winning the match.", "The team celebrates after the win."),
    ("A dog is catching a frisbee in mid-air.", "A dog catches a frisbee in the air."),
]
REFS = [ref for ref, _ in PAIRS]
HYPS = [hyp for _, hyp in PAIRS]
SACREBLEU = Path(sys.executable).with_name("sacrebleu")


def _write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_bytes("".join(line + end for line in lines).encode())
    return path


def _sacrebleu_cli(ref: Path, hyp: Path, metrics: tuple[str, ...]) -> list[dict[str, str | float]]:
    cmd = [str(SACREBLEU), str(ref), "-i", str(hyp), "-m", *metrics, "-w", "6", "-f", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    parsed = json.loads(out)
    return parsed if isinstance(parsed, list) else [parsed]


@pytest.mark.skipif(not SACREBLEU.exists(), reason="sacrebleu console script not installed")
@pytest.mark.parametrize("messy", [False, True], ids=["clean", "crlf-and-spaces"])
def test_scores_equal_sacrebleu_command(tmp_path: Path, messy: bool) -> None:
    """Lines read the way the CLI reads them score as `sacrebleu REF -i HYP` scores the files."""
    hyps = [f"  {h.replace(' ', '   ')}\t" for h in HYPS] if messy else HYPS
    ref = _write(tmp_path / "ref.en", REFS, end="\r\n" if messy else "\n")
    hyp = _write(tmp_path / "hyp.en", hyps)
    expected = _sacrebleu_cli(ref, hyp, METRICS)

    scores = score_corpus(read_lines(hyp), read_lines(ref), METRICS)

    assert [s.name for s in scores] == list(METRICS)
    for score, cli in zip(scores, expected, strict=True):
        assert score.score == pytest.approx(cli["score"], abs=1e-6)
        assert score.signature == cli["signature"]
        assert score.text.startswith(f"{cli['name']} = ")
    # The example is imperfect but close: no metric sits at its floor or ceiling.
    bleu, chrf, ter = (s.score for s in scores)
    assert 20 < bleu < 80 and 40 < chrf < 95 and 5 < ter < 60


def test_default_is_bleu_with_13a_cased() -> None:
    (score,) = score_corpus(HYPS, REFS)
    assert score.name == "bleu"
    assert "tok:13a" in score.signature and "case:mixed" in score.signature
    assert score.text.startswith("BLEU = ")
    # Cased: lowercasing the hypotheses loses the matches of capitalized words.
    (lower,) = score_corpus([h.lower() for h in HYPS], REFS)
    assert lower.score < score.score


def test_identical_text_scores_perfectly() -> None:
    scores = {s.name: s.score for s in score_corpus(REFS, REFS, METRICS)}
    assert scores == {"bleu": pytest.approx(100), "chrf": pytest.approx(100), "ter": 0}


def test_repeated_metric_is_scored_once_in_given_order() -> None:
    assert [s.name for s in score_corpus(HYPS, REFS, ["ter", "bleu", "ter"])] == ["ter", "bleu"]


def test_line_count_mismatch_names_both_files() -> None:
    with pytest.raises(
        DataError, match=r"^hypotheses \(out\.txt\) have 31 lines but ref\.en has 32$"
    ):
        score_corpus(HYPS[:-1], REFS, hyp_name="out.txt", ref_name="ref.en")
    with pytest.raises(DataError, match=r"^hypotheses have 32 lines but the reference has 30$"):
        score_corpus(HYPS, REFS[:-2])


def test_empty_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="nothing to score"):
        score_corpus([], [])


@pytest.mark.parametrize(
    ("metrics", "pattern"),
    [
        (["blue"], r"unknown metric 'blue' \(did you mean 'bleu'\?\); choose from bleu, chrf, ter"),
        (["bleu", "meteor"], r"unknown metric 'meteor'; choose from bleu, chrf, ter"),
        ([], r"no metric given; choose from bleu, chrf, ter"),
    ],
)
def test_unknown_metric_lists_valid_ones(metrics: list[str], pattern: str) -> None:
    with pytest.raises(NmtError, match=pattern) as info:
        score_corpus(HYPS, REFS, metrics)
    assert not isinstance(info.value, DataError)


def test_json_form_parses() -> None:
    scores = score_corpus(HYPS, REFS, METRICS)
    text = format_scores(scores, json=True)
    assert "\n" not in text
    parsed = json.loads(text)
    assert list(parsed) == list(METRICS)
    for s in scores:
        assert parsed[s.name] == {"score": s.score, "signature": s.signature, "text": s.text}


def test_human_form_has_score_line_then_signature() -> None:
    scores = score_corpus(HYPS, REFS, ["bleu", "chrf"])
    lines = format_scores(scores).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("BLEU = ") and lines[2].startswith("chrF2 = ")
    assert lines[1] == f"signature: {scores[0].signature}"
    assert lines[3].startswith("signature: nrefs:1|case:mixed|eff:yes|nc:6|nw:0|")


def test_score_is_frozen() -> None:
    score = Score(name="bleu", score=1.0, signature="s", text="BLEU = 1.00")
    with pytest.raises(AttributeError):
        score.score = 2.0  # type: ignore[misc]
