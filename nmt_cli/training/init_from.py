"""Fine-tuning: a new run that starts from another model's weights (`nmt train --init-from`).

The run takes the checkpoint's settings as its defaults. Its model shape must stay the
checkpoint's (the weights only fit that shape); training and regularization settings (lr,
schedule, dropout, label smoothing, max steps or minutes, ...) may change. The data folder must
be encoded with the checkpoint's tokenizers (`nmt preprocess --tokenizer-from CKPT`).

The optimizer, the schedule and the step count start fresh, unless `keep_optimizer`: then
they continue from the checkpoint's (as after `--resume`, but on other data, into another
run folder). The data stream, the best score and early-stopping patience always start anew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt_cli.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from nmt_cli.config import Config, TrainConfig, from_dict, load_config
from nmt_cli.corpus import Vocab, load_meta
from nmt_cli.errors import CheckpointError, ConfigError, DataError
from nmt_cli.model import Seq2Seq
from nmt_cli.schedule import LRSchedule
from nmt_cli.tokenizer import Tokenizer
from nmt_cli.training.state import TrainState

log = logging.getLogger(__name__)

# Settings that may differ from the checkpoint's: they do not change the weights' shapes or
# what the weights mean. Every other data and model key must stay.
FREE_KEYS = frozenset({"data.max_len", "model.dropout", "model.emb_dropout", "model.word_dropout"})


@dataclass(frozen=True)
class InitFrom:
    """The checkpoint a new run starts from.

    Attributes:
        path: the checkpoint file.
        checkpoint: its contents.
        keep_optimizer: continue its optimizer, schedule and step count.
    """

    path: Path
    checkpoint: Checkpoint
    keep_optimizer: bool = False

    @classmethod
    def load(cls, source: Path | str, keep_optimizer: bool = False) -> InitFrom:
        """A run folder's best checkpoint, or a checkpoint file.

        Raises:
            CheckpointError: missing or unusable, or, with `keep_optimizer`, a checkpoint
                without an optimizer state (e.g. an average).
        """
        path = resolve_checkpoint(Path(source), "best")
        ckpt = load_checkpoint(path)
        if keep_optimizer and ckpt.training is None:
            raise CheckpointError(
                f"--keep-optimizer: {path} has no optimizer state (a translation-only "
                "checkpoint, e.g. an average); leave --keep-optimizer out"
            )
        return cls(path, ckpt, keep_optimizer)

    def config(
        self, path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
    ) -> Config:
        """The new run's config: the checkpoint's, then the YAML file, then the overrides.

        Raises:
            ConfigError: as `load_config`, or a setting that changes the model's shape.
        """
        config = load_config(path, overrides, base=from_dict(self.checkpoint.config))
        self.check_config(config)
        return config

    def check_config(self, config: Config) -> None:
        """Refuse a model shape other than the checkpoint's, naming the first key that differs."""
        saved = from_dict(self.checkpoint.config)
        for section in ("data", "model"):
            mine, theirs = getattr(config, section).__dict__, getattr(saved, section).__dict__
            for key, value in mine.items():
                if f"{section}.{key}" not in FREE_KEYS and value != theirs[key]:
                    raise ConfigError(
                        f"--init-from {self.path}: {section}.{key} is {value!r} but the "
                        f"checkpoint has {theirs[key]!r}; the model's shape comes from the "
                        "checkpoint (leave the key out of the config)"
                    )
        if self.keep_optimizer and config.train.max_steps <= self.checkpoint.step:
            raise ConfigError(
                f"--keep-optimizer continues the step count of {self.path} (step "
                f"{self.checkpoint.step}): train.max_steps {config.train.max_steps} must be "
                "larger"
            )

    def check(self, config: Config, data_dir: Path) -> None:
        """Refuse a run whose model shape or data folder's tokenizers are not the checkpoint's."""
        self.check_config(config)
        meta, vocab = load_meta(data_dir), Vocab.from_data_dir(data_dir)
        theirs = self.checkpoint.vocab
        for side, tok in (("src", vocab.src), ("tgt", vocab.tgt)):
            if tok.model_bytes != theirs[f"{side}_spm"]:
                ours = Tokenizer.from_bytes(theirs[f"{side}_spm"])
                raise DataError(
                    f"--init-from: {data_dir / meta[f'{side}_spm']} ({tok.vocab_size} pieces) is "
                    f"not the tokenizer of {self.path} ({ours.vocab_size} pieces); re-encode "
                    f"the data with `nmt preprocess --tokenizer-from {self.path} ...`"
                )

    def apply(
        self,
        model: Seq2Seq,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        state: TrainState,
        train: TrainConfig,
    ) -> None:
        """Take the checkpoint's weights (and optimizer, schedule and step) into a new run's.

        Call `check` first: `model` and `optimizer` must be built for the checkpoint's shape.
        `train` is the new run's training config (its Adam settings replace the saved ones).
        """
        ckpt = self.checkpoint
        with torch.no_grad():  # copies into the run's parameters, which the optimizer holds
            model.load_state_dict(ckpt.model)
        if self.keep_optimizer and ckpt.training is not None:
            optimizer.load_state_dict(ckpt.training.optimizer)
            for group in optimizer.param_groups:  # the saved state brings the old settings back
                group.update(betas=train.adam_betas, weight_decay=train.weight_decay)
            schedule.load_state_dict(ckpt.training.schedule)
            state.step = ckpt.step
        log.info(
            "initialized from %s (step %d)%s",
            self.path,
            ckpt.step,
            ", continuing its optimizer, schedule and step count" if self.keep_optimizer else "",
        )
