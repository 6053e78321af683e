"""The NAR format's tokens and the directory-handle walk both directions share.

A NAR is a sequence of length-prefixed, zero-padded strings (see
:mod:`raisin_lock.nar`). The writer (:mod:`.writer`) emits these tokens and
the strict reader (:mod:`.reader`) expects exactly them, so they are defined
once here. :class:`DirStack` keeps the directory fds along a path so both
sides work one path component at a time, at any depth.
"""

from __future__ import annotations

import os
import struct
import sys

CHUNK = 1 << 20
"""Upper bound on the size of every chunk :func:`iter_dump` yields."""

SMALL = 128 << 10  # files up to this size are read whole and batched
FLUSH = CHUNK - SMALL - (16 << 10)  # flush early enough that a batch stays <= CHUNK
MAX_TOKEN = 4096  # longest non-contents string restore accepts (names, targets)
MAX_FDS = 64  # directory fds kept open along the current path
RING = 12  # chunks in flight between hash_path's two threads (<= 1 MiB each)
U64 = struct.Struct("<Q")
pack_u64 = U64.pack
PAD = b"\0" * 8
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FSENC = sys.getfilesystemencoding()
FSERR = sys.getfilesystemencodeerrors()


def token(data: bytes) -> bytes:
    """One NAR string token: length, bytes, zero padding to 8."""
    n = len(data)
    return pack_u64(n) + data + PAD[: -n % 8]


MAGIC = token(b"nix-archive-1")
OPEN = token(b"(")
CLOSE = token(b")")
TYPE = token(b"type")
REGULAR = token(b"regular")
EXECUTABLE = token(b"executable") + token(b"")
CONTENTS = token(b"contents")
SYMLINK = token(b"symlink")
TARGET = token(b"target")
DIRECTORY = token(b"directory")
ENTRY = token(b"entry")
NAME = token(b"name")
NODE = token(b"node")

ENTRY_NAME = ENTRY + OPEN + NAME  # an entry up to its name
NODE_TYPE = NODE + OPEN + TYPE  # after the name, up to the node's type
HEAD_REG = OPEN + TYPE + REGULAR + CONTENTS
HEAD_EXE = OPEN + TYPE + REGULAR + EXECUTABLE + CONTENTS
HEAD_LNK = OPEN + TYPE + SYMLINK + TARGET
HEAD_DIR = OPEN + TYPE + DIRECTORY
ENTRY_REG = NODE_TYPE + REGULAR + CONTENTS
ENTRY_EXE = NODE_TYPE + REGULAR + EXECUTABLE + CONTENTS
ENTRY_LNK = NODE_TYPE + SYMLINK + TARGET
ENTRY_DIR = NODE_TYPE + DIRECTORY
CLOSE2 = CLOSE + CLOSE  # end of a node and of the entry holding it
TAIL = [PAD[:k] + CLOSE2 for k in range(8)]  # after contents needing k bytes of padding


class DirStack:
    """Directory fds along the current path, never more than ``MAX_FDS`` open.

    Working relative to directory fds keeps every syscall to one path
    component, so trees deeper than ``PATH_MAX`` work and no symlink is ever
    followed. Deep trees would exhaust the fd limit, so the shallowest fds are
    closed as the walk descends and reopened through ``..`` of the child as it
    climbs back (O(1) per level). Index 0 is the base and is never closed.
    """

    __slots__ = ("fds", "lo")

    def __init__(self, base_fd: int) -> None:
        self.fds = [base_fd]
        self.lo = 1  # fds[1:lo] are closed (-1); fds[lo:] are open

    def push(self, fd: int) -> None:
        fds = self.fds
        fds.append(fd)
        if len(fds) - self.lo > MAX_FDS:
            os.close(fds[self.lo])
            fds[self.lo] = -1
            self.lo += 1

    def pop(self) -> None:
        fds = self.fds
        fd = fds.pop()
        top = len(fds) - 1
        if top and top < self.lo:
            fds[top] = os.open("..", DIR_FLAGS, dir_fd=fd)
            self.lo = top
        os.close(fd)

    def close(self) -> None:
        """Close every fd but the base."""
        for fd in self.fds[self.lo :]:
            os.close(fd)
        del self.fds[1:]
        self.lo = 1
