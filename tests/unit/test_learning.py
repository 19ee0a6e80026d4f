"""The model really learns: sequence reversal with attention, and the fixed-context bottleneck."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch

from nmt_cli.config import ModelConfig
from nmt_cli.data import collate
from nmt_cli.decoding import search_sorted
from nmt_cli.loss import cross_entropy
from nmt_cli.model import Seq2Seq, build_model, init_weights

VOCAB = 14  # ids 4..13 are the 10 symbols
TINY = ModelConfig(
    emb_size=32, enc_hidden=64, dec_hidden=64, attn_hidden=32, dropout=0.0, emb_dropout=0.0
)


def reversal_pairs(
    n: int, lengths: tuple[int, int], seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        length = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=g))
        src = torch.randint(4, VOCAB, (length,), generator=g)
        pairs.append((src, src.flip(0)))
    return pairs


def train_reversal(attention: str, steps: int, max_len: int, every: int) -> Iterator[Seq2Seq]:
    """Train on fresh reversal batches of 32; yields the model (in eval mode) after every
    `every` updates, up to `steps`."""
    torch.manual_seed(0)
    model = build_model(
        dataclasses.replace(TINY, attention=attention), VOCAB, VOCAB, joint_vocab=True
    )
    init_weights(model, 0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    data = reversal_pairs(steps * 32, (2, max_len), seed=1)
    for step in range(steps):
        model.train()
        batch = collate(data[step * 32 : (step + 1) * 32], range(32))
        outputs = model(batch.src, batch.src_mask, batch.src_lengths, batch.tgt_in)
        hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)
        loss = cross_entropy(model.generator(hidden), batch.targets) / batch.n_tokens
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if (step + 1) % every == 0:
            yield model.eval()


def exact_match(model: Seq2Seq, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    hyps = search_sorted(
        model, [s for s, _ in pairs], torch.device("cpu"), 64,
        beam=1, alpha=0.0, max_len_a=1.0, max_len_b=3,
    )  # fmt: skip
    return sum(h[0].tokens == t.tolist() for h, (_, t) in zip(hyps, pairs, strict=True)) / len(
        pairs
    )


# Updates within which attention must learn the task, checked every EVERY updates (measured:
# 1.00 / 0.92 exact after 300); the fixed-context model gets the same budget.
BUDGET, EVERY = 600, 100


@pytest.mark.slow
def test_attention_learns_reversal_and_beats_fixed_context() -> None:
    short = reversal_pairs(200, (2, 6), seed=7)
    long = reversal_pairs(200, (11, 14), seed=8)
    learned_at, att_short, att_long = None, 0.0, 0.0
    for i, attentive in enumerate(train_reversal("general", BUDGET, max_len=14, every=EVERY)):
        att_short, att_long = exact_match(attentive, short), exact_match(attentive, long)
        print(f"attention after {(i + 1) * EVERY} updates: {att_short:.2f}/{att_long:.2f}")
        if att_short >= 0.95 and att_long >= 0.9:
            learned_at = (i + 1) * EVERY
            break
    # lr 0.005 learns it on every seed and kernel tried (1.00 / 1.00 on seeds 0-5); at 0.01
    # some runs stalled at 0.5-0.8 on long inputs, whichever way the float sums rounded
    assert learned_at is not None, f"not learned in {BUDGET} updates"
    *_, fixed = train_reversal("none", BUDGET, max_len=14, every=BUDGET)
    fix_short, fix_long = exact_match(fixed, short), exact_match(fixed, long)
    print(f"fixed context after {BUDGET} updates: {fix_short:.2f}/{fix_long:.2f}")
    assert fix_long < att_long - 0.3  # the bottleneck: long inputs don't fit one vector
