"""PNG plots: heatmaps and training curves are written; missing matplotlib is a clear error."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nmt_cli.alignments import parse_lines
from nmt_cli.errors import DataError, NmtError
from nmt_cli.plotting import plot_alignments, plot_metrics, read_metrics, write_tensorboard

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="the plot extra is not installed"
)

PNG = b"\x89PNG\r\n\x1a\n"
RECORDS = [
    {"line": 1, "source": ["▁Ein", "▁Hund"], "target": ["▁A", "▁dog", "</s>"],
     "weights": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]},
    {"line": 2, "source": [], "target": [], "weights": []},
    {"line": 3, "source": ["▁Ja"], "target": ["▁Yes", "</s>"], "weights": [[1.0], [1.0]]},
]  # fmt: skip


@needs_matplotlib
def test_one_heatmap_per_sentence_and_empty_lines_skipped(tmp_path: Path) -> None:
    written = plot_alignments(RECORDS, tmp_path / "att")
    assert [p.name for p in written] == ["line-1.png", "line-3.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert [p.name for p in plot_alignments(RECORDS, tmp_path / "some", parse_lines("3,9"))] == [
        "line-3.png"
    ]


@needs_matplotlib
def test_nothing_to_draw_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no attention to draw"):
        plot_alignments(RECORDS, tmp_path, parse_lines("2,7"))
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="cannot create the output folder"):
        plot_alignments(RECORDS, tmp_path / "file")


def test_missing_matplotlib_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(
        NmtError, match=r"^matplotlib is not installed; pip install 'nmt-cli\[plot\]'$"
    ):
        plot_alignments(RECORDS, tmp_path)


@needs_matplotlib
def test_curves_from_metrics(tmp_path: Path) -> None:
    rows = [
        {"step": 10, "train_loss": 5.0, "valid_ppl": 900.0, "valid_bleu": 0.5},
        {"step": 20, "train_loss": 3.0, "valid_ppl": 40.0, "valid_bleu": 8.0},
        {"step": 20, "train_loss": 2.9, "valid_ppl": 39.0, "valid_bleu": 8.5},  # a resume
        {"step": 30, "train_loss": float("nan"), "valid_ppl": 12.0, "valid_bleu": 15.0},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_metrics(metrics)
    assert [r["step"] for r in read] == [10, 20, 30] and read[1]["valid_bleu"] == 8.5
    written = plot_metrics(read, tmp_path / "plots", "run")
    assert [p.name for p in written] == ["train_loss.png", "valid_ppl.png", "valid_bleu.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_metrics_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_metrics(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(DataError, match="no rows yet"):
        read_metrics(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"loss": 2}\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: not a metrics row"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_tensorboard_scalars_replace_earlier_ones(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [{"step": 10, "valid_bleu": 1.5, "lr": 0.001}, {"step": 20, "valid_bleu": 4.0}]
    write_tensorboard(rows, tmp_path)
    write_tensorboard(rows, tmp_path)  # a rerun: the same points, not twice as many
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("valid_bleu")] == [(10, 1.5), (20, 4.0)]
    assert len(events.Scalars("lr")) == 1


def test_missing_tensorboard_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(NmtError, match=r"^tensorboard is not installed; pip install tensorboard$"):
        write_tensorboard([{"step": 1, "valid_bleu": 1.0}], tmp_path)
