"""Model invariants: padding changes nothing, attention is a proper distribution."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nmt_cli.config import ModelConfig
from nmt_cli.data import make_source_batch
from nmt_cli.model import Seq2Seq, build_model, init_weights, onednn, skip_init, step_weight
from nmt_cli.model.attention import masked_softmax
from nmt_cli.model.seq2seq import reverse_padded
from nmt_cli.search import Hypothesis, beam_search
from nmt_cli.tokenizer import BOS_ID, EOS_ID

SMALL = ModelConfig(
    emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0, emb_dropout=0.0
)


def small_model(**changes: object) -> torch.nn.Module:
    torch.manual_seed(0)
    config = dataclasses.replace(SMALL, **changes)  # type: ignore[arg-type]
    model = build_model(config, 30, 31, joint_vocab=False)
    init_weights(model, 0.3)
    return model.eval()


def decode_teacher_forced(model, sources, targets):  # type: ignore[no-untyped-def]
    """Run encode + decode_step over given target prefixes; returns per-sentence outputs."""
    src, mask, lengths = make_source_batch(sources)
    state = model.encode(src, mask, lengths)
    steps = max(len(t) for t in targets)
    tgt = torch.full((len(targets), steps), BOS_ID)
    for i, t in enumerate(targets):
        tgt[i, : len(t)] = t
    log_probs, attention = [], []
    prev = torch.full((len(targets),), BOS_ID)
    for t in range(steps):
        lp, state, weights = model.decode_step(prev, state)
        log_probs.append(lp)
        attention.append(weights)
        prev = tgt[:, t]
    return state, torch.stack(log_probs, 1), attention


CASES = [{"attention": a} for a in ("dot", "general", "concat", "bahdanau", "none")] + [
    {"cell": "gru"},
    {"cell": "rnn"},
    {"enc_layers": 2, "dec_layers": 2},
    {"bidirectional": False, "bridge": "linear"},
    {"input_feeding": False},
    {"tie_output": True},
]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_changes_nothing(changes: dict, reverse: bool) -> None:
    model = small_model(**changes)
    model.reverse_source = reverse
    torch.manual_seed(1)
    short = torch.randint(4, 30, (3,))
    others = [torch.randint(4, 30, (n,)) for n in (9, 6)]
    target = torch.randint(4, 31, (5,))
    with torch.no_grad():
        alone_state, alone_lp, alone_attn = decode_teacher_forced(model, [short], [target])
        batch_state, batch_lp, batch_attn = decode_teacher_forced(
            model, [others[0], short, others[1]], [target, target, target[:3]]
        )
    torch.testing.assert_close(batch_lp[1], alone_lp[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch_state.memory[1, :3], alone_state.memory[0], atol=1e-5, rtol=0)
    assert batch_state.memory[1, 3:].abs().max() == 0  # padded positions hold no state
    if changes.get("attention") != "none":
        for a_alone, a_batch in zip(alone_attn, batch_attn, strict=True):
            torch.testing.assert_close(a_batch[1, :3], a_alone[0], atol=1e-5, rtol=0)
            assert torch.all(a_batch[1, 3:] == 0)  # exactly zero weight on padding
            torch.testing.assert_close(a_batch.sum(-1), torch.ones(3), atol=1e-6, rtol=0)


def test_masked_softmax_ignores_padding_scores() -> None:
    scores = torch.tensor([[1.0, 2.0, 1e9], [0.5, -3.0, 7.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    weights = masked_softmax(scores, mask)
    assert weights[0, 2] == 0
    torch.testing.assert_close(weights[0, :2], torch.softmax(torch.tensor([1.0, 2.0]), 0))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))


def test_reverse_padded_keeps_padding_in_place() -> None:
    src = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    out = reverse_padded(src, torch.tensor([3, 2]))
    assert out.tolist() == [[7, 6, 5, 0], [9, 8, 0, 0]]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_batched_beam_search_equals_sentence_by_sentence(changes: dict) -> None:
    """The k beams of a sentence share its encoder states, and finished sentences leave the
    batch at different steps: a row that read another sentence's states would change its
    output."""
    model = small_model(**changes)
    with torch.no_grad():  # eos rarely ranks first, so most sentences run to their max length
        model.generator.bias[EOS_ID] -= 3.0
    torch.manual_seed(2)
    sources = [torch.randint(4, 30, (n,)) for n in (5, 2, 8, 4)]
    max_lengths = [6, 3, 9, 5]

    def search(batch: list[int]) -> list[list[Hypothesis]]:
        src, mask, lengths = make_source_batch([sources[i] for i in batch])
        state = model.encode(src, mask, lengths)
        limits = torch.tensor([max_lengths[i] for i in batch])
        return beam_search(model.decode_step, state, len(batch), 3, BOS_ID, EOS_ID, limits, 1.0, 3)

    with torch.no_grad():
        batched = search([0, 1, 2, 3])
        for i, hyps in enumerate(batched):
            alone = search([i])[0]
            assert [h.tokens for h in hyps] == [h.tokens for h in alone]
            for h_batched, h_alone in zip(hyps, alone, strict=True):
                assert h_batched.score == pytest.approx(h_alone.score, abs=1e-5)
                if h_alone.attention is not None:
                    assert h_batched.attention is not None
                    s = len(sources[i])
                    torch.testing.assert_close(
                        h_batched.attention[:, :s], h_alone.attention, atol=1e-5, rtol=0
                    )
    assert len({len(hyps[0].tokens) for hyps in batched}) > 1  # they finish at different steps


def test_log_probs_are_normalized_and_shapes_hold() -> None:
    model = small_model()
    with torch.no_grad():
        state, log_probs, attention = decode_teacher_forced(
            model,
            [torch.tensor([5, 6, 7]), torch.tensor([8])],
            [torch.tensor([4, 5]), torch.tensor([6, 7])],
        )
    assert log_probs.shape == (2, 2, 31)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 2))
    assert attention[0].shape == (2, 3)
    assert state.hidden[0].shape == (1, 2, 24)


def test_tied_and_shared_embeddings_share_storage() -> None:
    config = dataclasses.replace(SMALL, share_embeddings=True, tie_output=True)
    model = build_model(config, 30, 30, joint_vocab=True)
    assert model.encoder.embedding is model.decoder.embedding
    assert model.generator.weight is model.decoder.embedding.weight


def test_teacher_forcing_equals_stepwise_decoding() -> None:
    model = small_model()
    src, mask, lengths = make_source_batch([torch.tensor([5, 6, 7]), torch.tensor([8, 9])])
    tgt_in = torch.tensor([[BOS_ID, 4, 5], [BOS_ID, 6, 0]])
    with torch.no_grad():
        outputs = model(src, mask, lengths, tgt_in)
        forced = torch.log_softmax(model.generator(outputs), -1)
        # stepwise feeds BOS, then targets[t]: targets = tgt_in shifted left
        targets = [torch.tensor([4, 5, 9]), torch.tensor([6, 9])]
        _, stepwise, _ = decode_teacher_forced(model, [src[0], src[1, :2]], targets)
    torch.testing.assert_close(forced[0], stepwise[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(forced[1, :2], stepwise[1, :2], atol=1e-5, rtol=0)


def teacher_forced_grads(model: Seq2Seq) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Outputs and parameter gradients of one teacher-forced pass over a fixed batch."""
    src, mask, lengths = make_source_batch([torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10])])
    tgt_in = torch.tensor([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 0]])
    upstream = torch.randn(
        2, 4, model.decoder.output_size, generator=torch.Generator().manual_seed(3)
    )
    model.zero_grad(set_to_none=True)
    outputs = model(src, mask, lengths, tgt_in)
    (outputs * upstream).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return outputs.detach(), grads


@pytest.mark.parametrize("onednn_on", [True, False], ids=["onednn", "default-kernels"])
@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_one_weight_gradient_per_sequence_equals_one_per_step(
    changes: dict, onednn_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Teacher forcing with gradients uses per-pass weights (with oneDNN-packed weights on the
    # CPU unless NMT_ONEDNN=0, as on CUDA); the modules (nn.LSTMCell, nn.Linear) compute the
    # same outputs and gradients one step at a time with PyTorch's default kernels.
    monkeypatch.setattr(onednn, "ENABLED", onednn_on)
    model = small_model(**changes).train()
    deferred, deferred_grads = teacher_forced_grads(model)
    model.decoder.per_pass_weights = False
    per_step, per_step_grads = teacher_forced_grads(model)
    torch.testing.assert_close(deferred, per_step, atol=1e-5, rtol=1e-5)
    assert deferred_grads.keys() == per_step_grads.keys()
    for name, grad in per_step_grads.items():
        torch.testing.assert_close(deferred_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_packed_step_weights_under_bf16_autocast_match_the_default_kernels(
    changes: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # StepWeight packs bf16 copies under autocast; without oneDNN, F.linear autocasts instead.
    results = []
    for onednn_on in (True, False):
        monkeypatch.setattr(onednn, "ENABLED", onednn_on)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results.append(teacher_forced_grads(small_model(**changes).train()))
    (packed, packed_grads), (plain, plain_grads) = results
    assert packed_grads.keys() == plain_grads.keys()
    for name, got, want in [("outputs", packed, plain)] + [
        (n, packed_grads[n], g) for n, g in plain_grads.items()
    ]:
        assert got.dtype == want.dtype, name
        assert (got.float() - want.float()).norm() <= 1e-2 * want.float().norm(), name


def test_skip_init_leaves_the_fills_out_and_nothing_else() -> None:
    zeros = torch.zeros(3, 4)
    with skip_init():
        torch.nn.init.uniform_(zeros, -1, 1)
        torch.nn.init.kaiming_uniform_(zeros)
        zeros.normal_()
        ones = torch.ones(2) + 1  # other ops run as ever
    assert zeros.abs().sum() == 0 and ones.tolist() == [2.0, 2.0]
    torch.nn.init.uniform_(zeros, -1, 1)
    assert zeros.abs().sum() > 0


@pytest.mark.parametrize("changes", [{}, {"share_embeddings": True, "tie_output": True}])
def test_a_model_built_without_init_takes_the_checkpoint_weights_and_ties(changes: dict) -> None:
    config = dataclasses.replace(SMALL, **changes)  # type: ignore[arg-type]
    torch.manual_seed(0)
    trained = build_model(config, 30, 30, joint_vocab=True)
    init_weights(trained, 0.3)
    with skip_init():
        loaded = build_model(config, 30, 30, joint_vocab=True)
    loaded.load_weights({k: v.clone() for k, v in trained.state_dict().items()})
    if changes:
        assert loaded.generator.weight is loaded.decoder.embedding.weight
        assert loaded.encoder.embedding is loaded.decoder.embedding
    sources = [torch.tensor([5, 6, 7]), torch.tensor([8, 9])]
    targets = [torch.tensor([4, 5, 6]), torch.tensor([7, 8])]
    _, want, _ = decode_teacher_forced(trained.eval(), sources, targets)
    _, got, _ = decode_teacher_forced(loaded.eval(), sources, targets)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_deferred_weight_gradient_pads_bf16_rows_to_cached_kernel_shapes(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 steps of 7 rows: bf16 on the CPU multiplies 64 rows (21 real, 43 zero), fp32 its 21;
    # either way the gradient is the sum of the steps' grad^T x.
    torch.manual_seed(0)
    pairs = [(torch.randn(7, 5).to(dtype), torch.randn(7, 4).to(dtype)) for _ in range(3)]
    inner: list[int] = []
    matmul = step_weight.matmul
    monkeypatch.setattr(step_weight, "matmul", lambda a, b: inner.append(a.size(1)) or matmul(a, b))
    got = step_weight._weight_gradient(pairs)
    want = sum(g.float().t() @ x.float() for x, g in pairs)
    assert inner == [onednn.ROW_QUANTUM if dtype == torch.bfloat16 else 21]
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
