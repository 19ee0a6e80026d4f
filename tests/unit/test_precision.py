"""Inference precision: bf16 and int8 convert the right layers, keep ties and stay close to fp32;
oneDNN packing swaps the matmul layers and changes nothing but rounding."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from torch import nn

from nmt_cli import precision
from nmt_cli.config import Config, DecodeConfig, ModelConfig
from nmt_cli.data import make_source_batch
from nmt_cli.ensemble import Ensemble
from nmt_cli.errors import ConfigError
from nmt_cli.linereader import read_prompted
from nmt_cli.model import Seq2Seq, build_model, init_weights, onednn
from nmt_cli.model.onednn import PackedLinear, PackedLSTMCell, available, pack_for_inference
from nmt_cli.precision import apply_precision, check_precision, resolve_precision
from nmt_cli.search import beam_search
from nmt_cli.tokenizer import BOS_ID, Tokenizer, train_sentencepiece
from nmt_cli.translate import Translator

CPU = torch.device("cpu")
SMALL = ModelConfig(
    emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0, emb_dropout=0.0
)
CASES = [
    {},
    {"share_embeddings": True, "tie_output": True},
    {"attention": "bahdanau", "enc_layers": 2, "dec_layers": 2},
    {"attention": "none"},
    {"cell": "gru"},
    {"cell": "rnn"},
]
QUANTIZABLE = (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell)


def small_model(seed: int = 0, **changes: object) -> Seq2Seq:
    torch.manual_seed(seed)
    config = dataclasses.replace(SMALL, **changes)  # type: ignore[arg-type]
    model = build_model(config, 30, 30, joint_vocab=True)
    init_weights(model, 0.3)
    return model.eval()


def step_probs(model: nn.Module, steps: int = 3) -> torch.Tensor:
    """Next-token probabilities of 2 sentences over a fixed prefix: 2 x steps x V."""
    src, mask, lengths = make_source_batch([torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10])])
    state = model.encode(src, mask, lengths)
    prev, probs = torch.full((2,), BOS_ID), []
    for t in range(steps):
        log_probs, state, _ = model.decode_step(prev, state)
        assert log_probs.dtype == torch.float32  # the search always adds up fp32
        probs.append(log_probs.exp())
        prev = torch.tensor([11 + t, 12 + t])
    return torch.stack(probs, 1)


def case_id(changes: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in changes.items()) or "default"


def test_unknown_precision_and_int8_off_the_cpu_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="valid: auto, fp32, bf16, int8"):
        check_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="CPU only"):
        check_precision("int8", torch.device("cuda"))
    check_precision("bf16", torch.device("cuda"))


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_fp32_elsewhere(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda unknown=True: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    for name in ("fp32", "bf16", "int8"):
        assert resolve_precision(name, CPU) == name
    assert translator(0, "auto").precision == ("bf16" if native else "fp32")


def test_auto_keeps_fp32_where_torch_cannot_tell_the_cpus_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto", CPU) == "bf16"


@pytest.mark.parametrize("changes", CASES, ids=case_id)
def test_bf16_casts_every_weight_keeps_ties_and_stays_close(
    changes: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onednn, "ENABLED", False)  # packing would replace the tied generator
    reference = step_probs(small_model(**changes))
    model = apply_precision(small_model(**changes), "bf16", CPU)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # attention without per-step weights runs in fp32 (faster than bf16 bmm on the CPU)
    additive = changes.get("attention") == "bahdanau"
    assert model.decoder.attention.step_dtype == (None if additive else torch.float32)
    if changes.get("tie_output"):
        assert model.generator.weight is model.decoder.embedding.weight
        assert model.encoder.embedding is model.decoder.embedding
    torch.testing.assert_close(step_probs(model), reference, atol=0.02, rtol=0)


@pytest.mark.parametrize("changes", CASES, ids=case_id)
def test_int8_quantizes_linear_and_recurrent_layers_and_stays_close(changes: dict) -> None:
    reference = step_probs(small_model(**changes))
    float_model = small_model(**changes)
    embedding = float_model.decoder.embedding.weight.detach().clone()
    model = apply_precision(float_model, "int8", CPU)
    left_float = [
        name
        for name, m in model.named_modules()
        if type(m) in QUANTIZABLE  # subclasses are the quantized replacements
    ]
    assert left_float == []
    assert isinstance(model.encoder.embedding, nn.Embedding)  # embeddings stay float
    torch.testing.assert_close(model.decoder.embedding.weight, embedding, rtol=0, atol=0)
    if changes.get("tie_output"):  # the generator has its own int8 copy of the embedding
        assert type(model.generator).__module__.startswith("torch.ao.nn.quantized")
    torch.testing.assert_close(step_probs(model), reference, atol=0.02, rtol=0)


ONEDNN = pytest.mark.skipif(
    not available(CPU, torch.float32), reason="this torch build has no oneDNN linear ops"
)


def beam_tokens(model: nn.Module) -> list[list[int]]:
    """Beam-3 outputs of 3 sentences, best first."""
    sources = [torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10]), torch.tensor([20, 3, 4])]
    src, mask, lengths = make_source_batch(sources)
    hyps = beam_search(
        model.decode_step, model.encode(src, mask, lengths), 3, 3, BOS_ID, 2, torch.full((3,), 8)
    )
    return [h[0].tokens for h in hyps]


@ONEDNN
@pytest.mark.parametrize("changes", CASES, ids=case_id)
def test_onednn_packing_swaps_the_matmul_layers_and_changes_only_rounding(changes: dict) -> None:
    reference = small_model(**changes)
    packed = pack_for_inference(small_model(**changes))
    kinds = {type(m) for m in packed.modules()}
    assert nn.Linear not in kinds and nn.LSTMCell not in kinds
    assert PackedLinear in kinds and (PackedLSTMCell in kinds) == (changes.get("cell") is None)
    torch.testing.assert_close(step_probs(packed), step_probs(reference), atol=1e-6, rtol=1e-5)
    assert beam_tokens(packed) == beam_tokens(reference)


@ONEDNN
def test_onednn_packing_follows_the_switch_and_skips_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn, "ENABLED", False)
    assert {type(m) for m in apply_precision(small_model(), "fp32", CPU).modules()} >= {nn.Linear}
    monkeypatch.setattr(onednn, "ENABLED", True)
    kinds = {type(m) for m in apply_precision(small_model(), "int8", CPU).modules()}
    assert PackedLinear not in kinds and PackedLSTMCell not in kinds


@ONEDNN
@pytest.mark.parametrize("shape", [(5, 12), (3, 7, 12), (16, 12)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_packed_inference_pads_bf16_rows_to_recurring_kernel_shapes(
    shape: tuple[int, ...], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bf16 rows reach oneDNN as a multiple of 16 (padded with zeros), fp32 ones as they are;
    # either way the layer's results for the real rows are the unpadded ones.
    torch.manual_seed(0)
    linear = nn.Linear(12, 8).to(dtype)
    x = torch.randn(shape).to(dtype)
    seen: list[int] = []
    kernel = onednn.packed_linear
    monkeypatch.setattr(
        onednn, "packed_linear", lambda a, w, b: seen.append(a.size(0)) or kernel(a, w, b)
    )
    got = PackedLinear(linear)(x)
    rows = x.numel() // 12
    assert seen == [-(-rows // 16) * 16 if dtype == torch.bfloat16 else x.size(0)]
    assert got.shape == (*shape[:-1], 8)
    want = kernel(x.reshape(rows, 12), onednn.pack(linear.weight), linear.bias).view(got.shape)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


ENSEMBLE_TEXTS = [f"the cat number {i} sat on mat {i * 7 % 50}." for i in range(60)]
ENSEMBLE_LINES = ["the cat sat", "", "the cat number 7 sat on mat 3.", "mat 12 sat", "number 4."]


def translator(members: int, precision: str) -> Translator:
    """A Translator of the seed-0 model alone (members=0), or of an Ensemble of that many
    copies of it."""
    tok = Tokenizer.from_bytes(train_sentencepiece(ENSEMBLE_TEXTS, 60))
    config = Config(model=SMALL, decode=DecodeConfig(beam=3, max_len_b=4))

    def seed0() -> Seq2Seq:
        torch.manual_seed(0)
        model = build_model(config.model, tok.vocab_size, tok.vocab_size, True)
        init_weights(model, 0.3)
        return model

    model = Ensemble([seed0() for _ in range(members)]) if members else seed0()
    return Translator(model, config, tok, tok, CPU, precision)


def n_best(translator: Translator) -> list[list[tuple[str, float]]]:
    """The 3 best (text, score) of every line of ENSEMBLE_LINES."""
    return [
        [(t.text, t.score) for t in hyps]
        for hyps in translator.translate_lines(ENSEMBLE_LINES, n_best=3)
    ]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_an_ensemble_of_one_model_translates_exactly_like_the_model(precision: str) -> None:
    alone = n_best(translator(0, precision))
    assert n_best(translator(1, precision)) == alone  # same texts, same scores to the bit
    assert alone[1] == [("", 0.0)] and all(len(hyps) == 3 for i, hyps in enumerate(alone) if i != 1)
    for hyps in translator(1, precision).translate_lines(ENSEMBLE_LINES, n_best=2):
        assert hyps[0].attention is None or hyps[0].attention.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_an_ensemble_of_a_model_with_itself_translates_like_the_model(precision: str) -> None:
    """The mean of two equal distributions is that distribution: the same n-best lists, the
    scores equal up to the rounding of averaging in log space."""
    alone, twice = n_best(translator(0, precision)), n_best(translator(2, precision))
    assert [[text for text, _ in hyps] for hyps in twice] == [
        [text for text, _ in hyps] for hyps in alone
    ]
    scores = torch.tensor([[score for _, score in hyps] for hyps in alone if len(hyps) == 3])
    twice_scores = torch.tensor([[score for _, score in hyps] for hyps in twice if len(hyps) == 3])
    torch.testing.assert_close(twice_scores, scores, rtol=0, atol=1e-5)


def test_read_prompted_prompts_before_every_line_and_ends_on_eof(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.BytesIO(b"Ein Hund.\n\nkaputt \xff\nletzte Zeile")
    prompt = io.StringIO()
    batches = read_prompted(stream, prompt)
    assert next(batches) == ["Ein Hund."]
    assert prompt.getvalue() == "> "  # the next prompt only once the answer is out
    assert list(batches) == [[""], ["kaputt \ufffd"], ["letzte Zeile"]]
    assert prompt.getvalue() == "> " * 5 + "\n"
    assert "line 3: invalid UTF-8" in caplog.text
