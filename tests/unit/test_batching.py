"""Token-budget bucketing: every batch's padded size stays within the budget, every pair comes
once per epoch, and the order depends on the seed alone."""

from __future__ import annotations

import itertools

import pytest
import torch

from nmt_cli.corpus import EncodedSplit
from nmt_cli.data import Batch, TrainBatches, bucket_batches, collate

BUDGET = 300


def random_split(n: int = 400, seed: int = 0) -> EncodedSplit:
    """Pairs of 1-60 tokens per side, plus two pairs longer than the whole budget."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 61, (n, 2), generator=g).tolist()
    lengths += [[BUDGET + 20, 3], [2, BUDGET]]
    src = [[4 + (i + j) % 20 for j in range(s)] for i, (s, _) in enumerate(lengths)]
    tgt = [[4 + (i * j) % 20 for j in range(t)] for i, (_, t) in enumerate(lengths)]
    return EncodedSplit.from_ids(src, tgt)


SPLIT = random_split()


def padded(ids: list[int]) -> Batch:
    return collate([SPLIT.pair(i) for i in ids], ids)


def padded_size(batch: Batch) -> int:
    """Sentences x the longest padded side: the source, or the target with BOS (or EOS)."""
    return len(batch) * max(batch.src.size(1), batch.tgt_in.size(1))


def batches(seed: int | None) -> list[list[int]]:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return bucket_batches(SPLIT.src_lengths, SPLIT.tgt_lengths, BUDGET, generator)


@pytest.mark.parametrize("seed", [None, 0, 1], ids=["sorted", "seed0", "seed1"])
def test_every_batch_fits_the_budget_unless_one_pair_alone_exceeds_it(seed: int | None) -> None:
    found = batches(seed)
    for ids in found:
        size = padded_size(padded(ids))
        assert size <= BUDGET or len(ids) == 1, (ids, size)
    assert sum(padded_size(padded(ids)) > BUDGET for ids in found) == 2  # the two long pairs


@pytest.mark.parametrize("seed", [None, 0, 1], ids=["sorted", "seed0", "seed1"])
def test_every_pair_is_in_exactly_one_batch(seed: int | None) -> None:
    assert sorted(i for ids in batches(seed) for i in ids) == list(range(len(SPLIT)))


def test_sorted_batches_are_full_and_in_length_order() -> None:
    """Without a generator (validation): sorted by (target, source) length, and each batch
    takes pairs until the next one would break the budget."""
    found = batches(None)
    flat = [i for ids in found for i in ids]
    keys = [(int(SPLIT.tgt_lengths[i]), int(SPLIT.src_lengths[i])) for i in flat]
    assert keys == sorted(keys)
    for ids, following in itertools.pairwise(found):
        assert padded_size(padded([*ids, following[0]])) > BUDGET
    assert len(found) < len(SPLIT) / 4  # batches hold several pairs, not one each


def test_the_seed_alone_decides_the_order() -> None:
    assert batches(0) == batches(0)
    assert batches(0) != batches(1)
    assert [sorted(b) for b in batches(0)] != [sorted(b) for b in batches(None)]  # shuffled


def test_train_batches_cover_each_candidate_once_per_epoch() -> None:
    stream = TrainBatches(SPLIT, BUDGET, max_len=60, seed=3)
    candidates = [
        i for i in range(len(SPLIT)) if SPLIT.src_lengths[i] <= 60 and SPLIT.tgt_lengths[i] <= 60
    ]
    assert stream.skipped == 2 and len(candidates) == len(SPLIT) - 2
    seen: list[int] = []
    epochs = iter(stream)
    while len(seen) < len(candidates):
        batch = next(epochs)
        assert padded_size(batch) <= BUDGET
        seen += batch.ids.tolist()
    assert sorted(seen) == candidates
    assert stream.state_dict()["epoch"] == 0  # the next batch opens epoch 1
    next_epoch = next(epochs).ids.tolist()
    assert stream.state_dict() == {"epoch": 1, "index": 1}
    again = TrainBatches(SPLIT, BUDGET, max_len=60, seed=3)
    again.load_state_dict({"epoch": 1, "index": 0})
    assert next(iter(again)).ids.tolist() == next_epoch
