"""Where training time goes: time each phase of the training step on the peer workload.

Phases: batch building (host), encoder, decoder loop (RNN + attention, forward), output layer
and loss (forward), backward (all), optimizer. Each phase is timed with a device sync around
it, so the sum is a little above a real (unsynchronized) step. Optionally prints the top ops
of torch.profiler.

    python benchmarks/profile_train.py DATA_DIR [--steps 40] [--precision fp32|bf16] [--ops]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from nmt_cli.config import load_config
from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.data import Batch, TrainBatches
from nmt_cli.errors import NmtError
from nmt_cli.loss import generator_loss
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.runtime import keep_freed_memory
from nmt_cli.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
PEER_WORKLOAD = ROOT / "benchmarks" / "configs" / "peer-workload.yaml"


def training_setup(
    data: Path, config_path: Path, precision: str
) -> tuple[Seq2Seq, torch.optim.Optimizer, Iterator[Batch], AbstractContextManager[object]]:
    """A freshly initialized model of `config_path` for `data` (seed 1), its Adam optimizer,
    the endless stream of training batches, and the precision's autocast context.
    Memory is kept as `nmt train` keeps it (`keep_freed_memory`)."""
    keep_freed_memory()
    config = load_config(config_path, [f"train.precision={precision}"])
    meta = load_meta(data)
    src_vocab = Tokenizer.load(data / meta["src_spm"]).vocab_size
    tgt_vocab = Tokenizer.load(data / meta["tgt_spm"]).vocab_size
    torch.manual_seed(1)
    model = build_model(config.model, src_vocab, tgt_vocab, meta["joint"])
    init_weights(model, 0.1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    batches = iter(
        TrainBatches(EncodedSplit.open(data, "train"), config.train.batch_tokens, 100, 1)
    )
    autocast: AbstractContextManager[object] = (
        torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )
    return model, optimizer, batches, autocast


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--config", type=Path, default=PEER_WORKLOAD)
    parser.add_argument("--ops", action="store_true", help="also print torch.profiler's top ops")
    args = parser.parse_args()
    try:
        model, optimizer, batches, autocast = training_setup(args.data, args.config, args.precision)
    except NmtError as e:
        sys.exit(f"profile_train.py: {e}")
    phases: dict[str, float] = defaultdict(float)
    tokens = 0

    def step(record: bool) -> None:
        nonlocal tokens
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        with autocast:
            state = model.encode(batch.src, batch.src_mask, batch.src_lengths)
            t2 = time.perf_counter()
            outputs, _ = model.decoder(batch.tgt_in, state)
            t3 = time.perf_counter()
            hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)
            loss = generator_loss(hidden, model.generator, batch.targets, 0.1)
        t4 = time.perf_counter()
        (loss / batch.n_tokens).backward()
        t5 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t6 = time.perf_counter()
        if record:
            tokens += batch.n_tokens
            for name, seconds in (
                ("batch building", t1 - t0),
                ("encoder", t2 - t1),
                ("decoder loop", t3 - t2),
                ("output layer + loss", t4 - t3),
                ("backward", t5 - t4),
                ("clip + optimizer", t6 - t5),
            ):
                phases[name] += seconds

    for _ in range(5):
        step(False)
    profiler = (
        torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        if args.ops
        else nullcontext()
    )
    with profiler as prof:
        for _ in range(args.steps):
            step(True)
    total = sum(phases.values())
    print(
        f"{args.precision}: {args.steps} steps, {tokens / total:,.0f} target tokens/s "
        "(synchronized phases)"
    )
    print(f"{'phase':<22}{'ms/step':>9}{'share':>8}")
    for name, seconds in phases.items():
        print(f"{name:<22}{1000 * seconds / args.steps:>9.1f}{100 * seconds / total:>7.1f}%")
    if args.ops:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
