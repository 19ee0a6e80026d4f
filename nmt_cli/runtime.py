"""Process-level settings: the few switches that act on the whole Python process.

Each is a plain function or context manager, called by the entry points that need it, never on
import. Their measured effect is in benchmarks/README.md.

- `long_lived()`: start-up (imports, model loading) runs with the cyclic garbage collector off,
  and what it made is frozen afterwards. Used by `nmt translate` around its imports and
  model loading.
- `keep_freed_memory()`: glibc's malloc keeps freed tensor memory for reuse instead of
  returning it to the OS. Used by `Translator.load` and `translate_stream`, so a script that
  translates gets the same memory behaviour as `nmt translate`, and by `nmt_cli.train.train`.
- `cap_kernel_caches()`: bounds oneDNN's and ideep's compiled-kernel caches. Used by
  `nmt train` before training starts.
- `log_to_console(quiet)`: log messages go to stderr through tqdm. Used by every command.
- `exit_now()`: ends the process without the interpreter's teardown. Used by `nmt translate`
  once all its output is written and closed, and by each rank of a training job (the reason
  is in `commands/train.py`).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt() parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's upper limit on 64-bit systems
_TRIM_THRESHOLD = 2**30
# Compiled CPU kernels kept per cache while training (each library's default is 1024).
_TRAINING_KERNEL_CACHE = "64"


def log_to_console(quiet: bool = False) -> None:
    """Send log messages to stderr, one plain line each, at INFO (WARNING if `quiet`).

    INFO records of nmt's own loggers always reach its other handlers (a run's train.log);
    `quiet` only filters the console.
    """
    console = _ConsoleHandler()
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    logging.getLogger("nmt_cli").setLevel(logging.INFO)


class _ConsoleHandler(logging.Handler):
    """Logs to stderr through tqdm, so messages don't tear a progress bar apart.

    A record logged with `extra={"console": False}` is for the other handlers (train.log) only.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console", True) is False:  # for the log file only
            return
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextmanager
def long_lived() -> Iterator[None]:
    """Run a block with the cyclic GC off, then freeze every object it left alive.

    Meant for start-up: `import torch` alone creates ~165k objects that live until exit, and
    left to the collector every full collection would rescan them, during start-up and again
    at interpreter exit. Frozen objects are never scanned; the GC is on again after the block.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the OS.

    Decoding allocates and frees a few buffers of 5-20 MB per step (logits, log-probs, beam
    candidates); a training step, tens of them (the loss's logits chunks, weight gradients).
    glibc's malloc serves blocks that size with mmap, or from the top of the heap and trims
    the heap once 2x that size is free, so each step's fresh buffers would fault their pages
    in again, zeroed by the kernel. With a fixed mmap threshold above those sizes and a
    high trim threshold they are reused from the heap. Results are unchanged. Idempotent.

    Returns:
        True if glibc took the settings; False (and nothing changed) off glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, libc's among them
    except (OSError, AttributeError, TypeError):  # no mallopt: macOS, Windows
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def cap_kernel_caches() -> None:
    """Keep at most 64 compiled CPU kernels in oneDNN's and ideep's caches (for training).

    Each caches up to 1024 kernels, one per shape, and every training batch brings new shapes,
    so a training process's memory keeps growing; at 64 it stays flat at the same speed.
    Translation keeps the default: there a few hundred shapes recur (one per count of live
    rows), and a small cache would rebuild kernels over and over. Both libraries read the
    setting when they build their first kernel, so call this before training starts. A value
    already set in the environment wins.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", _TRAINING_KERNEL_CACHE)
    os.environ.setdefault("LRU_CACHE_CAPACITY", _TRAINING_KERNEL_CACHE)


def exit_now() -> None:
    """End the process with status 0, skipping the interpreter's teardown.

    With torch loaded, the teardown (module cleanup, final garbage collections) is a sizeable
    part of a short command's run and does nothing a finished command needs. Call it only when
    every file the command wrote is closed: buffered data in open files other than stdout and
    stderr is lost, and atexit handlers do not run.

    A rank of a distributed job must end this way: once DDP has wrapped a model, torch keeps
    the gloo group's worker threads alive past destroy_process_group, and a worker that lets
    go of the last collective's tensors while the interpreter shuts down needs the GIL; the
    rank then dies of SIGABRT ("terminate called without an active exception", about 1 run
    in 40 here).

    Raises:
        OSError: flushing stdout or stderr failed (e.g. a closed pipe); the process does not
            exit then, so the caller's usual error handling reports it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
