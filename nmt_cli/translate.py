"""Translation: a loaded model + its tokenizers, lines in, translations out.

The contract with users: exactly one output line per input line, in input order. Empty lines
give empty lines, undecodable bytes are replaced (with a warning), and lines longer than the
model handles are split into pieces that are translated separately and joined (with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nmt_cli.config import Config, DecodeConfig
from nmt_cli.constraints import Phrases, unmet
from nmt_cli.decoding import search_sorted
from nmt_cli.device import resolve_device
from nmt_cli.ensemble import Ensemble
from nmt_cli.errors import NmtError, out_of_memory
from nmt_cli.loading import load_models
from nmt_cli.model import Seq2Seq
from nmt_cli.passthrough import carry_spans, describe, lost_characters, unknown_spans
from nmt_cli.precision import apply_precision, check_precision, resolve_precision, search_context
from nmt_cli.runtime import keep_freed_memory
from nmt_cli.sampling import Sampling
from nmt_cli.search import Hypothesis
from nmt_cli.special_ids import UNK_ID
from nmt_cli.textio import clean_line
from nmt_cli.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# Pieces after which a too-long line is preferably split.
_BREAK_AFTER = (".", "!", "?", ";", ":", ",")
# Batches of input read ahead and translated together, sorted by length: each search batch
# then holds sentences of similar length. Measured on test_2016_flickr: see
# benchmarks/README.md ("Length-sorted pools").
POOL_BATCHES = 16


@dataclass
class Translation:
    """One hypothesis for one input line."""

    text: str
    score: float
    pieces: list[str]
    attention: Tensor | None = None  # T x S: rows = pieces + eos, column j = source[j]
    source: list[str] = field(default_factory=list)  # the source pieces, in input order


def split_long(ids: list[int], pieces: list[str], max_len: int) -> list[list[int]]:
    """Cut a too-long source into segments of at most max_len, preferably after punctuation."""
    segments, start = [], 0
    while len(ids) - start > max_len:
        end = start + max_len
        breaks = [
            i + 1
            for i in range(end - 1, start + max_len // 2, -1)
            if pieces[i].endswith(_BREAK_AFTER)
        ]
        cut = breaks[0] if breaks else end
        segments.append(ids[start:cut])
        start = cut
    segments.append(ids[start:])
    return segments


class Translator:
    """A model ready to translate: `Translator.load("runs/de-en").translate(["Ein Hund."])`."""

    def __init__(
        self,
        model: Seq2Seq | Ensemble,
        config: Config,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        """`model` must be on `device`; `precision` (fp32|bf16|int8, or auto: see
        `resolve_precision`) converts it in place. `self.precision` names the one chosen."""
        precision = resolve_precision(precision, device)
        self.model = apply_precision(model.eval(), precision, device)
        self.config, self.device, self.precision = config, device, precision
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.decode: DecodeConfig = config.decode

    @classmethod
    def load(
        cls,
        path: Path | str,
        checkpoint: str | Sequence[str] = "best",
        device: str = "cpu",
        precision: str = "fp32",
    ) -> Translator:
        """Load from a run folder (`checkpoint` = best|last|step-N.pt) or a checkpoint file.

        Several checkpoints (e.g. ["best", "avg.pt"]) make an ensemble: their next-token
        probabilities are averaged at every step. They must share one vocabulary.
        `precision` is fp32, bf16, int8 or auto (see nmt_cli.precision).
        """
        keep_freed_memory()  # before loading, as `nmt translate` does
        target = resolve_device(device)
        check_precision(precision, target)  # before the slow part
        names = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
        loaded = load_models(Path(path), names)
        return cls(
            loaded.model.to(target),
            loaded.config,
            loaded.src_tok,
            loaded.tgt_tok,
            target,
            precision,
        )

    def translate(
        self,
        lines: Iterable[str],
        beam: int | None = None,
        constraints: Sequence[Sequence[str]] | None = None,
        **steer: Any,
    ) -> list[str]:
        """Translate lines; returns one string per line.

        `constraints` gives each line target phrases its translation must contain, e.g.
        `translate(["Ein Hund."], constraints=[["a puppy"]])`; `steer`: translate_lines'
        options no_repeat_ngram, coverage_penalty and sampling.
        """
        lines = list(lines)
        pool = self.decode.batch_size * POOL_BATCHES
        out: list[str] = []
        for start in range(0, len(lines), pool):
            out += [
                hyps[0].text
                for hyps in self.translate_lines(
                    lines[start : start + pool],
                    beam=beam,
                    first_line=start + 1,
                    with_attention=False,
                    constraints=None if constraints is None else constraints[start : start + pool],
                    **steer,
                )
            ]
        return out

    def translate_lines(
        self,
        lines: Sequence[str],
        beam: int | None = None,
        n_best: int = 1,
        first_line: int = 1,
        batch_size: int | None = None,
        with_attention: bool = True,
        constraints: Sequence[Sequence[str]] | None = None,
        no_repeat_ngram: int | None = None,
        coverage_penalty: float | None = None,
        sampling: Sampling | None = None,
    ) -> list[list[Translation]]:
        """Translate raw lines: n_best Translations per line (one for empty lines).

        The lines are searched in length-sorted batches: a pool of many batches' lines
        (`POOL_BATCHES`) wastes less on padding and on the longest sentences' extra steps.

        Args:
            lines: raw input lines (no newline), any number.
            beam: beam size (default: the checkpoint's decode.beam); 1 = greedy.
            n_best: hypotheses per line.
            first_line: the 1-based line number of lines[0], for warnings.
            batch_size: sentences per search batch (default: the checkpoint's decode.batch_size).
            with_attention: keep each hypothesis' attention (for alignments); without it no
                attention matrix is stored (a huge line costs what one batch of parts costs).
            constraints: for each line, target phrases its translations must contain
                (nmt_cli.constraints; a line in parts gives them to its last part); one that
                cannot fit in the length limit is reported with a warning.
            no_repeat_ngram: block repeated n-grams of this size, 0 = off (default: decode's).
            coverage_penalty: GNMT's coverage penalty beta, 0 = off (default: decode's).
            sampling: draw n_best random translations per line (e.g. Sampling(top_p=0.9)).
        """
        d = self.decode
        segments, owners = self._segments(lines, first_line)
        phrases = self._phrases(constraints, owners, first_line)
        hyps = self._search(
            segments,
            (first_line, first_line + len(lines) - 1),
            batch_size or d.batch_size,
            beam=self.capped(beam or d.beam),
            n_best=self.capped(n_best),
            with_attention=with_attention,
            constraints=phrases,
            no_repeat_ngram=d.no_repeat_ngram if no_repeat_ngram is None else no_repeat_ngram,
            coverage_penalty=d.coverage_penalty if coverage_penalty is None else coverage_penalty,
            sampling=sampling,
        )
        if phrases is not None:
            warn_unmet(hyps, phrases, owners, first_line, self.tgt_tok)
        results: list[list[Translation]] = [[Translation("", 0.0, [])] for _ in lines]
        for i in sorted(set(owners)):
            mine = [
                (h, s) for h, s, owner in zip(hyps, segments, owners, strict=True) if owner == i
            ]
            if len(mine) == 1:
                results[i] = [self._to_translation(h, mine[0][1]) for h in mine[0][0]]
            else:  # a split line: join the best hypothesis of every part
                results[i] = [join_parts([self._to_translation(h[0], s) for h, s in mine])]
        return results

    def _search(
        self, segments: list[list[int]], lines: tuple[int, int], batch_size: int, **options: Any
    ) -> list[list[Hypothesis]]:
        """`search_sorted` of the segments with the decode config's length settings; torch's
        out-of-memory error becomes one line naming the `lines` (first, last) and the sizes."""
        d = self.decode
        try:
            with search_context(self.precision, self.device):
                return search_sorted(
                    self.model,
                    [torch.tensor(s) for s in segments],
                    self.device,
                    batch_size,
                    alpha=d.alpha,
                    max_len_a=d.max_len_a,
                    max_len_b=d.max_len_b,
                    **options,
                )
        except RuntimeError as e:  # torch's out-of-memory error is a RuntimeError
            if (asked := out_of_memory(e)) is None:
                raise
            raise NmtError(
                f"out of memory translating lines {lines[0]}-{lines[1]} ({asked} asked for; "
                f"batch size {batch_size}, beam {options['beam']}); lower --batch-size or --beam"
            ) from None

    def capped(self, width: int) -> int:
        """A beam size or n-best count, at most the target vocabulary's size: a wider beam
        holds no other hypotheses, only a larger k x vocabulary candidate matrix."""
        return min(width, self.tgt_tok.vocab_size)

    def _segments(self, lines: Sequence[str], first_line: int) -> tuple[list[list[int]], list[int]]:
        """Encode lines into source segments: none for an empty line, several for a long one.

        Returns:
            The segments' token ids, and for each segment the index of its line in `lines`.
        """
        max_len = self.decode.max_src_len
        segments: list[list[int]] = []
        owners: list[int] = []
        for i, line in enumerate(lines):
            text, _ = clean_line(line)
            if not text:
                continue
            ids = self.src_tok.encode(text)
            if not ids:  # e.g. only U+FFFD from invalid bytes: nothing the model can read
                log.warning("line %d: nothing left to translate; empty output", first_line + i)
                continue
            lost = lost_characters(self.src_tok, text, ids, self.config.model.attention != "none")
            if lost:
                log.warning(
                    "line %d: not in the model's vocabulary, missing from the translation: %s",
                    first_line + i,
                    describe(lost),
                )
            if len(ids) > max_len:
                parts = split_long(ids, [self.src_tok.id_to_piece(t) for t in ids], max_len)
                log.warning(
                    "line %d: %d pieces is longer than %d; translated in %d parts",
                    first_line + i,
                    len(ids),
                    max_len,
                    len(parts),
                )
            else:
                parts = [ids]
            segments += parts
            owners += [i] * len(parts)
        return segments, owners

    def _phrases(
        self, constraints: Sequence[Sequence[str]] | None, owners: list[int], first_line: int
    ) -> list[list[list[int]]] | None:
        """Each segment's target phrases as token ids (a line's go to its last segment)."""
        if constraints is None or not any(constraints):
            return None
        last = {owner: s for s, owner in enumerate(owners)}
        phrases: list[list[list[int]]] = [[] for _ in owners]
        for line, segment in last.items():
            for text in constraints[line]:
                ids = self.tgt_tok.encode(text)
                if UNK_ID in ids:
                    log.warning(
                        "line %d: constraint %r has characters the target vocabulary lacks; "
                        "ignored",
                        first_line + line,
                        text,
                    )
                elif ids:
                    phrases[segment].append(ids)
        return phrases

    def _to_translation(self, hyp: Hypothesis, source_ids: list[int]) -> Translation:
        attention = None
        if hyp.attention is not None:
            attention = hyp.attention[:, : len(source_ids)].float()  # T x S, padding dropped
            if self.model.reverse_source:  # the encoder read the source backwards
                attention = attention.flip(1)
        text = self.tgt_tok.decode(hyp.tokens)
        spans = unknown_spans(self.src_tok, source_ids)  # an emoji, a rare letter
        if spans and attention is not None:
            text = carry_spans(hyp.tokens, attention, spans, self.tgt_tok)
        return Translation(
            text=text,
            score=hyp.score,
            pieces=[self.tgt_tok.id_to_piece(t) for t in hyp.tokens],
            attention=attention,
            source=[self.src_tok.id_to_piece(t) for t in source_ids],
        )


def warn_unmet(
    hyps: Sequence[Sequence[Hypothesis]],
    phrases: Sequence[Phrases],
    owners: Sequence[int],
    first_line: int,
    tgt_tok: Tokenizer,
) -> None:
    """Warn about each constraint a segment's best hypothesis lacks (the length limit came
    first)."""
    for segment_hyps, mine, owner in zip(hyps, phrases, owners, strict=True):
        best = segment_hyps[0].tokens if segment_hyps else []
        for c in unmet(best, mine):
            log.warning(
                "line %d: constraint %r does not fit in the output length limit; "
                "translated without it",
                first_line + owner,
                tgt_tok.decode(list(mine[c])),
            )


def join_parts(parts: Sequence[Translation]) -> Translation:
    """One Translation for a line translated in parts: texts joined, scores summed.

    The attention is block-diagonal (each part attends only to its own source pieces); the
    eos rows of all parts but the last are left out, so rows stay `pieces + eos`.
    """
    attention = None
    if all(p.attention is not None for p in parts):
        blocks = [p.attention for p in parts if p.attention is not None]
        attention = torch.block_diag(*[b[:-1] for b in blocks[:-1]], blocks[-1])  # T x S
    return Translation(
        " ".join(p.text for p in parts),
        sum(p.score for p in parts),
        [piece for p in parts for piece in p.pieces],
        attention,
        [piece for p in parts for piece in p.source],
    )
