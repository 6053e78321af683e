"""Atomic replacement: a file or symlink a user can see changes all at once, or not at all.

Every file raisin writes outside a store path's build (the lock, profile
state, journals, keys, gc roots, cache files, exported bundles, converted
configs) goes through here: written to a temp name in the same directory,
flushed to disk, renamed over the target, and the directory flushed, so a
crash leaves the old content or the new one, never a torn file, and the
rename survives a power cut. A failed write removes its temp file.

Temp names are ``.<name>.tmp-<pid>-<random>``; the store's cleanup knows
the pattern (a dead pid's leftovers are removed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def temp_name(path: Path) -> Path:
    """A fresh temp name beside ``path``, unique per process and call."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def writing(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Stream the new content of ``path``; it replaces the old one only if the block succeeds."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``, atomically and durably."""
    with writing(path, mode=mode) as f:
        f.write(data)


def write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` (UTF-8), atomically and durably."""
    write_bytes(path, text.encode("utf-8"), mode=mode)


def replace_symlink(target: str | os.PathLike[str], link: Path) -> None:
    """Point ``link`` at ``target``, replacing what was there in one rename."""
    tmp = temp_name(link)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(link.parent)
