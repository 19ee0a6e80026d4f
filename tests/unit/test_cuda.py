"""On a real CUDA device: placement, bf16 autocast, and out-of-memory split-and-retry.

These run where CUDA is present and are skipped elsewhere with the reason (`pytest -rs`
prints it). `make bench-gpu` measures speed; these check behaviour.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import pytest
import torch

from nmt_cli.config import ModelConfig
from nmt_cli.data import Batch, collate
from nmt_cli.device import resolve_device
from nmt_cli.model import build_model, init_weights
from nmt_cli.training.oom import accumulate_gradients
from nmt_cli.training.update import batch_loss

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

SMALL = ModelConfig(
    emb_size=16, enc_hidden=32, dec_hidden=32, attn_hidden=16, dropout=0.0, emb_dropout=0.0
)


def small_model(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(SMALL), 40, 41, joint_vocab=False)
    init_weights(model, 0.1)
    return model.to(device)


def batch_of(n: int, seed: int = 0) -> Batch:
    """n random sentence pairs of lengths 3..9 (ids past the special ones)."""
    g = torch.Generator().manual_seed(seed)
    pairs = [
        (
            torch.randint(4, 40, (int(torch.randint(3, 10, (1,), generator=g)),), generator=g),
            torch.randint(4, 41, (int(torch.randint(3, 10, (1,), generator=g)),), generator=g),
        )
        for _ in range(n)
    ]
    return collate(pairs, list(range(n)))


def test_auto_resolves_to_cuda_and_a_batch_and_model_land_there() -> None:
    device = resolve_device("auto")
    assert device.type == "cuda"
    model, batch = small_model(device), batch_of(8).to(device)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert batch.src.is_cuda and batch.targets.is_cuda
    assert not batch.src_lengths.is_cuda  # packing reads the lengths on the host
    loss = batch_loss(model, batch, 0.1, 0.0, nullcontext())
    assert loss.is_cuda and torch.isfinite(loss)


def test_bf16_autocast_runs_the_matmuls_in_bf16_and_agrees_with_fp32() -> None:
    device = torch.device("cuda")
    model, batch = small_model(device).eval(), batch_of(16).to(device)
    with torch.no_grad():
        fp32 = batch_loss(model, batch, 0.0, 0.0, nullcontext())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            x = torch.randn(4, 4, device=device)
            assert (x @ x).dtype == torch.bfloat16
        bf16 = batch_loss(model, batch, 0.0, 0.0, torch.autocast("cuda", dtype=torch.bfloat16))
    assert torch.isfinite(bf16)
    assert abs(bf16.item() - fp32.item()) / fp32.item() < 0.02


def test_a_batch_out_of_device_memory_is_split_and_gives_the_same_gradients() -> None:
    device = torch.device("cuda")
    model = small_model(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    group = [batch_of(8, seed=1).to(device), batch_of(6, seed=2).to(device)]
    n_tokens = sum(b.n_tokens for b in group)

    def plain(batch: Batch) -> torch.Tensor:
        return batch_loss(model, batch, 0.0, 0.0, nullcontext())

    def tight(batch: Batch) -> torch.Tensor:
        if len(batch) > 4:  # a real device allocation far past any GPU's memory
            torch.empty(1 << 50, dtype=torch.uint8, device=device)
        return plain(batch)

    accumulate_gradients(group, n_tokens, plain, optimizer, None, step=1)
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.zero_grad(set_to_none=True)
    accumulate_gradients(group, n_tokens, tight, optimizer, None, step=1)
    for name, p in model.named_parameters():
        if name in expected:
            assert p.grad is not None
            torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6)
