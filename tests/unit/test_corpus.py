"""The data folder's format: meta.json checks, the completion marker, memory-mapped splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.encoded import FORMAT_VERSION, SplitWriter, id_dtype
from nmt_cli.errors import DataError


def write_folder(
    folder: Path, src: list[list[int]], tgt: list[list[int]], vocab: int = 300
) -> Path:
    """A data folder with one split "train" written through SplitWriter, and its meta.json."""
    dtype = id_dtype(vocab)
    writer = SplitWriter(folder, "train", (dtype, dtype))
    for s, t in zip(src, tgt, strict=True):  # one pair per chunk: offsets must carry over
        writer.append(
            (np.array(s, dtype=np.int64), np.array(t, dtype=np.int64)),
            (np.array([len(s)]), np.array([len(t)])),
        )
    writer.close()
    meta = {
        "format_version": FORMAT_VERSION, "src_lang": "de", "tgt_lang": "en", "joint": True,
        "src_spm": "spm.model", "tgt_spm": "spm.model", "splits": ["train"],
        "encoded": {"train": {"pairs": len(src), "src_dtype": dtype.name, "tgt_dtype": dtype.name}},
    }  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def test_load_meta_errors(tmp_path: Path) -> None:
    message = "not a preprocessed data folder (no meta.json); run nmt preprocess first"
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path / 'missing'}: {message}")):
        load_meta(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no meta\.json"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 99}), encoding="utf-8")
    with pytest.raises(DataError, match="format_version 99 is not supported"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 2}), encoding="utf-8")
    with pytest.raises(DataError, match="missing keys src_lang, tgt_lang"):
        load_meta(tmp_path)


def test_previous_format_says_to_preprocess_again(tmp_path: Path) -> None:
    """A folder of the torch.save format (train.pt, format_version 1)."""
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 1}), encoding="utf-8")
    (tmp_path / "train.pt").write_bytes(b"old")
    with pytest.raises(DataError) as err:
        EncodedSplit.open(tmp_path, "train")
    assert str(err.value) == (
        f"{tmp_path}: data folder of an older nmt (format 1, now 2); "
        "run nmt preprocess again to rebuild it"
    )


def test_folder_without_marker_is_incomplete(tmp_path: Path) -> None:
    write_folder(tmp_path, [[5]], [[6]])
    (tmp_path / "meta.json").unlink()
    with pytest.raises(DataError, match=r"incomplete data folder .*run nmt preprocess again"):
        EncodedSplit.open(tmp_path, "train")


def test_split_round_trip_through_the_files(tmp_path: Path) -> None:
    src, tgt = [[5, 6], [299], [7]], [[8], [9, 10, 11], [12]]
    split = EncodedSplit.open(write_folder(tmp_path, src, tgt), "train")
    assert len(split) == 3
    assert split.src.dtype == np.uint16  # 300 pieces do not fit a byte
    assert split.src_lengths.tolist() == [2, 1, 1] and split.tgt_lengths.tolist() == [1, 3, 1]
    assert [t.tolist() for t in split.pair(1)] == [[299], [9, 10, 11]]
    assert [t.tolist() for t in split.pair(-1)] == [[7], [12]]
    with pytest.raises(IndexError):
        split.pair(3)
    split.release()  # pages let go of: the data reads the same afterwards
    assert split.pair(0)[0].tolist() == [5, 6]


def test_damaged_files_are_named(tmp_path: Path) -> None:
    write_folder(tmp_path, [[5, 6], [7]], [[8], [9]])
    ids = tmp_path / "encoded" / "train.tgt.ids"
    full = ids.read_bytes()
    ids.write_bytes(full[:3])  # a write cut short in the middle of a uint16
    with pytest.raises(DataError, match=re.escape(f"{ids}: unreadable")):
        EncodedSplit.open(tmp_path, "train")
    ids.write_bytes(full[:2])  # one whole id of two
    with pytest.raises(DataError, match="tgt_offsets do not index tgt"):
        EncodedSplit.open(tmp_path, "train")
    with pytest.raises(DataError, match="no split 'valid'"):
        EncodedSplit.open(tmp_path, "valid")


def test_offsets_must_index_the_ids() -> None:
    ids = np.array([5, 6, 7], dtype=np.int32)
    good = np.array([0, 2, 3], dtype=np.int64)
    with pytest.raises(DataError, match="src_offsets do not index src"):
        EncodedSplit(ids, np.array([0, 4, 3], dtype=np.int64), ids, good)
    with pytest.raises(DataError, match="2 source sentences but 1 target"):
        EncodedSplit(ids, good, ids, np.array([0, 3], dtype=np.int64))


def test_id_dtype_is_the_smallest_that_fits() -> None:
    assert [id_dtype(v).name for v in (256, 257, 65536, 65537)] == [
        "uint8", "uint16", "uint16", "uint32",
    ]  # fmt: skip
