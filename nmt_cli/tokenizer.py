"""Sentencepiece training and a small tokenizer wrapper with fixed special ids.

Every model trained here reserves the same four ids, so the sentencepiece ids *are* the
model vocabulary: no separate vocabulary file exists anywhere in nmt.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nmt_cli.errors import ConfigError, DataError
from nmt_cli.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

SPECIAL_PIECES = {PAD_ID: "<pad>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}

MODEL_TYPES = ("unigram", "bpe")

# Byte fallback adds 256 byte pieces (<0x00> ... <0xFF>) so that every character can be
# spelled; from this vocabulary size up they take at most a quarter of it.
BYTE_FALLBACK_MIN_VOCAB = 1024

# Matches sentencepiece's "Vocabulary size is smaller than required_chars. 10 vs 28." check.
_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")


# Every character covered, digits one piece each, the whole text used in order on one thread
# (deterministic), quiet, and nmt's fixed special ids.
_TRAINER_OPTIONS: dict[str, Any] = {
    "character_coverage": 1.0,
    "split_digits": True,
    "hard_vocab_limit": False,
    "input_sentence_size": 0,
    "shuffle_input_sentence": False,
    "num_threads": 1,
    "minloglevel": 2,
    "pad_id": PAD_ID,
    "unk_id": UNK_ID,
    "bos_id": BOS_ID,
    "eos_id": EOS_ID,
    **{f"{name}_piece": SPECIAL_PIECES[i] for name, i in
       (("pad", PAD_ID), ("unk", UNK_ID), ("bos", BOS_ID), ("eos", EOS_ID))},
}  # fmt: skip


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    user_symbols: Sequence[str] = (),
) -> bytes:
    """Trains a sentencepiece model in memory and returns its serialized bytes.

    Training is deterministic (every sentence is used, in the given order, on one thread) and
    quiet. Every character of the text is covered, digits are split into single pieces, each of
    ``user_symbols`` is one piece (copy-through placeholders, nmt_cli.protect), and ids 0-3 are
    ``<pad>``, ``<unk>``, ``<s>``, ``</s>``. From ``BYTE_FALLBACK_MIN_VOCAB`` pieces up (when
    the corpus' characters leave room), the model has byte fallback: a character it has no
    piece for (an emoji, a rare letter) is encoded as its UTF-8 bytes instead of ``<unk>``.
    The vocabulary limit is soft: a small corpus may give fewer than ``vocab_size`` pieces.

    Args:
        texts: Training sentences, one per item, without newlines; empty ones are skipped.
        vocab_size: Requested number of pieces, special pieces included.
        model_type: ``"unigram"`` or ``"bpe"``.
        user_symbols: Strings that are always one piece.

    Returns:
        The serialized ``ModelProto``, loadable with ``Tokenizer.from_bytes``.

    Raises:
        ConfigError: Unknown model type, or a vocabulary too small for the corpus' characters.
        DataError: No non-empty sentence, or sentencepiece rejected the text.
    """
    if model_type not in MODEL_TYPES:
        raise ConfigError(
            f"unknown model_type {model_type!r}; valid model types: {', '.join(MODEL_TYPES)}"
        )
    if vocab_size <= len(SPECIAL_PIECES):
        raise ConfigError(f"vocab_size must be larger than {len(SPECIAL_PIECES)}, got {vocab_size}")
    sentences = [text for text in texts if text]  # kept: a second try may need them
    if not sentences:
        raise DataError("no text to train the tokenizer on (all sentences are empty)")
    train = partial(_train, sentences, vocab_size, model_type, user_symbols)
    if vocab_size >= BYTE_FALLBACK_MIN_VOCAB:
        try:
            return train(byte_fallback=True)
        except ConfigError:  # too many distinct characters to add 256 byte pieces
            pass
    return train(byte_fallback=False)


def _train(
    sentences: list[str],
    vocab_size: int,
    model_type: str,
    symbols: Sequence[str],
    byte_fallback: bool,
) -> bytes:
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            byte_fallback=byte_fallback,
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            user_defined_symbols=list(symbols),
            **_TRAINER_OPTIONS,
        )
    except RuntimeError as err:
        raise _training_error(err, vocab_size) from None
    return model.getvalue()


def _training_error(err: RuntimeError, vocab_size: int) -> ConfigError | DataError:
    """The one-line error for a failed sentencepiece training."""
    too_small = _TOO_SMALL.search(str(err))
    if too_small:
        return ConfigError(
            f"vocab_size {vocab_size} is too small for this corpus: it needs at least "
            f"{too_small.group(2)} (one piece per distinct character plus the special pieces)"
        )
    return DataError(f"sentencepiece training failed: {str(err).strip()}")


class Tokenizer:
    """A trained sentencepiece model whose ids 0-3 are pad, unk, bos and eos."""

    def __init__(self, model_bytes: bytes) -> None:
        """Loads a serialized model; prefer ``from_bytes`` or ``load``.

        Args:
            model_bytes: A serialized sentencepiece ``ModelProto``.

        Raises:
            DataError: The bytes are not a sentencepiece model, or its special ids differ.
        """
        if not model_bytes:  # sentencepiece would accept b"" and log errors on every call
            raise DataError("not a valid sentencepiece model (empty)")
        try:
            processor = spm.SentencePieceProcessor(model_proto=bytes(model_bytes))
        except RuntimeError:
            raise DataError("not a valid sentencepiece model") from None
        size = processor.get_piece_size()
        for idx, piece in SPECIAL_PIECES.items():
            if idx >= size or processor.id_to_piece(idx) != piece:
                expected = ", ".join(f"{p}={i}" for i, p in SPECIAL_PIECES.items())
                raise DataError(f"sentencepiece model has other special ids (expected {expected})")
        self._processor = processor
        self._model_bytes = bytes(model_bytes)

    @classmethod
    def from_bytes(cls, model_bytes: bytes) -> Tokenizer:
        """Builds a tokenizer from serialized model bytes (as stored in checkpoints)."""
        return cls(model_bytes)

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        """Loads a ``.model`` file.

        Raises:
            DataError: The file is missing, unreadable or not a valid model (message names it).
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror})") from None
        try:
            return cls(data)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None

    @property
    def model_bytes(self) -> bytes:
        """The serialized model, byte-identical to what was loaded."""
        return self._model_bytes

    def save(self, path: Path | str) -> None:
        """Writes the serialized model to ``path``."""
        Path(path).write_bytes(self._model_bytes)

    @property
    def byte_fallback(self) -> bool:
        """Does it spell characters it has no piece for as UTF-8 bytes (instead of ``<unk>``)?"""
        return bool(self._processor.is_byte(self._processor.piece_to_id("<0x00>")))

    def is_byte(self, idx: int) -> bool:
        """Is ``idx`` a byte piece (``<0x00>`` ... ``<0xFF>``) of byte fallback?"""
        return bool(self._processor.is_byte(idx))

    @property
    def vocab_size(self) -> int:
        """Number of pieces, special pieces included."""
        return int(self._processor.get_piece_size())

    def encode(self, text: str) -> list[int]:
        """Encodes one sentence to ids, without bos/eos."""
        return list(self._processor.encode(text))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encodes many sentences at once (faster than calling ``encode`` in a loop)."""
        return [list(ids) for ids in self._processor.encode(list(texts))]

    def encode_pieces(self, text: str) -> list[str]:
        """Encodes one sentence to its pieces, e.g. ``["▁Hallo", "▁Welt"]``."""
        return list(self._processor.encode(text, out_type=str))

    def decode(self, ids: Sequence[int]) -> str:
        """Decodes ids to text, skipping pad, bos and eos.

        Unknown pieces (``UNK_ID``) stay visible as sentencepiece's ``" ⁇ "``.

        Args:
            ids: Token ids, shape (T,), e.g. ``tensor.tolist()``.
        """
        kept = [i for i in map(int, ids) if i not in (PAD_ID, BOS_ID, EOS_ID)]
        return str(self._processor.decode(kept))

    def id_to_piece(self, idx: int) -> str:
        """The piece string for one id."""
        return str(self._processor.id_to_piece(idx))
