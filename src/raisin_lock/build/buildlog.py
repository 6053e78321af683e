"""A build's log: the builder's output, through a pipe, into the log file, capped.

A build that prints without end (a test suite in a loop, ``yes``) would
otherwise fill the disk with its log, and then nothing else works: gc frees
nothing (a log is not a store path) and the next build fails with an empty
log. Like Nix's ``max-build-log-size``, raisin caps a log: past
:data:`DEFAULT_MAX_LOG_SIZE` bytes (or ``RAISIN_MAX_LOG_SIZE``; ``0``: no
cap) the build is killed and fails with "build log exceeded N bytes". A log
that cannot be written (``ENOSPC``) kills and fails the build too, saying so.
The builder writes into a pipe and one raisin thread per build copies it,
so the cap holds to the byte whatever the builder's speed.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable, Mapping

from raisin_lock.errors import InputError

DEFAULT_MAX_LOG_SIZE = 64 * 1024 * 1024
_KEPT_ON_ENOSPC = 64 * 1024  # bytes of a log kept when the disk is full
_DRAIN = 1.0  # seconds to keep reading after the build is over (its last words)


def max_log_size(env: Mapping[str, str] | None = None) -> int:
    """The cap from ``RAISIN_MAX_LOG_SIZE`` (bytes; 0 = none), else the default."""
    text = (os.environ if env is None else env).get("RAISIN_MAX_LOG_SIZE", "").strip()
    if not text:
        return DEFAULT_MAX_LOG_SIZE
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(
            f"expected a number of bytes (0: no cap), found {text!r}", key="RAISIN_MAX_LOG_SIZE"
        )
    return value


class LogPump:
    """Copies a pipe into the log file up to ``limit`` bytes; calls ``on_stop`` when it must stop the build."""

    def __init__(self, path: str, limit: int) -> None:
        self.limit = limit
        self.failure: str | None = None  # why the build was stopped, if it was
        self.on_stop: Callable[[], None] = lambda: None
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 (closed in finish)
        self._read, self.write_fd = os.pipe()
        self._written = 0
        self._over = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raisin-log", daemon=True)

    def start(self) -> None:
        """After the builder is started: drop our copy of its end, start copying."""
        os.close(self.write_fd)
        self._thread.start()

    def finish(self) -> None:
        """After the builder is over: copy what is left (for at most a second), close."""
        self._over.set()
        self._thread.join()
        os.close(self._read)
        self._file.close()

    def abandon(self) -> None:
        """The builder could not be started."""
        os.close(self.write_fd)
        os.close(self._read)
        self._file.close()

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            if self._over.is_set():
                deadline = deadline or time.monotonic() + _DRAIN
                if time.monotonic() > deadline:
                    return  # a process outside the sandbox still holds the pipe
            ready, _, _ = select.select([self._read], [], [], 0.1)
            if not ready:
                if self._over.is_set():
                    return
                continue
            data = os.read(self._read, 65536)
            if not data:
                return
            if self.failure is None:
                self._write(data)

    def _write(self, data: bytes) -> None:
        room = self.limit - self._written if self.limit else len(data)
        try:
            self._file.write(data[:room])
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                # Give the space back (keeping the start): a full disk must not
                # outlive the build that filled it.
                self._file.truncate(min(self._written, _KEPT_ON_ENOSPC))
                self._stop("no space left on device (writing the build log)")
            else:
                self._stop(f"cannot write the build log: {exc.strerror}")
            return
        self._written += min(room, len(data))
        if len(data) > room:
            self._stop(f"build log exceeded {self.limit} bytes (RAISIN_MAX_LOG_SIZE)")

    def _stop(self, why: str) -> None:
        self.failure = why
        self.on_stop()
