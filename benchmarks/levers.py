"""A training-speed lever, on and off, in one process: whole training steps on the peer workload.

The same batches run with the lever off and on, alternating round by round (off first in odd
rounds, on first in even ones), so the host's drift falls on both; the per-round ratios on/off
are printed with their median. Levers:

- `attention`: one gradient bmm per sequence for the attention's keys and encoder states
  (`nmt_cli/model/step_memory.py`, on by default in nmt) against one per decoder step;
- `gates`: the decoder's LSTM gate arithmetic through `torch.compile` (inductor) against
  eager (not in nmt: measured and dropped, benchmarks/README.md).

    python benchmarks/levers.py DATA --lever attention [--precision bf16] [--batches 20]
        [--rounds 4]

DATA is a preprocessed folder (for example benchmarks/work/speed/data after speed.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from nmt_cli.config import load_config
from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.data import TrainBatches
from nmt_cli.loss import generator_loss
from nmt_cli.model import build_model, decoder, gates, init_weights, kernels, step_memory
from nmt_cli.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def lever_settings(lever: str) -> dict[str, Callable[[], None]]:
    """ "off" and "on": each sets the module attribute the lever swaps."""
    if lever == "attention":
        return {
            "off": lambda: setattr(decoder, "pass_attention", lambda a, k, m: a),
            "on": lambda: setattr(decoder, "pass_attention", step_memory.pass_attention),
        }
    compiled = torch.compile(gates.cell_update, dynamic=True)
    return {
        "off": lambda: setattr(kernels, "cell_update", gates.cell_update),
        "on": lambda: setattr(kernels, "cell_update", compiled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("--lever", choices=["attention", "gates"], required=True)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    config = load_config(
        ROOT / "benchmarks" / "configs" / "peer-workload.yaml",
        [f"train.precision={args.precision}"],
    )
    meta = load_meta(args.data)
    src_vocab = Tokenizer.load(args.data / meta["src_spm"]).vocab_size
    tgt_vocab = Tokenizer.load(args.data / meta["tgt_spm"]).vocab_size
    torch.manual_seed(1)
    model = build_model(config.model, src_vocab, tgt_vocab, meta["joint"])
    init_weights(model, 0.1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    stream = iter(
        TrainBatches(EncodedSplit.open(args.data, "train"), config.train.batch_tokens, 100, 1)
    )
    batches = [next(stream) for _ in range(args.batches)]
    autocast: Any = (
        torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    )

    def train_step(batch: Any) -> None:
        with autocast:
            state = model.encode(batch.src, batch.src_mask, batch.src_lengths)
            outputs, _ = model.decoder(batch.tgt_in, state)
            hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)
            loss = generator_loss(hidden, model.generator, batch.targets, 0.1)
        (loss / batch.n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    settings = lever_settings(args.lever)
    for name, apply in settings.items():  # warm-up: kernels, allocator, the compiler
        start = time.perf_counter()
        apply()
        for batch in batches[:3]:
            train_step(batch)
        print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    tokens = sum(batch.n_tokens for batch in batches)
    rates: dict[str, list[float]] = {name: [] for name in settings}
    for round_no in range(1, args.rounds + 1):
        order = ["off", "on"] if round_no % 2 else ["on", "off"]
        for name in order:
            settings[name]()
            start = time.perf_counter()
            for batch in batches:
                train_step(batch)
            rates[name].append(tokens / (time.perf_counter() - start))
            print(
                f"round {round_no} {args.lever} {name}: {rates[name][-1]:,.0f} target tok/s",
                flush=True,
            )
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    print(
        f"{args.lever} on/off, {args.precision}: median x{statistics.median(ratios):.3f} "
        f"(per round {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
