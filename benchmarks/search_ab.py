"""Beam search alone, two trees' `nmt_cli/search.py` in one process: did a change slow it?

A fake decoder step (a fixed table of log-probs, V = 8000, eos rare so every sentence runs to
its limit) removes the model and most of the machine's noise; the two searches run in turn,
`--pairs` times, and the report is the median (and range) of the per-pair speed ratios, plus
whether both return identical hypotheses.

    python benchmarks/search_ab.py --base BASE_TREE [--pairs 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor

from nmt_cli import search as this

V, B, K, STEPS, BOS, EOS = 8000, 64, 5, 30, 2, 3


class State:
    def __init__(self, rows: Tensor) -> None:
        self.rows = rows

    def index_select(self, rows: Tensor, sources: Tensor | None = None) -> State:
        return State(self.rows[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("base_search", args.base / "nmt_cli/search.py")
    assert spec and spec.loader
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    torch.manual_seed(0)
    table = torch.log_softmax(torch.randn(64, V) * 3, dim=1)
    table[:, EOS] = -20.0

    def step(prev: Tensor, state: State) -> tuple[Tensor, State, None]:
        return table[(state.rows * 7 + prev) % 64].clone(), State(state.rows), None

    def run(module: object) -> list:
        limits = torch.full((B,), STEPS)
        return module.beam_search(step, State(torch.arange(B)), B, K, BOS, EOS, limits, 1.0, K)  # type: ignore[attr-defined]

    ratios = []
    for pair in range(args.pairs):
        seconds = {}
        for name, module in [("base", base), ("this", this)][:: 1 if pair % 2 else -1]:
            start = time.perf_counter()
            run(module)
            seconds[name] = time.perf_counter() - start
        ratios.append(seconds["base"] / seconds["this"])
        print(pair + 1, {k: round(v, 3) for k, v in seconds.items()}, flush=True)
    same = [[(h.tokens, h.score) for h in hs] for hs in run(base)] == [
        [(h.tokens, h.score) for h in hs] for hs in run(this)
    ]
    print(
        f"speed this / base: median x{statistics.median(ratios):.3f} "
        f"({min(ratios):.3f}-{max(ratios):.3f}), identical hypotheses: {same}"
    )


if __name__ == "__main__":
    main()
