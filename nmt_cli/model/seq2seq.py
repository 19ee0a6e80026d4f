"""The encoder-decoder model and its one builder."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from nmt_cli.config import ModelConfig
from nmt_cli.errors import ConfigError
from nmt_cli.model.attention import build_attention
from nmt_cli.model.decoder import Decoder, DecoderState
from nmt_cli.model.encoder import Encoder, RNNState
from nmt_cli.names import BRIDGES
from nmt_cli.special_ids import PAD_ID, UNK_ID


class Bridge(nn.Module):
    """Encoder final state -> decoder initial state (copy, tanh-linear, or zeros)."""

    def __init__(self, kind: str, enc_size: int, dec_size: int, dec_layers: int, n_states: int):
        super().__init__()
        if kind not in BRIDGES:
            raise ValueError(f"unknown bridge {kind!r}; valid: {', '.join(BRIDGES)}")
        self.kind, self.dec_size, self.dec_layers = kind, dec_size, dec_layers
        self.layers = nn.ModuleList(
            nn.Linear(enc_size, dec_size) for _ in range(n_states if kind == "linear" else 0)
        )

    def forward(self, final: RNNState) -> RNNState:
        """final: each enc_layers x B x He -> each dec_layers x B x Hd."""
        if self.kind == "zero":
            batch = final[0].size(1)
            zeros = final[0].new_zeros(self.dec_layers, batch, self.dec_size)
            return tuple(zeros for _ in final)
        states = tuple(self._match_layers(s) for s in final)
        if self.kind == "linear":
            states = tuple(
                torch.tanh(layer(s)) for layer, s in zip(self.layers, states, strict=True)
            )
        return states

    def _match_layers(self, state: Tensor) -> Tensor:
        """Use the top decoder-many encoder layers; repeat the top one if there are fewer."""
        if state.size(0) >= self.dec_layers:
            return state[-self.dec_layers :]
        return torch.cat([state, state[-1:].expand(self.dec_layers - state.size(0), -1, -1)])


def reverse_padded(src: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the real tokens of each row, leaving padding in place.

    Args:
        src: B x S token ids; lengths: B real lengths (any device).
    """
    positions = torch.arange(src.size(1), device=src.device).unsqueeze(0)  # 1 x S
    lengths = lengths.to(src.device).unsqueeze(1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return src.gather(1, index)


class Seq2Seq(nn.Module):
    """Encoder -> bridge -> attentional decoder -> generator (linear + log-softmax)."""

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        bridge: Bridge,
        generator: nn.Linear,
        reverse_source: bool = False,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.bridge, self.generator = (
            encoder,
            decoder,
            bridge,
            generator,
        )
        self.reverse_source = reverse_source
        self.word_dropout = word_dropout

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        """Take a state dict's tensors as this model's own, without a copy (so a model built
        under `skip_init` is never filled), keeping the generator tied to the target embedding
        if it was."""
        tied = self.generator.weight is self.decoder.embedding.weight
        self.load_state_dict(weights, assign=True)
        if tied:
            self.generator.weight = self.decoder.embedding.weight

    def encode(self, src: Tensor, src_mask: Tensor, src_lengths: Tensor) -> DecoderState:
        """Encode a batch and return the decoder's initial state.

        Args:
            src: B x S source ids, padded; src_mask: B x S bool (True = real token);
            src_lengths: B lengths as int64 on the CPU.
        """
        if self.reverse_source:
            src = reverse_padded(src, src_lengths)
        src = self._drop_words(src)
        memory, final = self.encoder(src, src_lengths)  # B x S x He
        keys = self.decoder.attention.keys(memory, summary=final[0][-1])
        return self.decoder.init_state(self.bridge(final), memory, keys, src_mask)

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """The search interface: prev_tokens N -> log-probs N x V, new state, attention N x S."""
        out, state, weights = self.decoder.step(self.decoder.embedding(prev_tokens), state)
        return torch.log_softmax(self.generator(out).float(), dim=-1), state, weights

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        sampling_prob: float = 0.0,
    ) -> Tensor:
        """Teacher forcing: B x S source, B x T decoder input -> B x T x O attentional vectors.

        The generator is applied by the caller, once, to the real target positions only.
        With `sampling_prob` > 0 (scheduled sampling), each step after the first feeds the
        model's own previous prediction with that probability instead of the reference token.
        """
        state = self.encode(src, src_mask, src_lengths)
        tgt_in = self._drop_words(tgt_in)
        outputs, _ = self.decoder(tgt_in, state, self.generator, sampling_prob)
        return outputs

    def _drop_words(self, tokens: Tensor) -> Tensor:
        """Word dropout: replace real tokens by <unk> with probability p while training."""
        if not self.training or self.word_dropout == 0.0:
            return tokens
        drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (
            tokens != PAD_ID
        )
        return tokens.masked_fill(drop, UNK_ID)


def build_model(
    config: ModelConfig,
    src_vocab_size: int,
    tgt_vocab_size: int,
    joint_vocab: bool,
    reverse_source: bool = False,
) -> Seq2Seq:
    """Assemble embeddings -> encoder -> bridge -> decoder -> generator and tie weights.

    The weights are left as built: training calls `init_weights`, loading overwrites them.
    """
    if config.share_embeddings and not joint_vocab:
        raise ConfigError(
            "model.share_embeddings needs a joint vocabulary (preprocess without --separate-vocab)"
        )
    src_embedding = nn.Embedding(src_vocab_size, config.emb_size, padding_idx=PAD_ID)
    tgt_embedding = (
        src_embedding
        if config.share_embeddings
        else nn.Embedding(tgt_vocab_size, config.emb_size, padding_idx=PAD_ID)
    )
    encoder = Encoder(
        src_embedding,
        config.cell,
        config.enc_hidden,
        config.enc_layers,
        config.bidirectional,
        config.dropout,
        config.emb_dropout,
    )
    # A tied output layer reads the attentional vector, so that vector takes the embedding size.
    output_size = config.emb_size if config.tie_output else config.dec_hidden
    attention = build_attention(
        config.attention, config.dec_hidden, config.enc_hidden, config.attn_hidden
    )
    decoder = Decoder(
        tgt_embedding,
        config.cell,
        config.dec_hidden,
        config.dec_layers,
        attention,
        attend_before=config.attention == "bahdanau",
        memory_size=config.enc_hidden,
        output_size=output_size,
        input_feeding=config.input_feeding,
        dropout=config.dropout,
        emb_dropout=config.emb_dropout,
    )
    n_states = 2 if config.cell == "lstm" else 1
    bridge = Bridge(
        config.bridge, config.enc_hidden, config.dec_hidden, config.dec_layers, n_states
    )
    generator = nn.Linear(output_size, tgt_vocab_size)
    if config.tie_output:
        generator.weight = tgt_embedding.weight
    return Seq2Seq(encoder, decoder, bridge, generator, reverse_source, config.word_dropout)


class skip_init(TorchFunctionMode):  # a context manager, named like torch.no_grad
    """Build modules without their random initialization, for weights a checkpoint replaces.

    nn.init's fills (and the tensor methods under them) return their tensor untouched, so the
    weights hold whatever memory they got. The fills are most of a model build's time (the
    meta device is no faster: its first fill imports torch's reference ops).
    """

    FILLS = frozenset({"uniform_", "normal_", "kaiming_uniform_", "xavier_uniform_"})

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in self.FILLS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def init_weights(model: nn.Module, scale: float) -> None:
    """Uniform(-scale, scale) for every parameter; padding embeddings stay zero."""
    for p in model.parameters():
        nn.init.uniform_(p, -scale, scale)
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
