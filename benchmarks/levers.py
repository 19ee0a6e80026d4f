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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from profile_train import PEER_WORKLOAD, training_setup

from nmt_cli.data import Batch
from nmt_cli.errors import NmtError
from nmt_cli.loss import generator_loss
from nmt_cli.model import decoder, gates, kernels, step_memory


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


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("--lever", choices=["attention", "gates"], required=True)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batches", type=at_least(4), default=20, help="3 warm up (>= 4)")
    parser.add_argument("--rounds", type=at_least(1), default=4)
    args = parser.parse_args()
    try:
        model, optimizer, stream, autocast = training_setup(
            args.data, PEER_WORKLOAD, args.precision
        )
    except NmtError as e:
        sys.exit(f"levers.py: {e}")
    batches = [next(stream) for _ in range(args.batches)]

    def train_step(batch: Batch) -> None:
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
