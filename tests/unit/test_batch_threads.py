"""Two search threads on the CPU: the same results as one batch at a time, every batch searched
once, the caller's autocast and thread count kept, the first error raised."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import torch

import nmt_cli.decoding as decoding
from nmt_cli import batch_threads
from nmt_cli.batch_threads import for_each_batch
from nmt_cli.config import ModelConfig
from nmt_cli.decoding import search_sorted
from nmt_cli.model import build_model, init_weights

CPU = torch.device("cpu")


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two intra-op threads, however many cores the host has; the count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_threaded_search_equals_one_batch_at_a_time(
    two_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(3)
    config = ModelConfig(emb_size=16, enc_hidden=32, dec_hidden=32, attn_hidden=16, dropout=0.0)
    model = build_model(config, 30, 30, joint_vocab=True)
    init_weights(model, 0.3)
    model.eval()
    g = torch.Generator().manual_seed(4)
    sources = [torch.randint(4, 30, (int(n),), generator=g) for n in torch.randint(1, 12, (37,))]
    searched_on: set[str] = set()
    search_batch = decoding.search_batch

    def recording(*args: object, **kwargs: object) -> object:
        searched_on.add(threading.current_thread().name)
        return search_batch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(decoding, "search_batch", recording)
    for beam in (1, 4):
        options = dict(beam=beam, alpha=0.6, max_len_a=1.5, max_len_b=4, n_best=min(beam, 2))
        searched_on.clear()
        threaded = search_sorted(model, sources, CPU, 6, **options)  # type: ignore[arg-type]
        assert len(searched_on) == 2 and all(n.startswith("nmt-search") for n in searched_on)
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(batch_threads, "WORKERS", 3)  # more workers than threads: one
        searched_on.clear()
        one_by_one = search_sorted(model, sources, CPU, 6, **options)  # type: ignore[arg-type]
        monkeypatch.setattr(batch_threads, "WORKERS", 2)
        assert searched_on == {threading.current_thread().name}
        for a, b in zip(threaded, one_by_one, strict=True):
            assert [h.tokens for h in a] == [h.tokens for h in b]
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


def test_every_batch_once_under_the_callers_autocast(two_threads: None) -> None:
    seen: list[tuple[int, bool, torch.dtype, int]] = []
    lock = threading.Lock()

    def work(batch: list[int]) -> None:
        time.sleep(0.002)
        with lock:
            seen.append(
                (
                    batch[0],
                    torch.is_autocast_enabled("cpu"),
                    torch.get_autocast_dtype("cpu"),
                    torch.get_num_threads(),
                )
            )

    with torch.autocast("cpu", dtype=torch.bfloat16):
        for_each_batch(work, list(range(20)), 1, CPU)
    assert sorted(b for b, *_ in seen) == list(range(20))
    assert {tuple(rest) for _, *rest in seen} == {(True, torch.bfloat16, 1)}
    assert torch.get_num_threads() == 2


def test_the_first_error_stops_both_threads_and_is_raised(two_threads: None) -> None:
    done: list[int] = []

    def work(batch: list[int]) -> None:
        if batch == [199]:  # the longest, handed out first
            raise ValueError("bad batch")
        time.sleep(0.005)
        done.append(batch[0])

    with pytest.raises(ValueError, match="bad batch"):
        for_each_batch(work, list(range(200)), 1, CPU)
    assert len(done) < 10  # the other thread stopped after the batch it was searching
    assert torch.get_num_threads() == 2


def test_other_devices_search_one_batch_at_a_time_in_order(two_threads: None) -> None:
    seen: list[tuple[list[int], str]] = []
    for_each_batch(lambda b: seen.append((b, threading.current_thread().name)), [3, 1, 2, 5, 4],
                   2, torch.device("cuda"))  # fmt: skip
    assert seen == [(b, threading.current_thread().name) for b in ([3, 1], [2, 5], [4])]


def test_batches_are_runs_of_consecutive_items(two_threads: None) -> None:
    seen: list[list[int]] = []
    for_each_batch(seen.append, list(range(11)), 3, CPU)
    assert sorted(seen) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]


class Interrupted(Exception):
    pass


def test_an_interrupt_of_the_caller_stops_after_the_batches_in_hand(two_threads: None) -> None:
    # pipewatch stops a translation whose reader went away with _thread.interrupt_main, which
    # runs the handler only when the main thread runs Python: the wait must not block.
    started: list[int] = []

    def work(batch: list[int]) -> None:
        started.append(batch[0])
        time.sleep(0.2)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        threading.Timer(0.3, _thread.interrupt_main, (signal.SIGUSR1,)).start()
        start = time.monotonic()
        with pytest.raises(Interrupted):
            for_each_batch(work, list(range(40)), 1, CPU)  # 4 s of work on two threads
        assert time.monotonic() - start < 1.5
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert len(started) < 10 and torch.get_num_threads() == 2
