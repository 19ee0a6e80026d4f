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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import torch
from torch import Tensor

from nmt_cli.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from nmt_cli.config import Config, DecodeConfig, from_dict
from nmt_cli.data import make_source_batch
from nmt_cli.device import resolve_device
from nmt_cli.errors import CheckpointError
from nmt_cli.model import Seq2Seq, build_model, skip_init
from nmt_cli.precision import apply_precision, check_precision, search_context
from nmt_cli.search import Hypothesis, StepFn, beam_search, greedy_search
from nmt_cli.special_ids import BOS_ID, EOS_ID
from nmt_cli.textio import clean_line
from nmt_cli.tokenizer import Tokenizer

if TYPE_CHECKING:
    from nmt_cli.ensemble import Ensemble

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


@torch.inference_mode()
def search_batch(
    model: Seq2Seq | Ensemble,
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
    step = cast("StepFn[Any]", model.decode_step)
    if beam == 1 and n_best == 1:
        hyps = greedy_search(step, state, len(sources), BOS_ID, EOS_ID, max_lengths)
        return [[h] for h in hyps]
    return beam_search(
        step,
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
    model: Seq2Seq | Ensemble,
    sources: Sequence[Tensor],
    device: torch.device,
    batch_size: int,
    **options: Any,
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
        """`model` must be on `device`; `precision` (fp32|bf16|int8) converts it in place."""
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
        `precision` is fp32, bf16 or int8 (see nmt_cli.precision).
        """
        from nmt_cli.ensemble import Ensemble

        target = resolve_device(device)
        check_precision(precision, target)  # before the slow part
        names = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
        models, first = [], None
        for name in names:
            file = resolve_checkpoint(Path(path), name)
            ckpt = load_checkpoint(file)
            config, src_tok, tgt_tok, model = build_from_checkpoint(ckpt)
            try:
                model.load_weights(ckpt.model)
            except RuntimeError:  # names or shapes that are not its config's model
                raise CheckpointError(
                    f"{file}: its weights do not match its config's model"
                ) from None
            if first is None:
                first = (config, src_tok, tgt_tok, file)
            elif (src_tok.model_bytes, tgt_tok.model_bytes) != (
                first[1].model_bytes,
                first[2].model_bytes,
            ) or config.data.reverse_source != first[0].data.reverse_source:
                raise CheckpointError(
                    f"{file}: another vocabulary than {first[3]}; cannot ensemble"
                )
            models.append(model)
        assert first is not None
        member = models[0] if len(models) == 1 else Ensemble(models)
        return cls(member.to(target), first[0], first[1], first[2], target, precision)

    def translate(self, lines: Iterable[str], beam: int | None = None) -> list[str]:
        """Translate lines; returns one string per line."""
        lines = list(lines)
        pool = self.decode.batch_size * POOL_BATCHES
        out: list[str] = []
        for start in range(0, len(lines), pool):
            out += [
                hyps[0].text
                for hyps in self.translate_lines(
                    lines[start : start + pool], beam=beam, first_line=start + 1
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
    ) -> list[list[Translation]]:
        """Translate raw lines: n_best Translations per line (one for empty lines).

        The lines are searched in length-sorted batches, so a pool of many batches' lines
        (`POOL_BATCHES`) wastes less on padding and on steps that only the longest sentences
        of a batch need.

        Args:
            lines: raw input lines (no newline), any number.
            beam: beam size (default: the checkpoint's decode.beam); 1 = greedy.
            n_best: hypotheses per line.
            first_line: the 1-based line number of lines[0], for warnings.
            batch_size: sentences per search batch (default: the checkpoint's decode.batch_size).
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
        with search_context(self.precision, self.device):
            hyps = search_sorted(
                self.model,
                [torch.tensor(s) for s in segments],
                self.device,
                batch_size or d.batch_size,
                beam=beam or d.beam,
                alpha=d.alpha,
                max_len_a=d.max_len_a,
                max_len_b=d.max_len_b,
                n_best=n_best,
            )
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

    def _to_translation(self, hyp: Hypothesis, source_ids: list[int]) -> Translation:
        attention = None
        if hyp.attention is not None:
            attention = hyp.attention[:, : len(source_ids)].float()  # T x S, padding dropped
            if self.model.reverse_source:  # the encoder read the source backwards
                attention = attention.flip(1)
        return Translation(
            text=self.tgt_tok.decode(hyp.tokens),
            score=hyp.score,
            pieces=[self.tgt_tok.id_to_piece(t) for t in hyp.tokens],
            attention=attention,
            source=[self.src_tok.id_to_piece(t) for t in source_ids],
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
            batch.append(_decode(raw, line_no))
        more_ready = b"\n" in buffer or (not eof and _readable(fd))
        if batch and (len(batch) >= batch_size or not more_ready):
            yield batch
            batch = []


def read_prompted(stream: BinaryIO, prompt: IO[str], text: str = "> ") -> Iterator[list[str]]:
    """Interactive input: show `text` on `prompt`, yield each entered line as a batch of one.

    Ends at end of input (Ctrl-D), leaving the cursor on a fresh line.
    """
    line_no = 0
    while True:
        prompt.write(text)
        prompt.flush()
        raw = stream.readline()
        if not raw:
            prompt.write("\n")
            prompt.flush()
            return
        line_no += 1
        yield [_decode(raw.removesuffix(b"\n"), line_no)]


def _decode(raw: bytes, line_no: int) -> str:
    """UTF-8 -> str; invalid bytes become U+FFFD, with a warning naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        log.warning(
            "line %d: invalid UTF-8 (byte 0x%02x at column %d); replaced",
            line_no,
            raw[e.start],
            e.start + 1,
        )
        return raw.decode("utf-8", errors="replace")


def _readable(fd: int) -> bool:
    """Is input waiting on fd right now? (Regular files always are.)"""
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
