"""Scheduled sampling: p = 0 is plain teacher forcing, p = 1 feeds the model's own argmax."""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext

import pytest
import torch

from nmt_cli.config import Config, ModelConfig, TrainConfig, load_config
from nmt_cli.corpus import EncodedSplit
from nmt_cli.data import collate
from nmt_cli.errors import ConfigError
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.tokenizer import BOS_ID, PAD_ID
from nmt_cli.training.update import batch_loss, scheduled_sampling_prob
from nmt_cli.training.validator import Validator

SMALL = ModelConfig(emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12)


def small_model(**changes: object) -> Seq2Seq:
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(SMALL, **changes), 20, 20, joint_vocab=True)  # type: ignore[arg-type]
    init_weights(model, 0.5)  # large weights: predictions vary from step to step
    return model


def small_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 11, PAD_ID]])
    mask = src != PAD_ID
    lengths = torch.tensor([4, 3])
    tgt_in = torch.tensor([[BOS_ID, 12, 13, 14, 15, 16], [BOS_ID, 17, 18, 19, PAD_ID, PAD_ID]])
    return src, mask, lengths, tgt_in


def record_decoder_inputs(model: Seq2Seq) -> list[torch.Tensor]:
    """The token ids the decoder embeds, one tensor per call (a step or the whole prefix)."""
    calls: list[torch.Tensor] = []
    model.decoder.embedding.register_forward_hook(
        lambda module, args, output: calls.append(args[0].clone())
    )
    return calls


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zero_probability_is_teacher_forcing_bit_for_bit(cell: str) -> None:
    model = small_model(cell=cell, dropout=0.3, emb_dropout=0.2).train()
    batch = small_batch()
    torch.manual_seed(3)
    plain = model(*batch)
    torch.manual_seed(3)
    zero = model(*batch, sampling_prob=0.0)
    assert torch.equal(plain, zero)  # same dropout draws: no random number used on this path


@pytest.mark.parametrize("attention", ["general", "none", "bahdanau"])
def test_probability_one_feeds_the_previous_argmax(attention: str) -> None:
    model = small_model(attention=attention, dropout=0.0, emb_dropout=0.0).eval()
    src, mask, lengths, tgt_in = small_batch()
    calls = record_decoder_inputs(model)
    with torch.no_grad():
        outputs = model(src, mask, lengths, tgt_in, sampling_prob=1.0)  # B x T x O
    predicted = model.generator(outputs).argmax(-1)  # B x T
    fed = torch.stack(calls, dim=1)  # B x T: one embedding call per step
    assert fed.shape == tgt_in.shape
    assert torch.equal(fed[:, 0], tgt_in[:, 0])  # BOS
    real = tgt_in[:, 1:] != PAD_ID
    assert torch.equal(fed[:, 1:][real], predicted[:, :-1][real])
    assert torch.all(fed[:, 1:][~real] == PAD_ID)  # padding stays padding
    assert not torch.equal(fed, tgt_in)  # the test means something: predictions differ


def test_probability_one_equals_greedy_decoding() -> None:
    model = small_model(dropout=0.0, emb_dropout=0.0).eval()
    src, mask, lengths, tgt_in = small_batch()
    tgt_in = tgt_in[:1]  # no padding: every step feeds the prediction
    with torch.no_grad():
        sampled = model.generator(model(src[:1], mask[:1], lengths[:1], tgt_in, 1.0))
        state = model.encode(src[:1], mask[:1], lengths[:1])
        prev, greedy = tgt_in[:, 0], []
        for _ in range(tgt_in.size(1)):
            log_probs, state, _ = model.decode_step(prev, state)
            greedy.append(log_probs)
            prev = log_probs.argmax(-1)
    torch.testing.assert_close(
        torch.log_softmax(sampled, -1), torch.stack(greedy, 1), atol=1e-5, rtol=0
    )


def test_half_probability_mixes_reference_and_prediction() -> None:
    model = small_model(dropout=0.0, emb_dropout=0.0).eval()
    src, mask, lengths, tgt_in = small_batch()
    src, mask, lengths = src.repeat(8, 1), mask.repeat(8, 1), lengths.repeat(8)
    tgt_in = tgt_in.repeat(8, 1)
    calls = record_decoder_inputs(model)
    torch.manual_seed(0)
    with torch.no_grad():
        outputs = model(src, mask, lengths, tgt_in, sampling_prob=0.5)
    predicted = model.generator(outputs).argmax(-1)
    fed, gold, own = torch.stack(calls, 1)[:, 1:], tgt_in[:, 1:], predicted[:, :-1]
    assert torch.all((fed == gold) | (fed == own))
    differ = gold != own
    assert 0 < (fed == own)[differ].float().mean() < 1  # some of each


def test_gradients_flow_through_sampled_path() -> None:
    model = small_model(dropout=0.0, emb_dropout=0.0).train()
    outputs = model(*small_batch(), sampling_prob=0.5)
    outputs.sum().backward()
    assert model.decoder.embedding.weight.grad is not None
    assert model.encoder.embedding.weight.grad is not None


def test_training_probability_rises_to_the_configured_rate_at_max_steps() -> None:
    config = TrainConfig(scheduled_sampling=0.4, max_steps=200)
    rates = [scheduled_sampling_prob(config, step) for step in (0, 50, 200, 300)]
    assert rates == pytest.approx([0.0, 0.1, 0.4, 0.4])


def test_validation_stays_teacher_forced_while_training_samples() -> None:
    config = dataclasses.replace(
        Config(), train=TrainConfig(scheduled_sampling=1.0, max_steps=1, label_smoothing=0.0)
    )
    model = small_model(dropout=0.0, emb_dropout=0.0)
    pairs = [(torch.tensor([5, 6, 7]), torch.tensor([12, 13, 14, 15]))] * 2
    batch = collate(pairs, [0, 1])
    split = EncodedSplit(
        torch.tensor([5, 6, 7] * 2, dtype=torch.int32),
        torch.tensor([0, 3, 6]),
        torch.tensor([12, 13, 14, 15] * 2, dtype=torch.int32),
        torch.tensor([0, 4, 8]),
    )
    validator = Validator(split, ["-", "-"], None, config, torch.device("cpu"), nullcontext())  # type: ignore[arg-type]
    rate = scheduled_sampling_prob(config.train, step=1)
    with torch.no_grad():
        forced = batch_loss(model.eval(), batch, 0.0, 0.0, nullcontext())
        sampled = batch_loss(model.train(), batch, 0.0, rate, nullcontext())
        ppl = validator.perplexity(model.eval())
    assert rate == 1.0 and not torch.equal(sampled, forced)  # sampling changes the loss
    assert ppl == pytest.approx(math.exp(forced.item() / batch.n_tokens), rel=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", r"train\.scheduled_sampling must be in \[0, 1\] \(got 1\.5\)"),
        ("-0.1", r"train\.scheduled_sampling must not be negative"),
        ("yes", r"train\.scheduled_sampling: expected float"),
    ],
)
def test_config_rejects_out_of_range(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"train.scheduled_sampling={value}"])


def test_config_accepts_range_and_suggests_the_key() -> None:
    assert load_config(None, ["train.scheduled_sampling=1"]).train.scheduled_sampling == 1.0
    assert load_config(None, ["train.scheduled_sampling=0.25"]).train.scheduled_sampling == 0.25
    with pytest.raises(ConfigError, match=r"did you mean 'train\.scheduled_sampling'"):
        load_config(None, ["train.scheduled_samplin=0.2"])
