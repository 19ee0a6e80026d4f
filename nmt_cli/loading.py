"""Checkpoint to model: rebuild what a checkpoint describes, load its weights, ensemble several.

The only place translation turns checkpoint files into models (`nmt info` rebuilds shapes with
`build_from_checkpoint` too). Nothing here knows about training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt_cli.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from nmt_cli.config import Config, from_dict
from nmt_cli.ensemble import Ensemble
from nmt_cli.errors import CheckpointError
from nmt_cli.model import Seq2Seq, build_model, skip_init
from nmt_cli.tokenizer import Tokenizer


@dataclass(frozen=True)
class LoadedModel:
    """One checkpoint's model, or an ensemble of several, with the config and tokenizers.

    Attributes:
        model: a Seq2Seq, or an Ensemble of them, on the CPU.
        config: the (first) checkpoint's config.
        src_tok: the source tokenizer, shared by every member.
        tgt_tok: the target tokenizer, shared by every member.
    """

    model: Seq2Seq | Ensemble
    config: Config
    src_tok: Tokenizer
    tgt_tok: Tokenizer


def build_from_checkpoint(ckpt: Checkpoint) -> tuple[Config, Tokenizer, Tokenizer, Seq2Seq]:
    """Rebuild what a checkpoint describes, without loading its weights.

    Args:
        ckpt: a checkpoint (from `load_checkpoint`).

    Returns:
        The config, the source and target tokenizers, and the model, its weights left
        uninitialized (`skip_init`): take them with `Seq2Seq.load_weights`.
    """
    config = from_dict(ckpt.config)
    src_tok = Tokenizer.from_bytes(ckpt.vocab["src_spm"])
    tgt_tok = Tokenizer.from_bytes(ckpt.vocab["tgt_spm"])
    with skip_init():  # every weight comes from the checkpoint
        model = build_model(
            config.model,
            src_tok.vocab_size,
            tgt_tok.vocab_size,
            ckpt.vocab["joint"],
            config.data.reverse_source,
        )
    return config, src_tok, tgt_tok, model


def load_model(file: Path) -> tuple[Config, Tokenizer, Tokenizer, Seq2Seq]:
    """Load one checkpoint file as a model with its weights (on the CPU).

    Returns:
        The config, the source and target tokenizers, and the model.

    Raises:
        CheckpointError: unreadable, damaged, incomplete or mismatched checkpoint.
    """
    ckpt = load_checkpoint(file)
    config, src_tok, tgt_tok, model = build_from_checkpoint(ckpt)
    try:
        model.load_weights(ckpt.model)
    except RuntimeError:  # names or shapes that are not its config's model
        raise CheckpointError(f"{file}: its weights do not match its config's model") from None
    return config, src_tok, tgt_tok, model


def load_models(path: Path, checkpoints: Sequence[str]) -> LoadedModel:
    """Load a run folder's or a file's checkpoint(s); several make an ensemble.

    Args:
        path: a run folder or a checkpoint .pt file.
        checkpoints: with a run folder, best, last or a file in its checkpoints/ each; the
            members of an ensemble must share one vocabulary (and source direction).

    Raises:
        CheckpointError: a checkpoint is missing or unusable, or the vocabularies differ.
    """
    members: list[Seq2Seq] = []
    first: tuple[Config, Tokenizer, Tokenizer, Path] | None = None
    for name in checkpoints:
        file = resolve_checkpoint(path, name)
        config, src_tok, tgt_tok, model = load_model(file)
        if first is None:
            first = (config, src_tok, tgt_tok, file)
        elif (src_tok.model_bytes, tgt_tok.model_bytes) != (
            first[1].model_bytes,
            first[2].model_bytes,
        ) or config.data.reverse_source != first[0].data.reverse_source:
            raise CheckpointError(f"{file}: another vocabulary than {first[3]}; cannot ensemble")
        members.append(model)
    if first is None:
        raise CheckpointError("no checkpoint to load")
    merged = members[0] if len(members) == 1 else Ensemble(members)
    return LoadedModel(merged, first[0], first[1], first[2])
