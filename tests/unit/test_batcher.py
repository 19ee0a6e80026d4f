"""The dynamic batcher behind `nmt serve`, with a fake search that records its calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from nmt_cli.serving.batcher import Batcher, BatchKey, QueueFull

GREEDY, BEAM = BatchKey(1, 1), BatchKey(4, 2)


class FakeSearch:
    """Answers `line@beam/n_best` per line; records each call's lines; fails on "boom"."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.times: list[float] = []  # monotonic seconds of each call
        self.threads: set[str] = set()
        self.gate = gate

    def __call__(self, lines: list[str], beam: int, n_best: int) -> list[str]:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(list(lines))
        self.times.append(time.monotonic())
        self.threads.add(threading.current_thread().name)
        if "boom" in lines:
            raise ValueError("boom")
        return [f"{line}@{beam}/{n_best}" for line in lines]


def run(
    scenario: Callable[[Batcher[str]], Awaitable[None]],
    search: FakeSearch,
    max_batch: int = 8,
    max_wait_s: float = 0.2,
    max_queue: int = 100,
) -> None:
    async def main() -> None:
        batcher = Batcher(search, max_batch, max_wait_s, max_queue)
        batcher.start()
        try:
            await scenario(batcher)
        finally:
            await batcher.stop()

    asyncio.run(main())


def test_concurrent_requests_are_searched_in_one_batch_and_each_gets_its_own_lines() -> None:
    search = FakeSearch()
    requests = [["a1", "a2"], ["b1"], [], ["c1", "c2", "c3"]]

    async def scenario(batcher: Batcher[str]) -> None:
        answers = await asyncio.gather(*(batcher.translate(r, GREEDY) for r in requests))
        assert answers == [[f"{line}@1/1" for line in r] for r in requests]
        assert batcher.stats.batches == 1 and batcher.stats.largest_batch == 6
        assert batcher.stats.requests == 4 and batcher.stats.queued == 0

    run(scenario, search)
    assert search.calls == [["a1", "a2", "b1", "c1", "c2", "c3"]]
    assert search.threads == {"nmt-search_0"}  # off the event loop's thread


def test_full_batches_go_at_once_and_the_rest_waits_for_company() -> None:
    search = FakeSearch()
    started = time.monotonic()

    async def scenario(batcher: Batcher[str]) -> None:
        answers = await asyncio.gather(*(batcher.translate([f"s{i}"], GREEDY) for i in range(5)))
        assert [a[0] for a in answers] == [f"s{i}@1/1" for i in range(5)]

    run(scenario, search, max_batch=2, max_wait_s=1.0)
    assert search.calls == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    waited = [t - started for t in search.times]
    assert waited[1] < 0.5 and waited[2] >= 0.9, waited


def test_requests_with_other_search_settings_go_in_their_own_batches() -> None:
    search = FakeSearch()

    async def scenario(batcher: Batcher[str]) -> None:
        keys = [GREEDY, BEAM, GREEDY, BEAM]
        answers = await asyncio.gather(
            *(batcher.translate([f"s{i}"], key) for i, key in enumerate(keys))
        )
        assert answers == [["s0@1/1"], ["s1@4/2"], ["s2@1/1"], ["s3@4/2"]]

    run(scenario, search)
    assert search.calls == [["s0", "s2"], ["s1", "s3"]]


def test_a_full_queue_refuses_the_request_and_keeps_the_queued_ones() -> None:
    search = FakeSearch()

    async def scenario(batcher: Batcher[str]) -> None:
        first = asyncio.create_task(batcher.translate(["a", "b", "c"], GREEDY))
        await asyncio.sleep(0)  # queued
        with pytest.raises(QueueFull, match="3 sentences are waiting"):
            await batcher.translate(["d", "e"], GREEDY)
        assert await first == ["a@1/1", "b@1/1", "c@1/1"]
        assert await batcher.translate(["d", "e"], GREEDY) == ["d@1/1", "e@1/1"]

    run(scenario, search, max_queue=4)


def test_a_request_that_fails_the_search_fails_alone() -> None:
    search = FakeSearch()

    async def scenario(batcher: Batcher[str]) -> None:
        good = batcher.translate(["x"], GREEDY)
        bad = batcher.translate(["y", "boom"], GREEDY)
        answers = await asyncio.gather(good, bad, return_exceptions=True)
        assert answers[0] == ["x@1/1"]
        assert isinstance(answers[1], RuntimeError)
        assert batcher.stats.failed == 1 and batcher.stats.requests == 1

    run(scenario, search)
    assert search.calls == [["x", "y", "boom"], ["x"], ["y", "boom"]]  # together, then alone


def test_a_request_that_gives_up_leaves_the_queue_unsearched() -> None:
    search = FakeSearch()

    async def scenario(batcher: Batcher[str]) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.translate(["late"], GREEDY), 0.05)
        assert batcher.stats.queued == 0
        assert await batcher.translate(["next"], GREEDY) == ["next@1/1"]

    run(scenario, search, max_wait_s=0.5)
    assert search.calls == [["next"]]


def test_the_event_loop_answers_while_a_batch_is_searched() -> None:
    gate = threading.Event()
    search = FakeSearch(gate)

    async def scenario(batcher: Batcher[str]) -> None:
        pending = asyncio.create_task(batcher.translate(["slow"], GREEDY))
        await asyncio.sleep(0.1)  # the batch is on the worker thread, blocked on the gate
        assert not pending.done() and batcher.stats.queued == 0
        gate.set()  # this coroutine ran meanwhile: the loop was free
        assert await pending == ["slow@1/1"]

    run(scenario, search, max_wait_s=0.0)


def test_stopping_answers_every_queued_request_first() -> None:
    search = FakeSearch()

    async def main() -> None:
        batcher = Batcher(search, 8, 30.0, 100)  # would wait 30 s for company
        batcher.start()
        pending = [asyncio.create_task(batcher.translate([f"s{i}"], GREEDY)) for i in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await batcher.stop()
        assert time.monotonic() - started < 5
        assert [await p for p in pending] == [["s0@1/1"], ["s1@1/1"], ["s2@1/1"]]
        with pytest.raises(RuntimeError, match="stopping"):
            await batcher.translate(["after"], GREEDY)

    asyncio.run(main())
