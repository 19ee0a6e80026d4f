"""`nmt score` and fine-tuning (`preprocess --tokenizer-from`, `train --init-from`) end to end,
on the tiny trained run of conftest.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import nmt

pytestmark = pytest.mark.e2e


def scores(run: Path, src: Path, tgt: Path, *extra: str) -> list[list[str]]:
    out = nmt("score", str(run), "--src", str(src), "--tgt", str(tgt), *extra).stdout
    return [line.split("\t") for line in out.splitlines()]


def per_token(rows: list[list[str]]) -> float:
    """The corpus log-probability per target token of `nmt score` rows."""
    return sum(float(r[0]) for r in rows) / sum(int(r[2]) for r in rows)


def shuffled(text: str, rng: random.Random) -> str:
    """The characters of `text` in another order (the targets are single words: 1998-03-03)."""
    chars = list(text)
    while len(set(chars)) > 1 and "".join(chars) == text:
        rng.shuffle(chars)
    return "".join(chars)


def test_a_reference_scores_higher_than_its_shuffled_self(
    run_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    refs = (corpus / "test.tgt").read_text().splitlines()
    rng = random.Random(0)
    mixed = tmp_path / "shuffled.tgt"
    mixed.write_text("".join(shuffled(r, rng) + "\n" for r in refs))
    good = scores(run_dir, corpus / "test.src", corpus / "test.tgt")
    bad = scores(run_dir, corpus / "test.src", mixed)
    assert len(good) == len(bad) == len(refs)
    assert per_token(good) > per_token(bad)
    wins = sum(float(g[0]) > float(b[0]) for g, b in zip(good, bad, strict=True))
    assert wins > len(refs) / 2  # most pairs too, not only the corpus (60 steps: a weak model)


def test_every_pair_gets_its_own_line_empty_ones_included(run_dir: Path, tmp_path: Path) -> None:
    pairs = [("3+4", "7"), ("", "12"), ("12 + 7", ""), ("March 3, 1998", "1998-03-03"), ("", "")]
    src, tgt = tmp_path / "in.src", tmp_path / "in.tgt"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    tgt.write_text("".join(t + "\n" for _, t in pairs))
    result = nmt("score", str(run_dir), "--src", str(src), "--tgt", str(tgt), "--batch-size", "2")
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == len(pairs)
    assert rows[1] == rows[4] == ["-", "-", "0"]  # an empty source: not scored, marked
    assert rows[2][2] == "1"  # an empty target: eos alone
    assert "scored 3 of 5 pairs (2 with an empty source not scored)" in result.stderr
    assert "corpus perplexity" in result.stderr
    # The same pairs as SOURCE<TAB>TARGET on stdin, as JSON: the same numbers.
    tabbed = "".join(f"{s}\t{t}\n" for s, t in pairs)
    records = [
        json.loads(x)
        for x in nmt("score", str(run_dir), "--json", input=tabbed).stdout.splitlines()
    ]
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
    for row, record in zip(rows, records, strict=True):
        if record["log_prob"] is not None:
            assert float(row[0]) == pytest.approx(record["log_prob"], abs=1e-3)
            assert record["pieces"][-1] == "</s>"
    bad = nmt("score", str(run_dir), input="3+4\t7\nno tab\n", check=False)
    assert bad.returncode == 1 and bad.stderr.strip().endswith(
        "stdin:2: no tab; expected SOURCE<TAB>TARGET"
    )


def subtraction(folder: Path, n: int, seed: int) -> Path:
    """A task the run never saw, in characters its tokenizer knows: "123-45" -> "78"."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n), ("valid", 40)):
        rows = []
        for _ in range(size):
            a = rng.randint(0, 999)
            b = rng.randint(0, a)
            rows.append((f"{a}-{b}", str(a - b)))
        (folder / f"{split}.src").write_text("".join(s + "\n" for s, _ in rows))
        (folder / f"{split}.tgt").write_text("".join(t + "\n" for _, t in rows))
    return folder


def test_fine_tuning_on_a_new_task_improves_its_score(run_dir: Path, tmp_path: Path) -> None:
    text = subtraction(tmp_path / "text", 600, seed=5)
    prefix = ["preprocess", "--src", "src", "--tgt", "tgt", "--train", str(text / "train")]
    prefix += ["--valid", str(text / "valid")]
    own = nmt(*prefix, "--out", str(tmp_path / "own"), "--vocab-size", "40", "--model-type", "bpe")
    assert own.returncode == 0
    refused = nmt(
        "train",
        str(tmp_path / "own"),
        "--out",
        str(tmp_path / "x"),
        "--init-from",
        str(run_dir),
        check=False,
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert (
        "--tokenizer-from" in refused.stderr
        and str(tmp_path / "own" / "spm.model") in refused.stderr
    )

    nmt(*prefix, "--out", str(tmp_path / "data"), "--tokenizer-from", str(run_dir))
    before = per_token(scores(run_dir, text / "valid.src", text / "valid.tgt"))
    tuned = tmp_path / "tuned"
    summary = nmt(
        "train", str(tmp_path / "data"), "--out", str(tuned), "--init-from", str(run_dir),
        "--set", "train.max_steps=20", "--set", "train.valid_every=20", "--device", "cpu",
    ).stdout  # fmt: skip
    assert summary.startswith("steps 20 (max_steps)")
    after = per_token(scores(tuned, text / "valid.src", text / "valid.tgt"))
    assert after > before + 0.1, (before, after)
