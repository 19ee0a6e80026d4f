"""Seeing inside a model from the command line: info, alignments, JSON output, plots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from nmt_cli.checkpoint import load_checkpoint, save_checkpoint
from nmt_cli.config import from_dict
from nmt_cli.model import build_model
from nmt_cli.tokenizer import Tokenizer

from .conftest import nmt
from .test_errors import assert_one_line_error

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"
LINES = ["3+4", "", "March 3, 1998", "12 + 7"]


def test_info_of_a_run_folder_and_of_one_file(run_dir: Path) -> None:
    text = nmt("info", str(run_dir)).stdout
    assert "trained      60 steps" in text and "best valid   BLEU" in text
    assert "step-30.pt" in text and "step-60.pt" in text and "last.pt" in text
    assert "encoder" in text and "generator" in text and "emb_size: 32" in text
    info = json.loads(nmt("info", str(run_dir), "--json").stdout)
    assert info["step"] == 60 and info["joint_vocab"] is True
    assert info["parameters"]["total"] == sum(
        info["parameters"][m] for m in ("encoder", "decoder", "bridge", "generator")
    )
    assert {c["file"] for c in info["checkpoints"]} == {"step-30.pt", "step-60.pt"}
    assert info["config"]["model"]["emb_size"] == 32
    one = json.loads(nmt("info", str(run_dir / "checkpoints" / "step-30.pt"), "--json").stdout)
    assert one["step"] == 30 and one["checkpoints"] is None
    assert_one_line_error(nmt("info", str(run_dir / "nothing.pt"), check=False), "nothing.pt")


def test_alignments_one_record_per_line(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "align.jsonl"
    text = "\n".join(LINES) + "\n"
    out = nmt("translate", str(run_dir), "--alignments", str(path), input=text).stdout
    assert out == nmt("translate", str(run_dir), input=text).stdout  # the text is unchanged
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4]
    assert records[1] == {"line": 2, "source": [], "target": [], "weights": []}
    for r in (records[0], records[2], records[3]):
        assert r["target"][-1] == "</s>" and len(r["weights"]) == len(r["target"])
        assert all(len(row) == len(r["source"]) for row in r["weights"])
        assert all(abs(sum(row) - 1) < 1e-3 for row in r["weights"])
    assert "".join(records[2]["source"]).replace("▁", " ").strip() == "March 3, 1998"


def test_json_output(run_dir: Path) -> None:
    text = "\n".join(LINES) + "\n"
    plain = nmt("translate", str(run_dir), input=text).stdout.splitlines()
    rows = [
        json.loads(line)
        for line in nmt("translate", str(run_dir), "--json", input=text).stdout.splitlines()
    ]
    assert [r["translation"] for r in rows] == plain
    assert set(rows[0]) == {"line", "translation", "score", "pieces"}
    assert rows[1] == {"line": 2, "translation": "", "score": 0.0, "pieces": []}
    rich = nmt("translate", str(run_dir), "--json", "--with-attention", "--n-best", "2",
               input="3+4\n").stdout  # fmt: skip
    row = json.loads(rich)
    assert len(row["n_best"]) == 2 and row["n_best"][0]["translation"] == row["translation"]
    assert len(row["weights"]) == len(row["pieces"]) + 1 and row["source"]


def test_plot_attention_and_training_curves(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "align.jsonl"
    nmt("translate", str(run_dir), "--alignments", str(path), input="\n".join(LINES) + "\n")
    out = nmt("plot-attention", str(path), "--out", str(tmp_path / "att")).stdout
    assert "wrote 3 heatmaps" in out
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == [
        "line-1.png", "line-3.png", "line-4.png"]  # fmt: skip
    nmt("plot-attention", str(path), "--out", str(tmp_path / "one"), "--lines", "3")
    assert (tmp_path / "one" / "line-3.png").read_bytes().startswith(PNG)
    printed = nmt("plot", str(run_dir), "--out", str(tmp_path / "curves")).stdout.split()
    assert [Path(p).name for p in printed] == ["train_loss.png", "valid_ppl.png", "valid_bleu.png"]
    assert all(Path(p).read_bytes().startswith(PNG) for p in printed)


def test_inspect_errors(run_dir: Path, tmp_path: Path) -> None:
    result = nmt("translate", str(run_dir), "--with-attention", input="3+4\n", check=False)
    assert_one_line_error(result, "--with-attention needs --json")
    not_alignments = tmp_path / "hyp.jsonl"
    not_alignments.write_text('{"translation": "x"}\n')
    result = nmt("plot-attention", str(not_alignments), "--out", str(tmp_path), check=False)
    assert_one_line_error(result, "hyp.jsonl:1", "not an alignment record")
    result = nmt("plot-attention", str(not_alignments), "--out", str(tmp_path), "--lines", "x",
                 check=False)  # fmt: skip
    assert_one_line_error(result, "--lines")
    assert_one_line_error(nmt("plot", str(tmp_path), check=False), "metrics.jsonl", "no such file")


def test_a_model_without_attention_has_no_alignments(run_dir: Path, tmp_path: Path) -> None:
    """An untrained `attention: none` model made from the run's checkpoint: no training needed."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    ckpt.config["model"]["attention"] = "none"
    config = from_dict(ckpt.config)
    size = Tokenizer.from_bytes(ckpt.vocab["src_spm"]).vocab_size  # joint vocabulary
    model = build_model(config.model, size, size, joint_vocab=True)
    save_checkpoint(dataclasses.replace(ckpt, model=model.state_dict()), tmp_path / "none.pt")
    result = nmt("translate", str(tmp_path / "none.pt"), "--alignments", str(tmp_path / "a"),
                 input="3+4\n", check=False)  # fmt: skip
    assert_one_line_error(result, "no attention", "model.attention: none")
    assert nmt("translate", str(tmp_path / "none.pt"), "--json", input="3+4\n").stdout


def test_every_command_has_a_runnable_example() -> None:
    for command in ("info", "plot", "plot-attention", "translate"):
        assert "Example: nmt " in nmt(command, "--help").stdout, command
