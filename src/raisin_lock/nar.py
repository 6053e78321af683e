"""NAR: Nix's archive format, byte-identical to ``nix-store --dump``.

A NAR is a canonical serialisation of a file tree: only type, executable bit,
contents and symlink targets count; entries sorted by name bytes; every
string length-prefixed (u64 LE) and padded to 8 bytes. Its SHA-256 is the
content hash that pins sources and names store paths.

This first version is a plain recursive writer; see ``dump``/``hash_path``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Callable
from typing import Any

from .hashing import Hash

_PAD = b"\0" * 8


def _str(data: bytes) -> bytes:
    n = len(data)
    return struct.pack("<Q", n) + data + _PAD[: (-n) % 8]


def dump(path: str | os.PathLike[str], write: Callable[[bytes], Any]) -> int:
    """Serialise ``path`` as a NAR, calling ``write`` with chunks; return the size."""
    total = 0

    def emit(b: bytes) -> None:
        nonlocal total
        total += len(b)
        write(b)

    def node(p: bytes) -> None:
        st = os.lstat(p)
        emit(_str(b"("))
        emit(_str(b"type"))
        if stat.S_ISREG(st.st_mode):
            emit(_str(b"regular"))
            if st.st_mode & 0o100:
                emit(_str(b"executable") + _str(b""))
            emit(_str(b"contents"))
            emit(struct.pack("<Q", st.st_size))
            n = 0
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    n += len(chunk)
                    emit(chunk)
            emit(_PAD[: (-n) % 8])
        elif stat.S_ISLNK(st.st_mode):
            emit(_str(b"symlink") + _str(b"target") + _str(os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode):
            emit(_str(b"directory"))
            for name in sorted(os.listdir(p)):
                emit(_str(b"entry") + _str(b"(") + _str(b"name") + _str(name) + _str(b"node"))
                node(os.path.join(p, name))
                emit(_str(b")"))
        else:
            raise ValueError(f"{p.decode(errors='replace')}: unsupported file type for NAR")
        emit(_str(b")"))

    emit(_str(b"nix-archive-1"))
    node(os.fsencode(path))
    return total


def hash_path(path: str | os.PathLike[str]) -> tuple[Hash, int]:
    """SHA-256 of the NAR of ``path`` and the NAR's size."""
    h = hashlib.sha256()
    size = dump(path, h.update)
    return Hash(h.digest()), size
