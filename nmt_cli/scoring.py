"""Forced decoding: the log-probability a model gives to translations it is handed (`nmt score`).

Each target is fed token by token through the model's `decode_step`, the one step the search
uses, so a hypothesis scores exactly the log-probability search reported for it (with the
length penalty off), and an ensemble scores with its averaged probabilities as it translates.
Pairs are scored in batches sorted by length; results come back in input order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from nmt_cli.batch_threads import for_each_batch
from nmt_cli.data import make_source_batch
from nmt_cli.model import Seq2Seq
from nmt_cli.precision import search_context
from nmt_cli.search import StepFn
from nmt_cli.special_ids import BOS_ID, EOS_ID, PAD_ID
from nmt_cli.textio import clean_line

if TYPE_CHECKING:
    from nmt_cli.ensemble import Ensemble
    from nmt_cli.translate import Translator

EOS_PIECE = "</s>"
EMPTY_SOURCE = "empty source"


@dataclass(frozen=True)
class PairScore:
    """The score of one target given its source.

    Attributes:
        token_log_probs: the log-probability of each target piece, then of eos.
        pieces: the target pieces, then `EOS_PIECE`: one per log-probability.
        skipped: why the pair was not scored (`EMPTY_SOURCE`), or None.
    """

    token_log_probs: list[float]
    pieces: list[str]
    skipped: str | None = None

    @property
    def tokens(self) -> int:
        """Scored tokens, eos included (0 for a skipped pair)."""
        return len(self.token_log_probs)

    @property
    def log_prob(self) -> float:
        """The sum of the token log-probabilities: log p(target | source)."""
        return math.fsum(self.token_log_probs)

    @property
    def average(self) -> float:
        """The log-probability per token (nan for a skipped pair)."""
        return self.log_prob / self.tokens if self.tokens else math.nan


@torch.inference_mode()
def score_batch(
    model: Seq2Seq | Ensemble,
    sources: Sequence[Tensor],
    targets: Sequence[Tensor],
    device: torch.device,
) -> list[Tensor]:
    """Teacher-forced log-probabilities of targets given sources, as one batch.

    Args:
        model: a Seq2Seq or an Ensemble, on `device`, in eval mode.
        sources: B id sequences, each S_i >= 1 long (1-D, on the CPU).
        targets: B id sequences, each T_i >= 0 long, without bos/eos.
        device: where the model runs.

    Returns:
        B float tensors on the CPU, each T_i + 1 long: the log-probability of each target
        token and then of eos.
    """
    src, mask, lengths = make_source_batch(sources)  # B x S, B x S, B
    state = model.encode(src.to(device), mask.to(device), lengths)
    step = cast("StepFn[Any]", model.decode_step)  # a Seq2Seq's or an Ensemble's
    eos = torch.tensor([EOS_ID])
    gold = pad_sequence([torch.cat([t.long(), eos]) for t in targets], True, PAD_ID)  # B x T
    gold = gold.to(device)
    prev = torch.full((len(targets),), BOS_ID, dtype=torch.long, device=device)  # B
    columns = []
    for t in range(gold.size(1)):
        log_probs, state, _ = step(prev, state)  # B x V
        columns.append(log_probs.float().gather(1, gold[:, t : t + 1]).squeeze(1))  # B
        prev = gold[:, t]  # a padded row goes on with pad: its later columns are dropped
    scores = torch.stack(columns, dim=1).cpu()  # B x T, one copy to the host
    return [scores[i, : len(target) + 1] for i, target in enumerate(targets)]


class Scorer:
    """A loaded model that scores (source, target) text pairs: `Scorer(Translator.load(run))`."""

    def __init__(self, translator: Translator) -> None:
        self.translator = translator

    def score(
        self, pairs: Sequence[tuple[str, str]], batch_size: int | None = None
    ) -> list[PairScore]:
        """Score raw text pairs (cleaned as translation cleans its input), in input order.

        A pair whose source is empty after cleaning is not scored (`PairScore.skipped`); an
        empty target scores the probability of ending at once (eos alone).
        """
        tr = self.translator
        size = batch_size or tr.decode.batch_size
        encoded = [
            (tr.src_tok.encode(clean_line(src)[0]), tr.tgt_tok.encode(clean_line(tgt)[0]))
            for src, tgt in pairs
        ]
        todo = [i for i, (src, _) in enumerate(encoded) if src]
        todo.sort(key=lambda i: (len(encoded[i][1]), len(encoded[i][0])))
        results = [PairScore([], [], EMPTY_SOURCE) for _ in pairs]

        def score_chunk(chunk: list[int]) -> None:
            scores = score_batch(
                tr.model,
                [torch.tensor(encoded[i][0]) for i in chunk],
                [torch.tensor(encoded[i][1], dtype=torch.long) for i in chunk],
                tr.device,
            )
            for i, token_scores in zip(chunk, scores, strict=True):
                pieces = [tr.tgt_tok.id_to_piece(t) for t in encoded[i][1]]
                results[i] = PairScore(token_scores.tolist(), [*pieces, EOS_PIECE])

        with search_context(tr.precision, tr.device):
            for_each_batch(score_chunk, todo, size, tr.device)  # two at a time on the CPU
        return results
