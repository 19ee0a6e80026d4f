"""Validation: perplexity and BLEU of the model on the valid split, and the score they give."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt_cli.batch_threads import WORKERS
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

# Called during a validation with (what, sentences done, sentences in all); it may raise to
# cut the validation short (a signal, the end of the time budget).
Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    pass


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

    def target_tokens(self) -> int:
        """Target tokens of the valid split, end-of-sentence included (a validation's cost)."""
        return len(self.split.tgt) + len(self.split)

    @torch.inference_mode()
    def __call__(self, model: Seq2Seq, progress: Progress = _no_progress) -> ValidMetrics:
        """Perplexity and BLEU of `model`, which is left in training mode.

        `progress` is called after every batch; an exception it raises ends the validation.
        """
        model.eval()
        try:
            ppl = self.perplexity(model, progress)
            bleu = self.bleu(model, progress)
        finally:
            model.train()
        return ValidMetrics(ppl=ppl, bleu=bleu)

    def perplexity(self, model: Seq2Seq, progress: Progress = _no_progress) -> float:
        """Teacher-forced perplexity of the references (no label smoothing, no sampling)."""
        total_loss, total_tokens, done = torch.zeros((), device=self.device), 0, 0
        for batch in eval_batches(self.split, self.config.train.batch_tokens * 2):
            batch = batch.to(self.device)
            total_loss += batch_loss(model, batch, 0.0, 0.0, self.autocast)
            total_tokens += batch.n_tokens
            done += len(batch)
            progress("validating ppl", done, len(self.split))
        return math.exp(min(total_loss.item() / total_tokens, 50))

    def bleu(self, model: Seq2Seq, progress: Progress = _no_progress) -> float:
        """BLEU of the search's best hypotheses (train.valid_beam, the decode settings)."""
        d, n = self.config.decode, len(self.split)
        sources = [self.split.pair(i)[0] for i in range(n)]
        # search_sorted batches by length; handing it the sorted order WORKERS batches at a time
        # gives the same batches (searched side by side on the CPU) with a progress report
        # between them.
        order = sorted(range(n), key=lambda i: len(sources[i]))
        texts = [""] * n
        for start in range(0, n, d.batch_size * WORKERS):
            chunk = order[start : start + d.batch_size * WORKERS]
            with self.autocast:
                hyps = search_sorted(
                    model,
                    [sources[i] for i in chunk],
                    self.device,
                    d.batch_size,
                    beam=self.config.train.valid_beam,
                    alpha=d.alpha,
                    max_len_a=d.max_len_a,
                    max_len_b=d.max_len_b,
                )
            for i, h in zip(chunk, hyps, strict=True):
                texts[i] = self.tokenizer.decode(h[0].tokens)
            progress("validating", start + len(chunk), n)
        return score_corpus(texts, self.references, ["bleu"])[0].score
