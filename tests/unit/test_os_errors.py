"""Operating-system and torch errors become one line naming the path (or setting) and the
reason (issue 22): full disks, unreadable inputs, out of memory, non-finite metrics."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import nmt_cli.checkpoint as checkpoint_module
from nmt_cli.checkpoint import Checkpoint, save_checkpoint
from nmt_cli.config import load_config
from nmt_cli.errors import CheckpointError, DataError, NmtError, out_of_memory
from nmt_cli.linereader import read_batches
from nmt_cli.textio import open_output
from nmt_cli.training.build import build_model_and_optimizer


def test_a_full_disk_on_an_output_file_names_it() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = open_output(Path("/dev/full"))
    with pytest.raises(DataError, match=r"^/dev/full: cannot write \(No space left on device\)$"):
        out.write("x" * 100_000)  # more than the buffer: written now
        out.flush()
    out.close()  # the failed bytes are not retried: closing is quiet


class _FullDisk(io.RawIOBase):
    """A file on a full disk: every write fails as the kernel's would."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_under_torch_save_is_a_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save reports the failed write as a RuntimeError ("unexpected pos")."""
    monkeypatch.setattr(
        checkpoint_module, "open", lambda path, mode: io.BufferedWriter(_FullDisk()), raising=False
    )
    ckpt = Checkpoint(
        config={}, vocab={}, model={"w": torch.zeros(50_000)}, step=1
    )  # larger than the buffer
    with pytest.raises(
        CheckpointError, match=r"a\.pt: cannot write checkpoint: No space left on device$"
    ):
        save_checkpoint(ckpt, tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_a_folder_on_stdin_is_one_line(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    stream = SimpleNamespace(fileno=lambda: fd, name=str(tmp_path))
    try:
        with pytest.raises(DataError, match=rf"^{tmp_path}: cannot read \(Is a directory\)$"):
            next(read_batches(stream, 4))  # type: ignore[arg-type]
    finally:
        os.close(fd)


def test_torchs_out_of_memory_is_recognized() -> None:
    try:
        torch.empty(10**12)  # 4 TB: refused at once
    except RuntimeError as e:
        assert out_of_memory(e) == "4,000.0 GB"
    assert out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")) is None
    assert out_of_memory(torch.OutOfMemoryError("Tried to allocate 20.00 GiB")) == "20.00 GiB"
    assert out_of_memory(RuntimeError("shape mismatch")) is None


def test_a_huge_model_setting_is_named_when_memory_runs_out() -> None:
    config = load_config(None, ["model.emb_size=1000000000"])
    sides = SimpleNamespace(vocab_size=100)
    vocab = SimpleNamespace(src=sides, tgt=sides, joint=False)
    with pytest.raises(
        NmtError, match=r"^out of memory building the model \(400\.0 GB asked for\)"
    ):
        build_model_and_optimizer(config, vocab, torch.device("cpu"))  # type: ignore[arg-type]


def test_infinity_in_metrics_is_left_out_of_the_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from nmt_cli.plotting import plot_metrics, read_metrics

    path = tmp_path / "metrics.jsonl"
    rows = [
        '{"step": 10, "train_loss": 5.0, "valid_ppl": Infinity, "valid_bleu": 0.5}',
        '{"step": 20, "train_loss": 3.0, "valid_ppl": 40.0, "valid_bleu": NaN}',
    ]
    path.write_text("\n".join(rows) + "\n")
    written = plot_metrics(read_metrics(path), tmp_path / "plots")
    assert sorted(p.name for p in written) == ["train_loss.png", "valid_bleu.png", "valid_ppl.png"]


@pytest.mark.parametrize(
    ("missing", "reason"),
    [("valid.ref", "no such file"), ("encoded/valid.src.ids", "unreadable")],
)
def test_a_data_folder_missing_a_file_names_it(tmp_path: Path, missing: str, reason: str) -> None:
    import json

    import numpy as np

    from nmt_cli.encoded import ENCODED_DIR, FORMAT_VERSION, SplitWriter, id_dtype
    from nmt_cli.training.validator import Validator

    dtype = id_dtype(300)
    writer = SplitWriter(tmp_path, "valid", (dtype, dtype))
    writer.append((np.array([4, 5, 6]), np.array([4, 5])), (np.array([3]), np.array([2])))
    writer.close()
    meta = {
        "format_version": FORMAT_VERSION, "src_lang": "de", "tgt_lang": "en", "joint": True,
        "src_spm": "spm.model", "tgt_spm": "spm.model", "splits": ["valid"],
        "encoded": {"valid": {"pairs": 1, "src_dtype": dtype.name, "tgt_dtype": dtype.name}},
    }  # fmt: skip
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "valid.ref").write_text("a b\n")
    assert ENCODED_DIR == "encoded"
    (tmp_path / missing).unlink()
    with pytest.raises(DataError, match=rf"^{tmp_path / missing}: {reason}"):
        Validator.load(tmp_path, None, load_config(), torch.device("cpu"), None)  # type: ignore[arg-type]
