"""`nmt preprocess`: raw parallel text -> tokenizer(s) + encoded corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors


@app.command(
    epilog="Example: nmt preprocess --src de --tgt en --train D/train --valid D/val --out data/"
)
def preprocess(
    src: Annotated[
        str, typer.Option(metavar="LANG", help="Source language suffix: reads PREFIX.SRC.")
    ],
    tgt: Annotated[
        str, typer.Option(metavar="LANG", help="Target language suffix: reads PREFIX.TGT.")
    ],
    train: Annotated[
        Path,
        typer.Option(
            metavar="PREFIX", help="Training files prefix (D/train -> D/train.SRC, D/train.TGT)."
        ),
    ],
    valid: Annotated[Path, typer.Option(metavar="PREFIX", help="Validation files prefix.")],
    out: Annotated[Path, typer.Option(help="Output folder for tokenizer(s) and encoded corpus.")],
    test: Annotated[
        list[Path] | None, typer.Option(metavar="PREFIX", help="Test files prefix (repeatable).")
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="Sentencepiece vocabulary size.")] = 8000,
    separate_vocab: Annotated[
        bool, typer.Option(help="One vocabulary per language instead of a joint one.")
    ] = False,
    model_type: Annotated[
        str, typer.Option(help="Sentencepiece model: unigram or bpe.")
    ] = "unigram",
    max_len: Annotated[
        int, typer.Option(help="Drop training pairs longer than this (in pieces).")
    ] = 100,
) -> None:
    """Train sentencepiece on the training split and encode every split into OUT."""
    with user_errors():
        from nmt_cli.preprocess import preprocess as run

        summary = run(
            src_lang=src,
            tgt_lang=tgt,
            train_prefix=train,
            valid_prefix=valid,
            out_dir=out,
            vocab_size=vocab_size,
            separate_vocab=separate_vocab,
            model_type=model_type,
            max_len=max_len,
            test_prefixes=test or [],
        )
        print(summary.to_text())
