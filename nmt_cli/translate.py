"""Translation: a loaded model + its tokenizers, batched search, streaming line I/O.

The contract with users: exactly one output line per input line, in input order. Empty lines
give empty lines, undecodable bytes are replaced (with a warning), and lines longer than the
model handles are split into pieces that are translated separately and joined (with a warning).
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from nmt_cli.checkpoint import load_checkpoint, resolve_checkpoint
from nmt_cli.config import Config, DecodeConfig, from_dict
from nmt_cli.data import make_source_batch
from nmt_cli.errors import CheckpointError
from nmt_cli.model import Seq2Seq, build_model
from nmt_cli.search import Hypothesis, beam_search, greedy_search
from nmt_cli.textio import clean_line
from nmt_cli.tokenizer import BOS_ID, EOS_ID, Tokenizer

log = logging.getLogger(__name__)

# Pieces after which a too-long line is preferably split.
_BREAK_AFTER = (".", "!", "?", ";", ":", ",")


@dataclass
class Translation:
    """One hypothesis for one input line."""

    text: str
    score: float
    pieces: list[str]
    attention: Tensor | None = None  # T x S, rows = output pieces + EOS


@torch.inference_mode()
def search_batch(
    model: Seq2Seq,
    sources: Sequence[Tensor],
    device: torch.device,
    beam: int,
    alpha: float,
    max_len_a: float,
    max_len_b: int,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    """Translate token-id sources (each >= 1 token) as one batch: n_best hypotheses each.

    beam 1 is greedy search (n_best must then be 1).
    """
    src, mask, lengths = make_source_batch(sources)
    state = model.encode(src.to(device), mask.to(device), lengths)
    max_lengths = (lengths.float() * max_len_a + max_len_b).long().to(device)
    if beam == 1 and n_best == 1:
        hyps = greedy_search(model.decode_step, state, len(sources), BOS_ID, EOS_ID, max_lengths)
        return [[h] for h in hyps]
    return beam_search(
        model.decode_step,
        state,
        len(sources),
        max(beam, n_best),
        BOS_ID,
        EOS_ID,
        max_lengths,
        alpha,
        n_best,
    )


def search_sorted(
    model: Seq2Seq, sources: Sequence[Tensor], device: torch.device, batch_size: int, **options
) -> list[list[Hypothesis]]:
    """Translate many sources in length-sorted batches (less padding); results in input order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, hyps in zip(
            chunk, search_batch(model, [sources[i] for i in chunk], device, **options), strict=True
        ):
            results[i] = hyps
    return results


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
        model: Seq2Seq,
        config: Config,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        device: torch.device,
    ) -> None:
        self.model, self.config, self.device = model.eval(), config, device
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.decode: DecodeConfig = config.decode

    @classmethod
    def load(cls, path: Path | str, checkpoint: str = "best", device: str = "cpu") -> Translator:
        """Load from a run folder (`checkpoint` = best|last|step-N.pt) or a checkpoint file."""
        from nmt_cli.train import resolve_device

        file = resolve_checkpoint(Path(path), checkpoint)
        state = load_checkpoint(file)
        try:
            config = from_dict(state["config"])
            vocab = state["vocab"]
            src_tok = Tokenizer.from_bytes(vocab["src_spm"])
            tgt_tok = Tokenizer.from_bytes(vocab["tgt_spm"])
            model = build_model(
                config.model,
                src_tok.vocab_size,
                tgt_tok.vocab_size,
                vocab["joint"],
                config.data.reverse_source,
            )
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"{file}: incomplete or mismatched checkpoint ({e})") from None
        target = resolve_device(device)
        return cls(model.to(target), config, src_tok, tgt_tok, target)

    def translate(self, lines: Iterable[str], beam: int | None = None) -> list[str]:
        """Translate lines; returns one string per line."""
        lines = list(lines)
        size = self.decode.batch_size
        out: list[str] = []
        for start in range(0, len(lines), size):
            out += [
                hyps[0].text
                for hyps in self.translate_batch(lines[start : start + size], beam=beam)
            ]
        return out

    def translate_batch(
        self, lines: Sequence[str], beam: int | None = None, n_best: int = 1, first_line: int = 1
    ) -> list[list[Translation]]:
        """Translate one batch of raw lines: n_best Translations per line (one for empty lines).

        Args:
            lines: raw input lines (no newline).
            beam: beam size (default: the checkpoint's decode.beam); 1 = greedy.
            n_best: hypotheses per line.
            first_line: the 1-based line number of lines[0], for warnings.
        """
        d = self.decode
        segments: list[list[int]] = []
        owners: list[int] = []  # which line each segment belongs to
        for i, line in enumerate(lines):
            text, _ = clean_line(line)
            if not text:
                continue
            ids = self.src_tok.encode(text)
            if len(ids) > d.max_src_len:
                pieces = [self.src_tok.id_to_piece(t) for t in ids]
                parts = split_long(ids, pieces, d.max_src_len)
                log.warning(
                    "line %d: %d pieces is longer than %d; translated in %d parts",
                    first_line + i,
                    len(ids),
                    d.max_src_len,
                    len(parts),
                )
            else:
                parts = [ids]
            segments += parts
            owners += [i] * len(parts)
        hyps = search_sorted(
            self.model,
            [torch.tensor(s) for s in segments],
            self.device,
            d.batch_size,
            beam=beam or d.beam,
            alpha=d.alpha,
            max_len_a=d.max_len_a,
            max_len_b=d.max_len_b,
            n_best=n_best,
        )
        results: list[list[Translation]] = [[Translation("", 0.0, [])] for _ in lines]
        for i in sorted(set(owners)):
            line_hyps = [h for h, owner in zip(hyps, owners, strict=True) if owner == i]
            if len(line_hyps) == 1:
                results[i] = [self._to_translation(h) for h in line_hyps[0]]
            else:  # a split line: join the best hypothesis of every part
                best = [self._to_translation(p[0]) for p in line_hyps]
                joined = Translation(
                    " ".join(t.text for t in best),
                    sum(t.score for t in best),
                    [p for t in best for p in t.pieces],
                )
                results[i] = [joined]
        return results

    def _to_translation(self, hyp: Hypothesis) -> Translation:
        return Translation(
            text=self.tgt_tok.decode(hyp.tokens),
            score=hyp.score,
            pieces=[self.tgt_tok.id_to_piece(t) for t in hyp.tokens],
            attention=hyp.attention,
        )


def read_batches(stream: BinaryIO, batch_size: int) -> Iterator[list[str]]:
    """Yield batches of decoded lines as soon as they are available.

    A batch is yielded when it is full, or when no more input is ready right now (an
    interactive user waits for their line, not for 63 more). Invalid UTF-8 is replaced with
    U+FFFD and reported with its line number.
    """
    fd = stream.fileno()
    buffer, line_no, eof = b"", 0, False
    batch: list[str] = []
    while not eof or buffer or batch:
        lines_ready = b"\n" in buffer
        if not eof and not lines_ready:
            chunk = os.read(fd, 1 << 16)
            eof = not chunk
            buffer += chunk
            if eof and buffer and not buffer.endswith(b"\n"):
                buffer += b"\n"  # a last line without newline still counts
            continue
        while b"\n" in buffer and len(batch) < batch_size:
            raw, buffer = buffer.split(b"\n", 1)
            line_no += 1
            try:
                batch.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                log.warning(
                    "line %d: invalid UTF-8 (byte 0x%02x at column %d); replaced",
                    line_no,
                    raw[e.start],
                    e.start + 1,
                )
                batch.append(raw.decode("utf-8", errors="replace"))
        more_ready = b"\n" in buffer or (not eof and _readable(fd))
        if batch and (len(batch) >= batch_size or not more_ready):
            yield batch
            batch = []


def _readable(fd: int) -> bool:
    """Is input waiting on fd right now? (Regular files always are.)"""
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
