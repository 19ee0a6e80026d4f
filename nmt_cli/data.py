"""Batches for training and validation: token-budget bucketing, padding and masks.

A batch is built once on the host (padding, masks, the flat positions of the real target
tokens) and moved to the device in one non-blocking copy from pinned memory, so the training
step never needs to ask the device for a shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

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
    src_lengths: Tensor, tgt_lengths: Tensor, budget: int, generator: torch.Generator | None = None
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
    n = len(src_lengths)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    key = (tgt_lengths[order] + 1) * 10_000 + (src_lengths[order] + 1)
    order = order[torch.sort(key, stable=True).indices]
    side = torch.maximum(src_lengths, tgt_lengths + 1)[order].tolist()
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, length in zip(order.tolist(), side, strict=True):
        if current and max(longest, length) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    if current:
        batches.append(current)
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


class TrainBatches:
    """An endless, resumable stream of shuffled, bucketed training batches.

    The order of epoch e depends only on (seed, e), so the position (epoch, index) is the whole
    sampler state a checkpoint needs to resume the exact same stream.
    """

    def __init__(self, split: EncodedSplit, budget: int, max_len: int, seed: int) -> None:
        self.split, self.budget, self.seed = split, budget, seed
        keep = (split.src_lengths <= max_len) & (split.tgt_lengths <= max_len)
        self.candidates = keep.nonzero().squeeze(1)
        self.skipped = len(split) - len(self.candidates)
        if len(self.candidates) == 0:
            raise ValueError(f"no training pair has both sides within data.max_len={max_len}")
        self.epoch, self.index = 0, 0
        self._batches = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        cand = self.candidates
        batches = bucket_batches(
            self.split.src_lengths[cand], self.split.tgt_lengths[cand], self.budget, generator
        )
        return [cand[b].tolist() for b in batches]

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
        return ids

    def _collate(self, ids: list[int]) -> Batch:
        return collate([self.split.pair(i) for i in ids], ids)

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
    return [collate([split.pair(i) for i in ids], ids) for ids in batches]
