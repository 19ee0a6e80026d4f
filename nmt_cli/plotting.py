"""PNG plots: attention heatmaps and training curves (matplotlib, the optional `plot` extra).

Figures are drawn on matplotlib's Agg canvas directly, without pyplot: no global figure
state, no display needed, and a caller's own matplotlib backend is left alone.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt_cli.errors import DataError, NmtError
from nmt_cli.textio import check_not_input

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from nmt_cli.alignments import LineSet

log = logging.getLogger(__name__)

# metrics.jsonl key -> (axis label, logarithmic y axis)
CURVES = {
    "train_loss": ("train loss (label-smoothed cross-entropy)", False),
    "valid_ppl": ("validation perplexity", True),
    "valid_bleu": ("validation BLEU", False),
}
TENSORBOARD_SCALARS = ("train_loss", "valid_ppl", "valid_bleu", "lr", "tokens_per_s")


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas; a one-line error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise NmtError("matplotlib is not installed; pip install 'nmt-cli[plot]'") from None
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create the output folder ({e.strerror or e})") from None


def _save(figure: Figure, path: Path, inputs: Sequence[Path] = ()) -> None:
    check_not_input(path, inputs)
    try:
        figure.savefig(path)
    except OSError as e:
        raise DataError(f"{path}: cannot write ({e.strerror or e})") from None


# ---- attention ------------------------------------------------------------------------------
def plot_alignment(
    source: Sequence[str],
    target: Sequence[str],
    weights: Sequence[Sequence[float]],
    path: Path,
    title: str = "",
    inputs: Sequence[Path] = (),
) -> None:
    """Draw one attention matrix as a heatmap PNG: source pieces on x, target pieces on y.

    Args:
        source: S source pieces; target: T target pieces (eos included).
        weights: T x S attention weights (row t: where target piece t looked).
        path: the PNG to write.
        title: drawn above the matrix.
        inputs: files the caller reads; `path` must not be one of them.
    """
    n_src, n_tgt = len(source), len(target)
    # About a third of an inch per piece, so labels stay readable; capped for huge inputs.
    width = min(4.0 + 0.32 * n_src, 40.0)
    height = min(2.5 + 0.28 * n_tgt, 40.0)
    font = 10 if max(n_src, n_tgt) <= 40 else 7
    figure = new_figure(width, height)
    ax = figure.subplots()
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(n_src), list(source), rotation=90, fontsize=font)
    ax.set_yticks(range(n_tgt), list(target), fontsize=font)
    ax.xaxis.tick_top()  # source reads along the top, like the sentence being translated
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=font + 1, pad=12)
    figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    figure.tight_layout()
    _save(figure, path, inputs)


def plot_alignments(
    records: Iterable[dict[str, Any]],
    out_dir: Path,
    lines: LineSet | None = None,
    inputs: Sequence[Path] = (),
) -> list[Path]:
    """One heatmap per alignment record, `OUT/line-N.png`; empty lines are skipped.

    Args:
        records: alignment records (see `nmt_cli.alignments`).
        out_dir: the folder for the PNGs (created).
        lines: only these 1-based line numbers (all when None).
        inputs: files the caller reads (the records' file): never written over.

    Returns:
        The files written, in record order.

    Raises:
        DataError: nothing to draw (no record, or only empty lines, among those asked for).
    """
    _make_dir(out_dir)
    written, seen = [], set()
    for record in records:
        line = record["line"]
        if lines is not None and line not in lines:
            continue
        seen.add(line)
        if not record["source"]:
            log.info("line %d is empty: nothing to draw", line)
            continue
        path = out_dir / f"line-{line}.png"
        weights = record["weights"]
        plot_alignment(record["source"], record["target"], weights, path, f"line {line}", inputs)
        written.append(path)
    if lines is not None:
        first, count = lines.missing(seen)
        if count:
            more = f" and {count - len(first):,} more" if count > len(first) else ""
            log.warning("no record for line %s%s", ", ".join(map(str, first)), more)
    if not written:
        raise DataError("no attention to draw (no record, or only empty lines, were selected)")
    return written


# ---- training curves ------------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of RUN/metrics.jsonl (training and validation), one per step, by step (the last
    row of a step wins: a validation's row follows the training row of its step)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such file (is it a run folder? metrics are written at each validation)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    rows: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[int(row["step"])] = row
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{number}: not a metrics row") from None
    if not rows:
        raise DataError(f"{path}: no rows yet (the first comes after train.log_every steps)")
    return [rows[step] for step in sorted(rows)]


def plot_metrics(
    rows: Sequence[dict[str, Any]],
    out_dir: Path,
    run_name: str = "",
    inputs: Sequence[Path] = (),
) -> list[Path]:
    """Train loss, validation perplexity and BLEU over steps: one PNG each in out_dir.

    Args:
        rows: metrics rows by step (see `read_metrics`).
        out_dir: the folder for the PNGs (created).
        run_name: shown in the titles.
        inputs: files the caller reads (metrics.jsonl): never written over.

    Returns:
        The files written (`train_loss.png`, `valid_ppl.png`, `valid_bleu.png`; a curve whose
        key no row has is skipped).
    """
    _make_dir(out_dir)
    written = []
    for key, (label, log_y) in CURVES.items():
        numbers = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        points = [(step, value) for step, value in numbers if math.isfinite(value)]
        if len(points) < len(numbers):  # e.g. Infinity written by hand or an older nmt
            log.warning("%s: %d non-finite values left out", key, len(numbers) - len(points))
        if not points:
            continue
        figure = new_figure(6.4, 4.0)
        ax = figure.subplots()
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3)
        values = [v for _, v in points]
        if log_y and min(values) > 0 and max(values) > 20 * min(values):  # spans decades
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_title(f"{run_name}: {label}" if run_name else label)
        ax.grid(alpha=0.3)
        figure.tight_layout()
        path = out_dir / f"{key}.png"
        _save(figure, path, inputs)
        written.append(path)
    return written


def write_tensorboard(rows: Sequence[dict[str, Any]], log_dir: Path) -> Path:
    """Write the metrics rows as TensorBoard scalars into log_dir (replacing earlier ones)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NmtError("tensorboard is not installed; pip install tensorboard") from None
    _make_dir(log_dir)
    for old in log_dir.glob("events.out.tfevents.*"):  # a rerun must not duplicate every point
        old.unlink()
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for row in rows:
            for key in TENSORBOARD_SCALARS:
                if isinstance(row.get(key), (int, float)):
                    writer.add_scalar(key, row[key], row["step"])
    return log_dir
