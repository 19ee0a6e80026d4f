"""Batches for training and validation: token-budget bucketing, padding and masks.

A batch is built once on the host (padding, masks, the flat positions of the real target
tokens) and moved to the device in one non-blocking copy from pinned memory, so the training
step never needs to ask the device for a shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from nmt_cli.corpus import EncodedSplit
from nmt_cli.special_ids import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A padded batch of B sentence pairs (batch-first; masks are True at real tokens).

    Attributes:
        src: B x S source ids; src_mask: B x S; src_lengths: B (always on the CPU, for packing).
        tgt_in: B x T decoder inputs (BOS + target); tgt_out: B x T targets (target + EOS).
        target_index: N flat positions (into B*T) of the real target tokens.
        targets: N the real target ids, in the same order.
        ids: B positions of the pairs in their split.
        n_tokens: N, the number of real target tokens (a Python int: no device sync).
    """

    src: Tensor
    src_mask: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    target_index: Tensor
    targets: Tensor
    ids: Tensor
    n_tokens: int

    def __len__(self) -> int:
        return self.src.size(0)

    def split(self) -> tuple[Batch, Batch]:
        """The first and second half of the sentences, re-padded as two CPU batches.

        For retrying a batch that ran out of device memory: it reads the tensors back to the
        host, which is fine on that rare path and nowhere else.
        """
        src, tgt_out = self.src.cpu(), self.tgt_out.cpu()
        tgt_lengths = (tgt_out != PAD_ID).sum(1) - 1  # B, without EOS
        pairs = [
            (src[i, :length], tgt_out[i, :tgt_length])
            for i, (length, tgt_length) in enumerate(
                zip(self.src_lengths.tolist(), tgt_lengths.tolist(), strict=True)
            )
        ]
        ids, half = self.ids.tolist(), len(pairs) // 2
        return collate(pairs[:half], ids[:half]), collate(pairs[half:], ids[half:])

    def pin_memory(self) -> Batch:
        return self._map(lambda name, t: t if name == "src_lengths" else t.pin_memory())

    def to(self, device: torch.device) -> Batch:
        """Move every tensor but the CPU lengths to `device` (non-blocking)."""
        if device.type == "cpu":
            return self
        return self._map(
            lambda name, t: t if name == "src_lengths" else t.to(device, non_blocking=True)
        )

    def _map(self, fn: Callable[[str, Tensor], Tensor]) -> Batch:
        values: dict[str, Any] = {
            f.name: fn(f.name, v) if isinstance(v := getattr(self, f.name), Tensor) else v
            for f in fields(self)
        }
        return Batch(**values)


def make_source_batch(sources: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Pad source id sequences (each >= 1 token): B x S ids, B x S mask, B lengths (CPU)."""
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    src = pad_sequence(list(sources), batch_first=True, padding_value=PAD_ID)
    mask = torch.arange(src.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    return src, mask, lengths


def collate(pairs: Sequence[tuple[Tensor, Tensor]], ids: Sequence[int]) -> Batch:
    """Pad a list of (source ids, target ids) pairs into a Batch (on the CPU)."""
    src, src_mask, src_lengths = make_source_batch([s for s, _ in pairs])
    bos, eos = torch.tensor([BOS_ID]), torch.tensor([EOS_ID])
    tgt_in = pad_sequence(
        [torch.cat([bos, t]) for _, t in pairs], batch_first=True, padding_value=PAD_ID
    )
    tgt_out = pad_sequence(
        [torch.cat([t, eos]) for _, t in pairs], batch_first=True, padding_value=PAD_ID
    )
    target_index = (tgt_out.view(-1) != PAD_ID).nonzero().squeeze(1)
    return Batch(
        src=src,
        src_mask=src_mask,
        src_lengths=src_lengths,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        target_index=target_index,
        targets=tgt_out.view(-1)[target_index],
        ids=torch.tensor(list(ids), dtype=torch.long),
        n_tokens=len(target_index),
    )


def bucket_batches(
    src_lengths: np.ndarray | Tensor,
    tgt_lengths: np.ndarray | Tensor,
    budget: int,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Group pairs of similar length into batches of at most `budget` padded tokens.

    Pairs are sorted by (target, source) length, ties broken randomly when a generator is
    given; a batch costs (sentences x its longest side, counting BOS/EOS) tokens. With a
    generator the batches are shuffled; without, they stay sorted (validation).

    Args:
        src_lengths, tgt_lengths: P lengths (without BOS/EOS) of the candidate pairs.
        budget: the token budget per batch (a longer single pair still forms its own batch).

    Returns:
        batches as lists of pair positions.
    """
    buckets = Buckets.of(np.asarray(src_lengths), np.asarray(tgt_lengths), budget, generator)
    return [buckets[i].tolist() for i in range(len(buckets))]


@dataclass
class Buckets:
    """Batches of pair positions, held as three flat arrays instead of lists of lists.

    Batch k is ``order[bounds[j]:bounds[j + 1]]`` with ``j = sequence[k]``: at 10 M pairs this
    is a few bytes a pair, where Python lists of ints would take about 100.
    """

    order: np.ndarray  # P pair positions, sorted by length
    bounds: np.ndarray  # B + 1 batch starts in `order`
    sequence: np.ndarray  # B batch numbers in the order they are served

    @classmethod
    def of(
        cls,
        src_lengths: np.ndarray,
        tgt_lengths: np.ndarray,
        budget: int,
        generator: torch.Generator | None = None,
    ) -> Buckets:
        """The batches `bucket_batches` describes, drawing the same numbers from `generator`."""
        n = len(src_lengths)
        wide = src_lengths.dtype.itemsize > 2 or tgt_lengths.dtype.itemsize > 2
        key_type = np.int64 if wide else np.int32  # (65535 + 1) * 10_000 fits an int32
        index_type = np.int64 if n > np.iinfo(np.int32).max else np.int32
        if generator is not None:
            order = torch.randperm(n, generator=generator).numpy().astype(index_type)
        else:
            order = np.arange(n, dtype=index_type)
        key = tgt_lengths[order].astype(key_type)
        key += 1
        key *= 10_000
        key += src_lengths[order]
        key += 1
        order = order[np.argsort(key, kind="stable")]
        del key
        side = tgt_lengths[order].astype(key_type)
        side += 1
        np.maximum(side, src_lengths[order], out=side)
        bounds = _greedy_bounds(side, budget)
        batches = len(bounds) - 1
        if generator is not None:
            sequence = torch.randperm(batches, generator=generator).numpy()
        else:
            sequence = np.arange(batches)
        return cls(order, bounds, sequence)

    def __len__(self) -> int:
        return len(self.sequence)

    def __getitem__(self, k: int) -> np.ndarray:
        j = self.sequence[k]
        return self.order[self.bounds[j] : self.bounds[j + 1]]


def _greedy_bounds(side: np.ndarray, budget: int) -> np.ndarray:
    """Cuts sorted pairs into batches greedily: a pair joins the current batch while
    (sentences x longest side) stays within `budget`; the first pair of a batch always joins.

    Works a batch at a time: a batch starting at a pair of side s holds at most budget // s
    pairs, so only that many sides are looked at per batch.
    """
    n = len(side)
    counts = np.arange(1, budget + 2, dtype=np.int64)
    bounds = [0]
    start = 0
    while start < n:
        window = side[start : start + budget // max(int(side[start]), 1) + 1]
        cost = np.maximum.accumulate(window) * counts[: len(window)]
        over = np.flatnonzero(cost > budget)
        start += max(int(over[0]), 1) if len(over) else len(window)
        bounds.append(start)
    return np.array(bounds, dtype=np.int64)


class TrainBatches:
    """An endless, resumable stream of shuffled, bucketed training batches.

    The order of epoch e depends only on (seed, e), so the position (epoch, index) is the whole
    sampler state a checkpoint needs to resume the exact same stream. Epochs are built from the
    split's length arrays alone; a batch reads only its own pairs.
    """

    def __init__(self, split: EncodedSplit, budget: int, max_len: int, seed: int) -> None:
        self.split, self.budget, self.seed = split, budget, seed
        keep = (split.src_lengths <= max_len) & (split.tgt_lengths <= max_len)
        kept = int(keep.sum())
        # None: every pair is a candidate (no index array of the whole corpus to hold)
        self.candidates = None if kept == len(split) else np.flatnonzero(keep)
        self.n_candidates, self.skipped = kept, len(split) - kept
        if kept == 0:
            raise ValueError(f"no training pair has both sides within data.max_len={max_len}")
        self.epoch, self.index = 0, 0
        self._batches = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> Buckets:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        src, tgt = self.split.src_lengths, self.split.tgt_lengths
        if self.candidates is not None:
            src, tgt = src[self.candidates], tgt[self.candidates]
        return Buckets.of(src, tgt, self.budget, generator)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._batches = self._epoch_batches(self.epoch)

    def _next_ids(self) -> list[int]:
        if self.index >= len(self._batches):
            self.epoch, self.index = self.epoch + 1, 0
            self._batches = self._epoch_batches(self.epoch)
        ids = self._batches[self.index]
        self.index += 1
        if self.candidates is not None:
            ids = self.candidates[ids]
        return ids.tolist()

    def _collate(self, ids: list[int]) -> Batch:
        batch = collate([self.split.pair(i) for i in ids], ids)
        self.split.release()
        return batch

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self._collate(self._next_ids())

    def groups(self, size: int, rank: int = 0, world_size: int = 1) -> Iterator[list[Batch]]:
        """Endless groups of `size` batches for one rank of `world_size` (data parallelism).

        Every rank reads the same stream; each update takes its next world_size x size
        batches, and rank r collates the r-th, (r + world_size)-th, ... of them. So 2 ranks x 1
        batch see exactly the batches of 1 process x 2, and the position stays counted in
        batches of the one stream, whatever the number of ranks (resume may change it).
        """
        while True:
            ids = [self._next_ids() for _ in range(world_size * size)]
            yield [self._collate(i) for i in ids[rank::world_size]]


def eval_batches(split: EncodedSplit, budget: int) -> list[Batch]:
    """Length-sorted batches over a whole split, for validation loss and translation."""
    batches = bucket_batches(split.src_lengths, split.tgt_lengths, budget)
    result = [collate([split.pair(i) for i in ids], ids) for ids in batches]
    split.release()
    return result
