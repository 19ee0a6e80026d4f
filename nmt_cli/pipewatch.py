"""Stop soon after the reader of our output goes away (`nmt translate ... | head -2`).

A write to a pipe nobody reads fails with EPIPE, but `nmt translate` writes only after each
pool of up to 16 batches, so on its own it would learn of a closed pipe only after translating
another pool (on a large input, minutes of work nobody reads). A watcher thread waits in
`poll` on the output's file descriptor, which reports an error as soon as the pipe's last
reader closes, and raises `BrokenPipeError` in the main thread between two Python steps;
the command's usual handling (nmt_cli.app.user_errors) then ends the process quietly.
"""

from __future__ import annotations

import _thread
import errno
import os
import select
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


def _raise_broken_pipe(signum: int, frame: Any) -> None:
    raise BrokenPipeError(errno.EPIPE, "the output was closed")


def _is_pipe(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextmanager
def stop_when_closed(output: IO[Any]) -> Iterator[None]:
    """While the block runs, a closed `output` pipe raises BrokenPipeError in it.

    Does nothing when `output` is not a pipe or socket, outside the main thread, or where
    `poll` or `pthread_sigmask` is missing. Call it from the main thread only: the error is
    raised there.
    """
    try:
        fd = output.fileno()
        watchable = (
            _is_pipe(fd)
            and hasattr(select, "poll")
            and hasattr(signal, "pthread_sigmask")
            and threading.current_thread() is threading.main_thread()
        )
    except (OSError, ValueError):  # no file descriptor (e.g. a StringIO)
        watchable = False
    if not watchable:
        yield
        return
    done_r, done_w = os.pipe()  # written when the block ends, to wake the watcher
    previous = signal.signal(signal.SIGPIPE, _raise_broken_pipe)
    watcher = threading.Thread(target=_watch, args=(fd, done_r), daemon=True)
    # The watcher starts with every signal blocked, so Ctrl-C and SIGTERM reach the main
    # thread and interrupt its blocking reads (a signal taken by another thread would not).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        watcher.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        yield
    finally:
        os.write(done_w, b"x")
        watcher.join()
        signal.signal(signal.SIGPIPE, previous)
        os.close(done_r)
        os.close(done_w)


def _watch(fd: int, done: int) -> None:
    """Wait until `fd`'s reader closes (then interrupt the main thread) or `done` is written."""
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
    poller.register(done, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if done in events:
            return
        if events.get(fd, 0) & (select.POLLERR | select.POLLHUP):
            _thread.interrupt_main(signal.SIGPIPE)  # runs _raise_broken_pipe in the main thread
            return
