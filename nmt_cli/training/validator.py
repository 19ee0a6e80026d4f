"""Validation: perplexity and BLEU of the model on the valid split, and the score they give."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt_cli.checkpoint import score_from_metric
from nmt_cli.config import Config
from nmt_cli.corpus import EncodedSplit
from nmt_cli.data import eval_batches
from nmt_cli.decoding import search_sorted
from nmt_cli.errors import DataError
from nmt_cli.evaluate import score_corpus
from nmt_cli.model import Seq2Seq
from nmt_cli.tokenizer import Tokenizer
from nmt_cli.training.update import batch_loss


@dataclass(frozen=True)
class ValidMetrics:
    """One validation.

    Attributes:
        ppl: perplexity of the references (teacher-forced, no label smoothing).
        bleu: corpus BLEU of the search's best hypotheses against the references.
    """

    ppl: float
    bleu: float


def score_of(metrics: ValidMetrics, stop_metric: str) -> float:
    """The validation score, higher is better: BLEU as is, perplexity as -ppl.

    The convention itself is `checkpoint.score_from_metric`, which the manifest's readers
    use too; the best score, early stopping, the plateau schedule and the checkpoints'
    scores all come from here.
    """
    return score_from_metric(metrics.bleu if stop_metric == "bleu" else metrics.ppl, stop_metric)


class Validator:
    """Validates a model on the valid split of a data folder, as training configured it."""

    def __init__(
        self,
        split: EncodedSplit,
        references: list[str],
        tokenizer: Tokenizer,
        config: Config,
        device: torch.device,
        autocast: AbstractContextManager[object],
    ) -> None:
        """Args:
        split: the encoded valid split.
        references: its target sentences as text (one per pair).
        tokenizer: the target tokenizer (decodes the hypotheses).
        config: train.batch_tokens, train.valid_beam and the decode section apply.
        device: the model's device.
        autocast: the training precision's context (bf16 autocast, or a null context).
        """
        self.split, self.references, self.tokenizer = split, references, tokenizer
        self.config, self.device, self.autocast = config, device, autocast

    @classmethod
    def load(
        cls,
        data_dir: Path,
        tokenizer: Tokenizer,
        config: Config,
        device: torch.device,
        autocast: AbstractContextManager[object],
    ) -> Validator:
        """The validator of a preprocessed data folder's valid split and valid.ref."""
        split = EncodedSplit.open(data_dir, "valid")
        path = data_dir / "valid.ref"
        try:
            references = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file (run nmt preprocess again)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
        return cls(split, references, tokenizer, config, device, autocast)

    @torch.inference_mode()
    def __call__(self, model: Seq2Seq) -> ValidMetrics:
        """Perplexity and BLEU of `model`, which is left in training mode."""
        model.eval()
        ppl = self.perplexity(model)
        bleu = self.bleu(model)
        model.train()
        return ValidMetrics(ppl=ppl, bleu=bleu)

    def perplexity(self, model: Seq2Seq) -> float:
        """Teacher-forced perplexity of the references (no label smoothing, no sampling)."""
        total_loss, total_tokens = torch.zeros((), device=self.device), 0
        for batch in eval_batches(self.split, self.config.train.batch_tokens * 2):
            batch = batch.to(self.device)
            total_loss += batch_loss(model, batch, 0.0, 0.0, self.autocast)
            total_tokens += batch.n_tokens
        return math.exp(min(total_loss.item() / total_tokens, 50))

    def bleu(self, model: Seq2Seq) -> float:
        """BLEU of the search's best hypotheses (train.valid_beam, the decode settings)."""
        d = self.config.decode
        sources = [self.split.pair(i)[0] for i in range(len(self.split))]
        with self.autocast:
            hyps = search_sorted(
                model,
                sources,
                self.device,
                d.batch_size,
                beam=self.config.train.valid_beam,
                alpha=d.alpha,
                max_len_a=d.max_len_a,
                max_len_b=d.max_len_b,
            )
        texts = [self.tokenizer.decode(h[0].tokens) for h in hyps]
        return score_corpus(texts, self.references, ["bleu"])[0].score
