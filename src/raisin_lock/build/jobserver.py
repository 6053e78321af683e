"""A GNU make jobserver shared by every build one raisin process runs.

Without it, ``raisin realize -j 4`` running four builds that each call
``make`` with ``-j4`` would start sixteen compilers on a box with four
cores. GNU make already knows how to share a budget: a pipe holding one byte
("token") per job slot, passed down through ``MAKEFLAGS`` as
``--jobserver-auth=R,W``. Every make owns one implicit slot and reads a
token from the pipe before it starts each job beyond that, writing it back
when the job ends.

raisin plays the part of the top-level make: the scheduler takes one token
(:meth:`Jobserver.acquire`) before it starts a build -- that token is the
build's implicit slot -- and gives it back (:meth:`Jobserver.release`) when
the build is over. So with ``Jobserver(N)`` no more than N jobs run at once
across all builds, and an idle token is picked up by whichever build's make
wants one.

Make 4.3 (Debian 12) understands only the ``R,W`` pipe form; make 4.4 still
accepts it. Two things break the sharing and are worth knowing when writing
recipes:

- ``make -j`` or ``make -jN`` *on the command line* makes that make ignore
  the jobserver ("-jN forced in submake: resetting jobserver mode"). Steps
  should call plain ``make``: ``-jN`` already comes through ``MAKEFLAGS``.
- GNU make sets the pipe's (shared) read end non-blocking and leaves it
  so; :meth:`acquire` copes. A make killed with SIGKILL takes the tokens it
  held with it: :meth:`release` therefore tops the pipe back up to N
  whenever no build is running and nobody is waiting, so a cancelled build
  cannot shrink the budget for good.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
from types import TracebackType
from typing import Self

_TOKEN = b"+"  # what GNU make itself writes


class Jobserver:
    """A pipe holding ``tokens`` job slots, shared by concurrent builds."""

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError(f"a jobserver needs at least one token, got {tokens}")
        self.tokens = tokens
        # os.pipe() fds are non-inheritable: only the builds that are handed
        # them through ``pass_fds`` see them, never git or other helpers.
        self._read, self._write = os.pipe()
        self._lock = threading.Lock()
        self._held = 0  # tokens taken by acquire() and not yet released
        self._waiting = 0  # threads inside acquire()
        self._closed = False
        os.write(self._write, _TOKEN * tokens)
        # Non-blocking, as GNU make leaves it anyway: acquire() then waits in
        # select() and can notice a cancel.
        os.set_blocking(self._read, False)

    @property
    def fds(self) -> tuple[int, int]:
        """The (read, write) pipe fds, for ``subprocess``'s ``pass_fds``."""
        return (self._read, self._write)

    def makeflags(self, jobs: int) -> str:
        """``MAKEFLAGS`` for a build allowed ``jobs`` parallel jobs under this jobserver."""
        return f"-j{max(1, jobs)} --jobserver-auth={self._read},{self._write}"

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Take one token, blocking until one is free (the slot of one build).

        Returns False, holding nothing, when ``cancel`` is set meanwhile (a
        killed make may have taken the token we wait for with it)."""
        with self._lock:
            self._check_open()
            self._waiting += 1
        try:
            # A make in some build may win the race for a token, in which
            # case we simply wait for the next one. GNU make sets the shared
            # read end O_NONBLOCK (for its pselect) and leaves it so: wait
            # for readability and retry rather than fail on EAGAIN.
            while True:
                if cancel is not None and cancel.is_set():
                    return False
                try:
                    os.read(self._read, 1)
                    break
                except BlockingIOError:
                    select.select([self._read], [], [], None if cancel is None else 0.1)
        finally:
            with self._lock:
                self._waiting -= 1
        with self._lock:
            self._held += 1
        return True

    def release(self) -> None:
        """Give back a token taken by :meth:`acquire`."""
        with self._lock:
            self._check_open()
            if self._held == 0:
                raise RuntimeError("Jobserver.release() without a matching acquire()")
            self._held -= 1
            os.write(self._write, _TOKEN)
            if self._held == 0 and self._waiting == 0:
                self._refill()

    def available(self) -> int:
        """Tokens sitting in the pipe right now (for tests and diagnostics)."""
        return self._in_pipe()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._read)
            os.close(self._write)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _refill(self) -> None:
        # Called with the lock held, when no build runs (so no make can hold
        # or read a token) and no thread is blocked in acquire(): the pipe
        # must hold exactly ``tokens`` bytes. Tokens lost with a killed make
        # come back here.
        missing = self.tokens - self._in_pipe()
        if missing > 0:
            os.write(self._write, _TOKEN * missing)

    def _in_pipe(self) -> int:
        (count,) = struct.unpack("i", fcntl.ioctl(self._read, termios.FIONREAD, b"\0" * 4))
        return int(count)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the jobserver is closed")
