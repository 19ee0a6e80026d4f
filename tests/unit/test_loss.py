"""The loss: padding contributes nothing; label smoothing follows its formula."""

from __future__ import annotations

import math

import pytest
import torch

from nmt_cli import loss as loss_module
from nmt_cli.loss import cross_entropy, generator_loss
from nmt_cli.tokenizer import PAD_ID


def test_padding_contributes_nothing() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7, requires_grad=True)
    targets = torch.tensor([[4, 5, 6, 3], [4, 3, PAD_ID, PAD_ID]])
    loss = cross_entropy(logits, targets, 0.1)
    real = torch.cat([logits[0], logits[1, :2]])
    expected = cross_entropy(real, torch.tensor([4, 5, 6, 3, 4, 3]), 0.1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad[1, 2:] == 0)


def test_label_smoothing_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0]])
    eps = 0.3
    log_p = [
        2.0 - math.log(math.exp(2) + 1 + math.exp(1)),
        -math.log(math.exp(2) + 1 + math.exp(1)),
    ]
    log_p.append(1.0 + log_p[1])
    # target 2: (1 - eps) * -log p(2) + eps * mean over the 3 classes of -log p(v)
    expected = (1 - eps) * -log_p[2] + eps * -sum(log_p) / 3
    got = cross_entropy(logits, torch.tensor([2]), eps)
    assert abs(got.item() - expected) < 1e-6
    assert abs(cross_entropy(logits, torch.tensor([2])).item() + log_p[2]) < 1e-6


def _reference_and_fused(
    smoothing: float, autocast: bool, tie: bool = False
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Loss and gradients (hidden, weight, bias) of the plain and the chunked computation."""
    torch.manual_seed(0)
    generator = torch.nn.Linear(16, 50)
    hidden = torch.randn(37, 16)
    targets = torch.randint(1, 50, (37,))
    targets[[3, 20]] = PAD_ID
    results = []
    for fused in (False, True):
        h = hidden.clone().requires_grad_()
        generator.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if fused:
                loss = generator_loss(h, generator, targets, smoothing)
            else:
                loss = cross_entropy(generator(h), targets, smoothing)
        (loss * 0.5).backward()  # a scaled upstream gradient, as the trainer's / n_tokens
        results.append([loss.detach(), h.grad, generator.weight.grad, generator.bias.grad])
    return results[0], results[1]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_generator_loss_matches_the_plain_one(
    smoothing: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 50 * 8)  # 8 rows a chunk: 5 chunks
    reference, fused = _reference_and_fused(smoothing, autocast=False)
    for want, got in zip(reference, fused, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_chunked_generator_loss_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 50 * 8)
    reference, fused = _reference_and_fused(0.1, autocast=True)
    for want, got in zip(reference, fused, strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=2e-2, atol=5e-3)  # bf16 rounding


def test_chunked_generator_loss_without_gradients_gives_the_loss() -> None:
    torch.manual_seed(0)
    generator = torch.nn.Linear(8, 20)
    hidden, targets = torch.randn(5, 8), torch.randint(1, 20, (5,))
    with torch.no_grad():
        got = generator_loss(hidden, generator, targets, 0.1)
        want = cross_entropy(generator(hidden), targets, 0.1)
    torch.testing.assert_close(got, want)


def test_bf16_cpu_chunks_are_padded_to_cached_kernel_shapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 37 rows in chunks of 32: the last chunk's 5 rows reach its kernels as 32 rows (padded
    # with PAD_ID targets, which add nothing); without the padding the same numbers come out.
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 50 * 32)
    rows_seen: list[int] = []
    matmul = loss_module.matmul

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        rows_seen.append(a.size(0) if a.is_contiguous() else a.size(1))
        return matmul(a, b)

    monkeypatch.setattr(loss_module, "matmul", spy)
    _, padded = _reference_and_fused(0.1, autocast=True)
    assert set(rows_seen) == {32}
    monkeypatch.setattr(loss_module, "kernel_rows", lambda rows, device, dtype: rows)
    rows_seen.clear()
    _, unpadded = _reference_and_fused(0.1, autocast=True)
    assert sorted(set(rows_seen)) == [5, 32]
    for got, want in zip(padded, unpadded, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


def test_fp32_chunks_keep_their_row_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 50 * 32)
    rows_seen: list[int] = []
    matmul = loss_module.matmul
    monkeypatch.setattr(
        loss_module, "matmul", lambda a, b: rows_seen.append(a.size(0)) or matmul(a, b)
    )
    _reference_and_fused(0.1, autocast=False)
    assert sorted(set(rows_seen)) == [5, 32]
