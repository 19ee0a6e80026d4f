"""The data folder's format: meta.json checks and encoded splits on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.errors import DataError


def test_load_meta_errors(tmp_path: Path) -> None:
    message = "not a preprocessed data folder (no meta.json); run nmt preprocess first"
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path / 'missing'}: {message}")):
        load_meta(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no meta\.json"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 2}), encoding="utf-8")
    with pytest.raises(DataError, match="format_version 2 is not supported"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 1}), encoding="utf-8")
    with pytest.raises(DataError, match="missing keys src_lang, tgt_lang"):
        load_meta(tmp_path)


def test_encoded_split_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        EncodedSplit.load(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk\.pt: not an encoded split"):
        EncodedSplit.load(tmp_path / "junk.pt")
    split = EncodedSplit.from_ids([[5, 6], [7]], [[8], [9, 10, 11]])
    data = {"src": split.src, "src_offsets": torch.tensor([0, 4, 3]), "tgt": split.tgt}
    data["tgt_offsets"] = split.tgt_offsets
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"bad\.pt: src_offsets do not index src"):
        EncodedSplit.load(tmp_path / "bad.pt")


def test_encoded_split_round_trip(tmp_path: Path) -> None:
    split = EncodedSplit.from_ids([[5, 6], [], [7]], [[8], [9, 10, 11], [12]])
    split.save(tmp_path / "s.pt")
    loaded = EncodedSplit.load(tmp_path / "s.pt")
    assert len(loaded) == 3
    assert loaded.src_lengths.tolist() == [2, 0, 1]
    assert [t.tolist() for t in loaded.pair(1)] == [[], [9, 10, 11]]
    with pytest.raises(IndexError):
        loaded.pair(3)
