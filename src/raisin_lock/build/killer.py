"""Stopping a running build: every process of it, once, and never a stranger."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Killer:
    """Kills a build's processes once, unless the build is already over.

    In bwrap mode the target is the sandbox's pid-namespace init (bwrap's
    child, whose pid bwrap reports on ``--info-fd``), not bwrap: the kernel
    then kills every process in the namespace and init finishes exiting only
    once they are all gone, after which bwrap exits. So when ``run()`` has
    reaped bwrap, nothing of the build is left. (Killing bwrap first would
    let the namespace's processes outlive it by a few milliseconds.) Before
    bwrap has reported, and in ``none`` mode, the whole process group gets
    the SIGKILL.
    """

    _POLL = 0.05  # cancel latency; the build itself is waited for without polling

    def __init__(self, pgid: int, info_fd: int | None) -> None:
        self.pgid = pgid
        self.info_fd = info_fd
        self.killed = False
        self._done = threading.Event()
        self._lock = threading.Lock()

    def watch(self, cancel: threading.Event) -> None:
        while not self._done.is_set():
            if cancel.wait(self._POLL):
                self.kill()
                return

    def kill(self) -> None:
        with self._lock:
            if self._done.is_set() or self.killed:
                return
            init = self._sandbox_init()
            try:
                if init is not None:
                    os.kill(init, signal.SIGKILL)
                else:
                    os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.killed = True

    def finish(self) -> None:
        with self._lock:
            self._done.set()

    def _sandbox_init(self) -> int | None:
        if self.info_fd is None:
            return None
        try:
            info = json.loads(os.read(self.info_fd, 65536))
            pid = int(info["child-pid"])
            # Still bwrap's child (so not a recycled pid)?
            with open(f"/proc/{pid}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None
        return pid if ppid == self.pgid else None


@contextmanager
def cancel_on_exit(cancel: threading.Event) -> Iterator[None]:
    """Cancel the running builds when the loop leaves by an exception (Ctrl-C, SIGTERM).

    Entered after the thread pool, so it runs before the pool's exit waits
    for its workers: the builds are killed first, and the wait is short.
    """
    try:
        yield
    except BaseException:
        cancel.set()
        raise


def human_size(n: int) -> str:
    """``n`` bytes as people read them (``1.5 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
