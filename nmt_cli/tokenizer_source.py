"""An existing model's tokenizers, from a run folder, a checkpoint, a data folder or a .model file.

`nmt preprocess --tokenizer-from` encodes a corpus with them instead of training new ones, so
that a model can be fine-tuned on it: `nmt train --init-from` accepts a data folder only when
its tokenizers are byte for byte the checkpoint's.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.corpus import META_FILE, Vocab
from nmt_cli.errors import DataError
from nmt_cli.tokenizer import Tokenizer


@dataclass(frozen=True)
class ExistingTokenizers:
    """The source and target tokenizers of a model (the same one for a joint vocabulary).

    Attributes:
        src: the source tokenizer.
        tgt: the target tokenizer.
        joint: one vocabulary for both sides.
        origin: where they were read (the checkpoint file, the folder or the .model file).
    """

    src: Tokenizer
    tgt: Tokenizer
    joint: bool
    origin: Path


def load_tokenizers(source: Path | str) -> ExistingTokenizers:
    """The tokenizers of a run folder, a checkpoint .pt, a data folder or a sentencepiece .model.

    A run folder's are the files `nmt train` writes beside its checkpoints (spm.model, or
    spm.src.model and spm.tgt.model), which are the bytes its checkpoints carry. A single .model
    file is a joint vocabulary.

    Raises:
        DataError: no such path, a folder with no tokenizer, or an unreadable model.
        CheckpointError: a damaged checkpoint.
    """
    source = Path(source)
    if source.is_dir():
        return _from_folder(source)
    if not source.is_file():
        raise DataError(f"{source}: no such run folder, checkpoint or sentencepiece model")
    if zipfile.is_zipfile(source):  # torch.save writes a zip archive; a .model is a protobuf
        vocab = load_checkpoint(source).vocab
        src = Tokenizer.from_bytes(vocab["src_spm"])
        tgt = src if vocab["joint"] else Tokenizer.from_bytes(vocab["tgt_spm"])
        return ExistingTokenizers(src, tgt, bool(vocab["joint"]), source)
    joint = Tokenizer.load(source)
    return ExistingTokenizers(joint, joint, True, source)


def vocabulary_of(source: Path | str) -> tuple[Tokenizer, Tokenizer, bool, int, str]:
    """What `nmt preprocess --tokenizer-from SOURCE` encodes with and records in its data folder.

    Returns:
        The source and target tokenizers, whether they are separate vocabularies, the
        vocabulary size and the model type as the summary shows them.
    """
    found = load_tokenizers(source)
    return found.src, found.tgt, not found.joint, found.src.vocab_size, "existing"


def _from_folder(folder: Path) -> ExistingTokenizers:
    """A data folder's (by its meta.json) or a run folder's tokenizers."""
    if (folder / META_FILE).is_file():
        vocab = Vocab.from_data_dir(folder)
        return ExistingTokenizers(vocab.src, vocab.tgt, vocab.joint, folder)
    if (folder / "spm.model").is_file():
        joint = Tokenizer.load(folder / "spm.model")
        return ExistingTokenizers(joint, joint, True, folder)
    if (folder / "spm.src.model").is_file() and (folder / "spm.tgt.model").is_file():
        src, tgt = (
            Tokenizer.load(folder / "spm.src.model"),
            Tokenizer.load(folder / "spm.tgt.model"),
        )
        return ExistingTokenizers(src, tgt, False, folder)
    raise DataError(
        f"{folder}: no tokenizer here (a run folder has spm.model, or spm.src.model and "
        "spm.tgt.model; a data folder has meta.json)"
    )
