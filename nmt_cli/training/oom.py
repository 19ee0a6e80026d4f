"""Gradient accumulation over a group of batches, with out-of-memory split-and-retry.

A batch that runs out of device memory is split in two halves and the group is computed
again from zeroed gradients (a failed backward may have left some behind); the loss stays
normalized by the whole group's target tokens. With several ranks a batch cannot be
retried: the other ranks may be all-reducing its gradients already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel

from nmt_cli.data import Batch
from nmt_cli.errors import NmtError

log = logging.getLogger(__name__)


def accumulate_gradients(
    group: list[Batch],
    n_tokens: int | torch.Tensor,
    loss_of: Callable[[Batch], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    ddp: DistributedDataParallel | None,
    step: int,
) -> torch.Tensor:
    """Accumulate the gradients of a group, splitting any batch that runs out of memory.

    Args:
        group: the update's batches, on the device.
        n_tokens: what the summed loss is divided by: the group's target tokens (with DDP,
            a device scalar: the update's target tokens over all ranks / the ranks).
        loss_of: the summed loss of one batch (a device scalar with a graph).
        optimizer: its gradients are zeroed before a retry.
        ddp: the model's DDP wrapper under torchrun, else None.
        step: the update's number, for the messages.

    Returns:
        the group's summed loss (a device scalar).

    Raises:
        NmtError: out of memory with several ranks, or on a single sentence pair.
    """
    total, failed = forward_backward(group, n_tokens, loss_of, ddp)
    while failed is not None:
        if ddp is not None:
            raise NmtError(
                f"out of device memory at step {step} on rank {torch.distributed.get_rank()} "
                f"(a batch of {len(group[failed])} sentences); lower train.batch_tokens (with "
                f"several ranks a batch cannot be split and retried)"
            )
        optimizer.zero_grad(set_to_none=True)
        group = split_batch(group, failed, step)
        total, failed = forward_backward(group, n_tokens, loss_of, ddp)
    return total


def forward_backward(
    group: list[Batch],
    n_tokens: int | torch.Tensor,
    loss_of: Callable[[Batch], torch.Tensor],
    ddp: DistributedDataParallel | None,
) -> tuple[torch.Tensor, int | None]:
    """Accumulate the gradients of a group of batches, once.

    Returns:
        the summed loss (a device scalar) and the index of the batch that ran out of
        device memory (None when all fit).
    """
    total = torch.zeros((), device=group[0].tgt_in.device)
    for i, batch in enumerate(group):
        # DDP all-reduces the gradients once, in the backward of the group's last batch.
        last = i == len(group) - 1
        sync = ddp.no_sync() if ddp is not None and not last else nullcontext()
        try:
            with sync:
                loss = loss_of(batch)
                (loss / n_tokens).backward()
        except torch.OutOfMemoryError:
            return total, i  # handled outside the except block, so its frames are freed
        total += loss.detach()
    return total, None


def split_batch(group: list[Batch], failed: int, step: int) -> list[Batch]:
    """The group again, with batch `failed` split in halves (after it ran out of memory).

    Raises:
        NmtError: the batch is a single sentence pair: nothing left to split.
    """
    batch = group[failed]
    device = batch.tgt_in.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if len(batch) < 2:
        raise NmtError(
            f"out of device memory at step {step} on a single sentence pair "
            f"({batch.src.size(1)} source, {batch.n_tokens} target tokens); lower "
            f"data.max_len or the model size"
        )
    log.warning(
        "step %d: out of device memory on a batch of %d sentences (%d target tokens); "
        "split in two and retried (a lower train.batch_tokens avoids this)",
        step,
        len(batch),
        batch.n_tokens,
    )
    halves = [half.to(device) for half in batch.split()]
    return [*group[:failed], *halves, *group[failed + 1 :]]
