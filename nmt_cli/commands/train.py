"""`nmt train`: train a model on a preprocessed corpus."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nmt_cli.app import app, user_errors

_InitFrom = Annotated[
    Path | None,
    typer.Option(
        help="Fine-tune: start a new run from this model's weights (a run folder's best "
        "checkpoint, or a .pt file), with its settings as defaults; DATA must be encoded "
        "with its tokenizer (nmt preprocess --tokenizer-from).",
    ),
]
_KeepOptimizer = Annotated[
    bool, typer.Option(help="With --init-from: continue its optimizer, schedule and step count.")
]


@app.command(
    epilog="Example: nmt train data/ --out runs/de-en --config examples/multi30k-de-en.yaml "
    "--set train.max_steps=500"
)
def train(
    data: Annotated[Path, typer.Argument(help="Folder written by `nmt preprocess`.")],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints, logs, metrics).")],
    config: Annotated[
        Path | None, typer.Option(help="YAML config (data/model/train/decode).")
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--set", help="Override a config key: --set train.max_steps=500 (repeatable)."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    resume: Annotated[
        bool, typer.Option(help="Continue the run in OUT from its last checkpoint.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (same as --set train.seed=N).")
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Data-parallel ranks on this machine (one per GPU), started as torchrun does."
        ),
    ] = 1,
    init_from: _InitFrom = None,
    keep_optimizer: _KeepOptimizer = False,
) -> None:
    """Train an encoder-decoder with attention on a preprocessed corpus.

    Also runs as one rank of a torchrun job: torchrun --nproc-per-node N -m nmt_cli train ...
    """
    from nmt_cli.runtime import cap_kernel_caches, exit_now

    cap_kernel_caches()  # before torch builds its first kernel
    with user_errors():
        from nmt_cli.errors import ConfigError
        from nmt_cli.train import InitFrom, run_config
        from nmt_cli.train import train as run

        if keep_optimizer and init_from is None:
            raise ConfigError("--keep-optimizer needs --init-from")
        overrides = list(set_ or []) + ([f"train.seed={seed}"] if seed is not None else [])
        init = InitFrom.load(init_from, keep_optimizer) if init_from is not None else None
        cfg = run_config(config, overrides, out, resume, init)
        if nproc != 1:
            from nmt_cli.distributed import launch

            launch(nproc, sys.argv[1:], out)
            return
        result = run(cfg, data, out, device=device, resume=resume, init=init)
        if result.rank == 0:  # rank 0 reports for the job
            print(result.summary(cfg.train.stop_metric))
        if result.ranks > 1:
            exit_now()  # a rank's teardown can abort in gloo's threads: see exit_now
