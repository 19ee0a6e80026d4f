"""Search and scoring batches on two CPU threads, each with half of the intra-op threads.

A search step is dozens of small operations on a few hundred rows; with every core on each
operation, the cores spend much of the step waiting for each other and for the Python between
operations. Two batches searched side by side, each on half of the cores, keep them busy: on
a 2-core Xeon with AMX, translating test_2016 took a quarter less time (bf16 beam 5 ×0.77,
greedy ×0.69, fp32 beam 5 ×0.86; `benchmarks/README.md`, "Two search threads"). A batch's
result does not depend on which thread searched it or when: each one always runs with the same
thread count. fp32 results equal one thread's with all the cores; bf16 matmuls on fewer cores
round a few scores differently in the last bits.

The GPU runs one batch at a time (its kernels already fill it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch

WORKERS = 2
WAIT_SLICE = 0.05  # seconds

T = TypeVar("T")


def for_each_batch(
    work: Callable[[list[T]], None], items: Sequence[T], size: int, device: torch.device
) -> None:
    """Call `work(batch)` for every run of `size` consecutive items: on the CPU on `WORKERS`
    threads, the last batch first.

    `items` come shortest first (length-sorted); handing the batches out longest first lets
    the last, short ones even out the threads' finishing times. The first error stops both
    threads from taking more batches and is raised here.
    """
    batches = [list(items[start : start + size]) for start in range(0, len(items), size)]
    threads = torch.get_num_threads()
    if device.type != "cpu" or len(batches) < 2 or threads < WORKERS:
        for batch in batches:
            work(batch)
        return
    queue = iter(list(reversed(batches)))
    lock, failed = threading.Lock(), threading.Event()
    # Autocast is thread-local: the workers run under the caller's.
    autocast = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def worker() -> None:
        torch.set_num_threads(threads // WORKERS)  # this thread's OpenMP and MKL threads
        with torch.autocast("cpu", dtype=autocast[1], enabled=autocast[0]):
            while not failed.is_set():
                with lock:
                    batch = next(queue, None)
                if batch is None:
                    return
                try:
                    work(batch)
                except BaseException:
                    failed.set()
                    raise

    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="nmt-search")
    try:
        futures = [pool.submit(worker) for _ in range(WORKERS)]
        # Waits in short slices: a handler scheduled by `_thread.interrupt_main` (pipewatch's
        # closed-pipe stop) runs only once this thread runs Python again.
        while wait(futures, timeout=WAIT_SLICE).not_done:
            pass
        for future in futures:
            future.result()  # raises a worker's error
    finally:
        failed.set()  # after an error or an interrupt, no worker takes another batch
        pool.shutdown()
        # torch.set_num_threads also set the count that threads started later begin with
        torch.set_num_threads(threads)
