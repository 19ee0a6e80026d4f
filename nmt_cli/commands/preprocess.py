"""`nmt preprocess`: raw parallel text -> tokenizer(s) + encoded corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors

_Src = Annotated[
    str, typer.Option(metavar="LANG", help="Source language suffix: reads PREFIX.SRC.")
]
_Tgt = Annotated[
    str, typer.Option(metavar="LANG", help="Target language suffix: reads PREFIX.TGT.")
]
_Train = Annotated[
    list[Path],
    typer.Option(
        metavar="PREFIX",
        help="Training files prefix (D/train -> D/train.SRC, D/train.TGT); repeat it to "
        "concatenate several corpora.",
    ),
]
_MaxRatio = Annotated[
    float | None,
    typer.Option(help="Drop training pairs whose longer side has over this x the pieces."),
]
_Dedup = Annotated[bool, typer.Option(help="Drop repeated training pairs.")]
_DropCopies = Annotated[
    bool, typer.Option(help="Drop training pairs whose source equals the target.")
]
_SkipBad = Annotated[
    bool, typer.Option(help="Skip and count undecodable lines instead of stopping.")
]
_Workers = Annotated[
    int | None, typer.Option(help="Worker processes (default: the machine's cores).")
]
_SpmSample = Annotated[
    int, typer.Option(help="Sentences (at most) that train each sentencepiece model.")
]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@app.command(
    epilog="Example: nmt preprocess --src de --tgt en --train D/train --valid D/val --out data/"
)
def preprocess(
    src: _Src,
    tgt: _Tgt,
    train: _Train,
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
    max_ratio: _MaxRatio = None,
    dedup: _Dedup = False,
    drop_copies: _DropCopies = False,
    skip_bad: _SkipBad = False,
    workers: _Workers = None,
    spm_sample: _SpmSample = 300_000,
    seed: Annotated[int, typer.Option(help="Seed of the sentencepiece sample.")] = 0,
    tokenizer_from: Annotated[
        Path | None,
        typer.Option(
            help="Encode with this model's tokenizer (a run folder, checkpoint .pt, data folder "
            "or sentencepiece .model) instead of training one, to fine-tune it on this data; "
            "--vocab-size, --separate-vocab and --model-type then do not apply.",
        ),
    ] = None,
    protect: Annotated[
        bool,
        typer.Option(
            "--protect",
            help="Copy-through placeholders in train/valid pairs (for translate --protect).",
        ),
    ] = False,
) -> None:
    """Train sentencepiece on (a sample of) the training split and encode every split into OUT."""
    with user_errors():
        from nmt_cli.preprocess import Options
        from nmt_cli.preprocess import preprocess as run

        options = Options(
            workers=workers or _cores(), spm_sample=spm_sample, seed=seed, max_ratio=max_ratio,
            dedup=dedup, drop_copies=drop_copies, skip_bad=skip_bad, protect=protect,
        )  # fmt: skip
        summary = run(
            src_lang=src, tgt_lang=tgt, train_prefix=train, valid_prefix=valid, out_dir=out,
            vocab_size=vocab_size, separate_vocab=separate_vocab, model_type=model_type,
            max_len=max_len, test_prefixes=test or [], options=options,
            tokenizer_from=tokenizer_from,
        )  # fmt: skip
        print(summary.to_text())
