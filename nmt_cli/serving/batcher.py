"""Dynamic batching: the sentences of concurrent requests are searched together.

A request's lines join a queue. The batcher takes the oldest request, waits until
`max_wait_s` after it arrived (or until `max_batch` sentences with its search settings are
waiting), takes the waiting requests with those settings in arrival order, up to `max_batch`
sentences, and hands their lines to `search` in one call, on its own thread. `search` (a
`Translator.translate_lines`) sorts them by length, so one call is one length-sorted batch.
Each request gets back its own lines' results, in its own order.

The event loop only queues and routes, so it keeps answering (health checks, new requests)
while a batch is searched. Requests with other settings (beam, n_best) wait for a later batch.
A request that gives up (its timeout) leaves the queue; if its batch is already being searched,
its results are dropped. If a batch fails, each of its requests is searched again alone, so
one request that fails cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import monotonic
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")
# search(lines, beam, n_best) -> one result per line, in the order of `lines`.
Search = Callable[[list[str], int, int], list[R]]


class QueueFull(Exception):
    """More sentences are waiting than the queue holds; the request was not queued."""


@dataclass(frozen=True)
class BatchKey:
    """What requests searched in one batch share."""

    beam: int
    n_best: int


@dataclass
class _Request(Generic[R]):
    lines: list[str]
    key: BatchKey
    arrived: float  # monotonic seconds
    answer: asyncio.Future[list[R]]


@dataclass
class BatchStats:
    """What the batcher did so far (served by `GET /info`).

    Attributes:
        requests: requests answered (an empty request counts, with no batch).
        sentences: sentences searched.
        batches: calls of `search`: each one a length-sorted batch of up to max_batch
            sentences (more only when one request alone has more).
        largest_batch: the most sentences one call searched.
        failed: requests answered with an error.
        queued: sentences waiting now.
    """

    requests: int = 0
    sentences: int = 0
    batches: int = 0
    largest_batch: int = 0
    failed: int = 0
    queued: int = 0


class Batcher(Generic[R]):
    """Queues requests' lines and searches them in batches on one worker thread.

    Use inside a running event loop: `start()`, then `await translate(...)` from any number
    of tasks, then `await stop()`.
    """

    def __init__(
        self, search: Search[R], max_batch: int, max_wait_s: float, max_queue: int
    ) -> None:
        """
        Args:
            search: the blocking search, run on the worker thread.
            max_batch: sentences per batch (a single larger request is searched whole).
            max_wait_s: how long the oldest waiting request may wait for company.
            max_queue: sentences that may wait; more are refused with QueueFull.
        """
        self.search, self.max_batch, self.max_wait_s = search, max_batch, max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._waiting: deque[_Request[R]] = deque()
        self._arrival = asyncio.Event()
        self._closing = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-search")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Search every request still waiting, answer it, then end the worker thread."""
        self._closing = True
        self._arrival.set()
        if self._task is not None:
            await self._task
        self._worker.shutdown(wait=True)

    async def translate(self, lines: list[str], key: BatchKey) -> list[R]:
        """One request: its lines' results, in order, once its batch is searched.

        Raises:
            QueueFull: the queue has no room for `lines` (nothing was queued).
            RuntimeError: the batcher is stopping, or the search failed for these lines when
                searched alone (the error is logged).
        """
        if self._closing:
            raise RuntimeError("the server is stopping")
        if not lines:
            self.stats.requests += 1
            return []
        if self.stats.queued + len(lines) > self.max_queue:
            raise QueueFull(f"{self.stats.queued} sentences are waiting (at most {self.max_queue})")
        request = _Request(lines, key, monotonic(), asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self.stats.queued += len(lines)
        self._arrival.set()
        try:
            return await request.answer
        finally:  # answered, failed, or given up (cancelled): out of the queue either way
            if request in self._waiting:
                self._waiting.remove(request)
                self.stats.queued -= len(lines)

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            await self._search(batch)

    async def _next_batch(self) -> list[_Request[R]] | None:
        """Wait for the oldest request's batch to fill (or its time to pass) and take it.

        Returns None once stopping and nothing waits.
        """
        while not self._waiting:
            if self._closing:
                return None
            self._arrival.clear()
            await self._arrival.wait()
        oldest = self._waiting[0]
        deadline = oldest.arrived + self.max_wait_s
        while self._ready(oldest.key) < self.max_batch and not self._closing:
            remaining = deadline - monotonic()
            if remaining <= 0 or oldest not in self._waiting:
                break
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self._take(self._waiting[0].key) if self._waiting else []

    def _ready(self, key: BatchKey) -> int:
        return sum(len(r.lines) for r in self._waiting if r.key == key)

    def _take(self, key: BatchKey) -> list[_Request[R]]:
        """The waiting requests with `key`, oldest first, up to max_batch sentences in all."""
        taken: list[_Request[R]] = []
        size = 0
        for request in list(self._waiting):
            if request.key != key:
                continue
            if taken and size + len(request.lines) > self.max_batch:
                break  # first come, first served: no overtaking of a larger request
            taken.append(request)
            size += len(request.lines)
            self._waiting.remove(request)
        self.stats.queued -= size
        return taken

    async def _search(self, batch: list[_Request[R]]) -> None:
        """Search the batch's lines in one call and route each request its results."""
        live = [r for r in batch if not r.answer.done()]
        if not live:
            return
        try:
            results = await self._call(live)
        except Exception:
            if len(live) > 1:  # find the request that fails; the others still get answers
                for request in live:
                    await self._search([request])
                return
            log.exception("translation failed")
            self.stats.failed += 1
            if not live[0].answer.done():
                live[0].answer.set_exception(RuntimeError("translation failed"))
            return
        start = 0
        for request in live:
            mine = results[start : start + len(request.lines)]
            start += len(request.lines)
            self.stats.requests += 1
            if not request.answer.done():  # it may have timed out meanwhile
                request.answer.set_result(mine)

    async def _call(self, batch: list[_Request[R]]) -> list[R]:
        lines = [line for r in batch for line in r.lines]
        key = batch[0].key
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._worker, self.search, lines, key.beam, key.n_best)
        if len(results) != len(lines):  # never route a misaligned answer
            raise RuntimeError(f"{len(lines)} lines gave {len(results)} results")
        s = self.stats
        s.sentences += len(lines)
        s.batches += 1
        s.largest_batch = max(s.largest_batch, len(lines))
        return results
