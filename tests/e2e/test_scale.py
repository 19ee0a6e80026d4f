"""nmt preprocess with worker processes, and format 2's batches on Multi30k."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nmt_cli.corpus import EncodedSplit
from nmt_cli.data import TrainBatches, bucket_batches
from nmt_cli.preprocess import Options, preprocess
from nmt_cli.textio import read_lines
from nmt_cli.tokenizer import Tokenizer

from .conftest import nmt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_preprocess_scale import reference_buckets

MULTI30K = Path(os.environ.get("MULTI30K_DIR", Path(__file__).parents[3] / "shared/data/multi30k"))


def test_any_number_of_workers_writes_the_same_folder(
    corpus: Path, data_dir: Path, tmp_path: Path
) -> None:
    """data_dir came from the CLI's default (one worker per core); here one worker only."""
    nmt(
        "preprocess", "--src", "src", "--tgt", "tgt", "--train", str(corpus / "train"),
        "--valid", str(corpus / "valid"), "--test", str(corpus / "test"), "--out",
        str(tmp_path / "one"), "--vocab-size", "100", "--model-type", "bpe", "--workers", "1",
    )  # fmt: skip
    files = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file())
    assert len(files) == 19
    for name in files:
        if name.name not in ("summary.txt", "meta.json"):  # these name the folder
            assert (tmp_path / "one" / name).read_bytes() == (data_dir / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.skipif(not (MULTI30K / "train.de").exists(), reason="no Multi30k (MULTI30K_DIR)")
def test_multi30k_batches_are_those_of_format_1(tmp_path: Path) -> None:
    """Same seed, same batches: the memory-mapped split against the same ids in memory (what
    format 1 loaded), and the vectorized bucketing against the pair-at-a-time loop."""
    out = tmp_path / "data"
    preprocess("de", "en", MULTI30K / "train", MULTI30K / "val", out, options=Options(workers=2))
    tok = Tokenizer.load(out / "spm.model")
    src, tgt = read_lines(MULTI30K / "train.de"), read_lines(MULTI30K / "train.en")
    kept = [(s, t) for s, t in zip(src, tgt, strict=True) if s and t]
    memory = EncodedSplit.from_ids(
        tok.encode_batch([s for s, _ in kept]), tok.encode_batch([t for _, t in kept])
    )
    mapped = EncodedSplit.open(out, "train")
    assert np.array_equal(mapped.src, memory.src) and np.array_equal(mapped.tgt, memory.tgt)
    a, b = TrainBatches(mapped, 2048, 100, seed=1), TrainBatches(memory, 2048, 100, seed=1)
    for x, y in zip(a.groups(1), b.groups(1), strict=False):
        assert torch.equal(x[0].src, y[0].src) and torch.equal(x[0].tgt_in, y[0].tgt_in)
        if a.index >= 200:
            break
    lengths = mapped.src_lengths.tolist(), mapped.tgt_lengths.tolist()
    for seed in (1, 100_004):  # epochs 0 and 1 of seed 1
        generator = torch.Generator().manual_seed(seed)
        new = bucket_batches(mapped.src_lengths, mapped.tgt_lengths, 2048, generator)
        assert new == reference_buckets(*lengths, 2048, seed)
