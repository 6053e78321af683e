"""Advisory file locks (``flock``) that keep two raisin processes apart.

A lock is an exclusive ``flock`` on a file. ``flock`` belongs to the open file
description, so two threads of one process that each open the file exclude
each other too, and the kernel drops the lock when its holder dies (kill -9
included): a lock can never be left stale.

Lock files are deleted by the holder just before releasing them (as Nix's
``PathLocks`` does) so that ``locks/`` does not grow with every path ever
built. That opens a race, closed the same way as in Nix: whoever acquires a
lock checks that the file it locked still has a name (``st_nlink > 0``) and
otherwise retries with a fresh file.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from raisin_lock.errors import RaisinError


def acquire(lock_file: Path, *, wait: bool) -> int | None:
    """Lock ``lock_file`` (created if missing); return its fd, or None if busy."""
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RaisinError(
                f"cannot open lock file: {exc.strerror}", file=str(lock_file)
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise RaisinError(f"cannot lock: {exc.strerror}", file=str(lock_file)) from exc
        except BaseException:
            os.close(fd)
            raise
        if os.fstat(fd).st_nlink == 0:
            # The previous holder deleted it after we opened it: try again.
            os.close(fd)
            continue
        return fd


def release(fd: int, lock_file: Path | None) -> None:
    """Unlock ``fd``; first delete ``lock_file`` (still ours) if given."""
    try:
        if lock_file is not None:
            try:
                os.unlink(lock_file)
            except FileNotFoundError:
                pass
        # LOCK_UN (not just close) so a forked child sharing the fd cannot
        # keep the lock alive behind our back.
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def try_lock_fd(fd: int) -> bool:
    """Non-blocking exclusive lock on an already open fd."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True
