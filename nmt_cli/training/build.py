"""The model and its optimizer for a run, on the device: the one place that allocates them."""

from __future__ import annotations

import torch

from nmt_cli.config import Config
from nmt_cli.corpus import Vocab
from nmt_cli.errors import NmtError, out_of_memory
from nmt_cli.model import Seq2Seq, build_model, init_weights


def build_model_and_optimizer(
    config: Config, vocab: Vocab, device: torch.device
) -> tuple[Seq2Seq, torch.optim.Optimizer]:
    """The model, initialized (from the global RNG), on the device, and its optimizer.

    Raises:
        NmtError: out of memory (sizes such as model.emb_size=1000000000), naming the sizes.
    """
    try:
        return _build(config, vocab, device)
    except RuntimeError as e:  # torch's out-of-memory error is a RuntimeError
        if (asked := out_of_memory(e)) is None:
            raise
        m = config.model
        raise NmtError(
            f"out of memory building the model ({asked} asked for): model.emb_size="
            f"{m.emb_size}, enc_hidden={m.enc_hidden}, dec_hidden={m.dec_hidden}, "
            f"attn_hidden={m.attn_hidden}, vocabularies {vocab.src.vocab_size}/"
            f"{vocab.tgt.vocab_size}; lower the model sizes"
        ) from None


def _build(
    config: Config, vocab: Vocab, device: torch.device
) -> tuple[Seq2Seq, torch.optim.Optimizer]:
    model = build_model(
        config.model,
        vocab.src.vocab_size,
        vocab.tgt.vocab_size,
        vocab.joint,
        config.data.reverse_source,
    ).to(device)
    init_weights(model, config.train.init_scale)
    t = config.train
    optimizer = torch.optim.Adam(
        model.parameters(), lr=t.lr, betas=t.adam_betas, weight_decay=t.weight_decay, fused=True
    )
    return model, optimizer
