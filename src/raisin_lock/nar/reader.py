"""Restoring a NAR: the strict, safe reader for untrusted archives.

Split from :mod:`raisin_lock.nar` (which writes and hashes NARs). Only the
canonical form is accepted (sorted unique names, zero padding, no trailing
data), so the hash returned always equals ``hash_path`` of the restored
tree; names with ``/``, ``.``, ``..`` or NUL, and absurd lengths are
refused with :class:`~raisin_lock.errors.UnsafeArchive`, and a partial tree
is removed.

Symlink targets are data, as in Nix: any non-empty target without NUL is
restored as it is (``bin/env -> /usr/bin/env`` is an ordinary build output,
and what realize builds, the caches must carry). Confinement comes from never
following a link instead: every file and directory is created by one name
relative to an open directory fd, exclusively and with ``O_NOFOLLOW``, and
names are unique within a directory, so nothing is ever written through a
link; the store's later steps (normalise, hash, remove) walk by directory
handle without following links either.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable

from raisin_lock.errors import UnsafeArchive
from raisin_lock.hashing import Hash
from raisin_lock.nar.format import (
    CHUNK,
    CLOSE,
    CLOSE2,
    CONTENTS,
    DIR_FLAGS,
    ENTRY,
    EXECUTABLE,
    MAGIC,
    MAX_TOKEN,
    NAME,
    NODE_TYPE,
    OPEN,
    PAD,
    TARGET,
    TYPE,
    U64,
    WRITE_FLAGS,
    DirStack,
)


def _unsafe(message: str) -> UnsafeArchive:

    return UnsafeArchive(message)


class _Reader:
    """Reads exact byte counts from ``read``, hashing and counting them.

    Never reads past what the grammar asks for, so a NAR embedded in a longer
    stream can be consumed exactly.
    """

    __slots__ = ("hash", "limit", "pending", "pending_len", "read", "size")

    def __init__(self, read: Callable[[int], bytes], limit: int | None) -> None:
        self.read = read
        self.hash = hashlib.sha256()
        self.size = 0
        self.limit = limit
        self.pending: list[bytes] = []  # small reads not hashed yet
        self.pending_len = 0

    def exact(self, n: int, partial: bool = False) -> bytes:
        """Exactly ``n`` bytes; fewer only at end of input with ``partial``."""
        if self.limit is not None and self.size + n > self.limit:
            raise _unsafe(f"NAR larger than the allowed {self.limit} bytes")
        data = self.read(n)
        if len(data) != n:
            data = self._more(data, n, partial)
        self.size += len(data)
        if n >= 4096:
            self.flush()
            self.hash.update(data)
        else:
            self.pending.append(data)
            self.pending_len += n
            if self.pending_len >= 65536:
                self.flush()
        return data

    def _more(self, data: bytes, n: int, partial: bool) -> bytes:
        """Complete a short read (streams may return less than asked)."""
        pieces = [data]
        got = len(data)
        while got < n:
            more = self.read(n - got)
            if not more:
                if partial:
                    break
                raise _unsafe(f"truncated NAR: needed {n} bytes at offset {self.size}")
            pieces.append(more)
            got += len(more)
        if got > n:
            raise _unsafe(f"read({n}) returned {got} bytes")
        return b"".join(pieces)

    def some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes, whatever the stream has ready (file contents)."""
        data = self.read(n)
        if not data:
            raise _unsafe(f"truncated NAR: file contents end at offset {self.size}")
        if len(data) > n:
            raise _unsafe(f"read({n}) returned {len(data)} bytes")
        self.size += len(data)
        self.flush()
        self.hash.update(data)
        return data

    def flush(self) -> None:
        if self.pending:
            self.hash.update(b"".join(self.pending))
            self.pending.clear()
            self.pending_len = 0

    def token(self, what: str) -> bytes:
        """One string token (not file contents), at most MAX_TOKEN bytes."""
        n = U64.unpack(self.exact(8))[0]
        if n > MAX_TOKEN:
            raise _unsafe(f"malformed NAR: {what} of {n} bytes at offset {self.size - 8}")
        pad = -n % 8
        data = self.exact(n + pad)
        if pad and data[n:] != PAD[:pad]:
            raise _unsafe(f"malformed NAR: non-zero padding at offset {self.size - pad}")
        return data[:n] if pad else data

    def expect(self, raw: bytes, what: str) -> None:
        """The exact bytes of one or more constant tokens."""
        got = self.exact(len(raw), partial=True)
        if got != raw:
            if raw.startswith(got):
                raise _unsafe(f"truncated NAR: expected {what} at offset {self.size}")
            raise _unsafe(f"malformed NAR: expected {what}, got {_describe(raw, got)}")


def _describe(expected: bytes, got: bytes) -> str:
    """Name the first token of ``got`` that differs from ``expected``."""
    pos = 0
    while pos + 8 <= len(got):
        n = U64.unpack(got[pos : pos + 8])[0]
        end = pos + 8 + n + (-n % 8)
        if got[pos:end] != expected[pos:end]:
            if n <= 64 and end <= len(got):
                return repr(got[pos + 8 : pos + 8 + n].decode("utf-8", "replace"))
            return f"a token of {n} bytes"
        pos = end
    return "different bytes"


def _show(b: bytes) -> str:
    return repr(os.fsdecode(b[:200]))


def restore(
    read: Callable[[int], bytes],
    dest: str | os.PathLike[str] | bytes,
    *,
    max_size: int | None = None,
    require_eof: bool = True,
) -> tuple[Hash, int]:
    """Unpack an untrusted NAR read from ``read`` (a file's ``read``) at ``dest``.

    ``dest`` must not exist; its parent must. Returns the SHA-256 and size of
    the NAR bytes consumed; since only the canonical form is accepted, that is
    also :func:`hash_path` of the restored tree. The caller compares it with
    the expected hash.

    Modes: regular files end up 0o444, executables 0o555 (set once written),
    directories 0o755 so that the caller can still normalise, move or delete
    the tree; timestamps are left as they fall. The caller makes the result
    read-only when it registers it.

    Raises :class:`~raisin_lock.errors.UnsafeArchive` for anything but a
    canonical NAR: truncated input, unexpected tokens, non-zero padding,
    names that are empty, ``.``, ``..`` or contain ``/`` or NUL, names not
    strictly ascending, string tokens over 4 KiB, empty symlink targets or
    ones containing NUL (any other target is kept as it is), a NAR larger than ``max_size`` bytes (total, default unlimited), and, with
    ``require_eof`` (default), any data after the root node. With
    ``require_eof=False`` reading stops exactly at the end of the NAR.
    On any error, everything created at ``dest`` is removed and the error
    re-raised.
    """
    destb = os.path.abspath(os.fsencode(dest))
    parent, base = os.path.split(destb)
    if not base:
        raise ValueError(f"restore destination {os.fsdecode(destb)!r} has no name")
    r = _Reader(read, max_size)
    pfd = os.open(parent or b"/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    made: list[bool] = []  # non-empty once dest was created by us
    try:
        # lstat before writing anything, so an existing dest is never touched.
        try:
            os.lstat(base, dir_fd=pfd)
        except FileNotFoundError:
            pass
        else:
            raise FileExistsError(f"restore destination {os.fsdecode(destb)!r} already exists")
        r.expect(MAGIC, "'nix-archive-1'")
        r.expect(OPEN + TYPE, "'(' 'type'")
        try:
            _restore_tree(r, pfd, base, made)
            if require_eof and read(1):
                raise _unsafe(f"malformed NAR: trailing data after the root node at {r.size}")
        except BaseException:
            if made:  # never remove what someone else created meanwhile
                _remove(pfd, base)
            raise
    finally:
        os.close(pfd)
    r.flush()
    return Hash(r.hash.digest()), r.size


_T_REGULAR = b"regular"
_T_SYMLINK = b"symlink"
_T_DIRECTORY = b"directory"


def _restore_tree(r: _Reader, pfd: int, base: bytes, made: list[bool]) -> None:
    """Parse the root node (after its ``( type``) and create it as ``base`` in ``pfd``.

    Appends to ``made`` as soon as ``base`` exists (every creation here is
    exclusive, so it is ours).
    """
    kind = r.token("node type")
    if kind == _T_REGULAR:
        _restore_file(r, pfd, base, made)
        r.expect(CLOSE, "')'")
        return
    if kind == _T_SYMLINK:
        r.expect(TARGET, "'target'")
        target = _link_target(r)
        os.symlink(target, base, dir_fd=pfd)
        made.append(True)
        r.expect(CLOSE, "')'")
        return
    if kind != _T_DIRECTORY:
        raise _unsafe(f"malformed NAR: expected a node type, got {_show(kind)}")
    os.mkdir(base, 0o755, dir_fd=pfd)
    made.append(True)
    dirs = DirStack(pfd)
    path: list[bytes] = []  # components of the current directory below the root
    prev: list[bytes] = [b""]  # last entry name seen in each open directory
    try:
        fd = os.open(base, DIR_FLAGS, dir_fd=pfd)
        dirs.push(fd)
        os.fchmod(fd, 0o755)
        while True:
            tok = r.exact(16)
            if tok == CLOSE:  # end of the current directory
                prev.pop()
                if not path:
                    break
                path.pop()
                dirs.pop()
                r.expect(CLOSE, "')' closing the entry")
                continue
            if tok != ENTRY:
                got = _describe(ENTRY, tok)
                raise _unsafe(f"malformed NAR: expected 'entry' or ')', got {got}")
            r.expect(OPEN + NAME, "'(' 'name'")
            name = r.token("entry name")
            if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
                raise _unsafe(f"NAR contains invalid file name {_show(name)}")
            if name <= prev[-1]:
                raise _unsafe(
                    f"NAR directory {_show(b'/'.join(path) or b'.')} is not sorted: "
                    f"{_show(name)} after {_show(prev[-1])}"
                )
            prev[-1] = name
            r.expect(NODE_TYPE, "'node' '(' 'type'")
            kind = r.token("node type")
            dfd = dirs.fds[-1]
            if kind == _T_REGULAR:
                _restore_file(r, dfd, name, None)
                r.expect(CLOSE2, "')' ')'")
            elif kind == _T_SYMLINK:
                r.expect(TARGET, "'target'")
                target = _link_target(r)
                os.symlink(target, name, dir_fd=dfd)
                r.expect(CLOSE2, "')' ')'")
            elif kind == _T_DIRECTORY:
                os.mkdir(name, 0o755, dir_fd=dfd)
                fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
                dirs.push(fd)
                os.fchmod(fd, 0o755)
                path.append(name)
                prev.append(b"")
            else:
                raise _unsafe(f"malformed NAR: expected a node type, got {_show(kind)}")
    finally:
        dirs.close()


def _link_target(r: _Reader) -> bytes:
    target = r.token("symlink target")
    if not target or b"\0" in target:
        raise _unsafe(f"NAR contains invalid symlink target {_show(target)}")
    return target


def _restore_file(r: _Reader, dfd: int, name: bytes, made: list[bool] | None) -> None:
    """Parse a regular node after its type and write it as ``name`` in ``dfd``."""
    tok = r.exact(16)
    mode = 0o444
    if tok == EXECUTABLE[:16]:
        r.expect(EXECUTABLE[16:] + CONTENTS, "'' 'contents'")
        mode = 0o555
    elif tok != CONTENTS:
        got = _describe(CONTENTS, tok)
        raise _unsafe(f"malformed NAR: expected 'executable' or 'contents', got {got}")
    size = U64.unpack(r.exact(8))[0]
    if r.limit is not None and r.size + size > r.limit:
        raise _unsafe(f"NAR larger than the allowed {r.limit} bytes")
    fd = os.open(name, WRITE_FLAGS, 0o600, dir_fd=dfd)
    if made is not None:
        made.append(True)
    try:
        disk = _disk() if size >= _WRITEBACK else None
        if disk is not None:
            disk.preallocate(fd, size)
        left = size
        flushed = written = 0
        while left:
            data = r.some(min(left, CHUNK))
            left -= len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            written += len(data)
            if disk is not None and written - flushed >= _WRITEBACK:
                disk.write_behind(fd, flushed, written - flushed)
                flushed = written
        pad = -size % 8
        if pad and r.exact(pad) != PAD[:pad]:
            raise _unsafe(f"malformed NAR: non-zero padding at offset {r.size - pad}")
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


_WRITEBACK = 8 << 20  # files this big are preallocated and written behind, 8 MiB at a time


class _Disk:
    """Two Linux calls ``os`` lacks, through libc: ``fallocate`` and ``sync_file_range``.

    Big files get both. ``preallocate`` reserves the whole file's blocks when
    it is created, in one call, so the filesystem's allocator does not run
    (and take its locks) page by page while the data streams in. ``write_behind``
    hands each written 8 MiB range to a writer thread that starts it on its way
    to the disk (``SYNC_FILE_RANGE_WRITE``): the disk works while the download
    goes on, and the fsync the store does before registering (durability,
    invariant 1) finds only the last ranges still in flight. The thread, not
    the restoring one, makes the call because starting writeback blocks when
    the disk's queue is full, and the restore must not stall on that.

    Measured on 2 cores, 1 GB substituted, same interleaved runs: starting each
    range and waiting for the one before (as raisin once did) made a median
    2.44 s; starting without waiting, in the restoring thread, 2.02 s. On a
    busier disk (curl + sync a median 2.50 s), that 2.17 s (best 1.87) against
    1.88 s (best 1.56) with preallocation and the writer thread, 10 rounds.
    Both only save time and never decide what is durable: when a call is
    missing or fails, or the writer falls ``QUEUE`` ranges behind, the range
    is left to the fsync.
    """

    QUEUE = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, int, int]] | None = None
        self._fallocate: Callable[[int, int, int, int], int] | None = None
        self._sync_range: Callable[[int, int, int, int], int] | None = None
        try:
            import ctypes

            libc = ctypes.CDLL(None)  # the interpreter's own libc: no ldconfig search
        except OSError:
            return
        fallocate = getattr(libc, "fallocate64", None)  # int fallocate(fd, mode, off, len)
        if fallocate is not None:
            fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            fallocate.restype = ctypes.c_int
            self._fallocate = fallocate
        sync_range = getattr(
            libc, "sync_file_range", None
        )  # int sync_file_range(fd, off, n, flags)
        if sync_range is not None:
            sync_range.argtypes = [
                ctypes.c_int,
                ctypes.c_longlong,
                ctypes.c_longlong,
                ctypes.c_uint,
            ]
            sync_range.restype = ctypes.c_int
            self._sync_range = sync_range

    def preallocate(self, fd: int, size: int) -> None:
        if self._fallocate is not None:
            self._fallocate(
                fd, 0, 0, size
            )  # mode 0 also sets the size; failing loses only the gain

    def write_behind(self, fd: int, off: int, n: int) -> None:
        if self._sync_range is None:
            return
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    self._queue = queue.Queue(self.QUEUE)
                    writer = threading.Thread(
                        target=self._writer,
                        args=(self._queue,),
                        name="raisin-writeback",
                        daemon=True,
                    )
                    writer.start()
        dup = os.dup(fd)
        try:
            self._queue.put_nowait((dup, off, n))
        except queue.Full:
            os.close(dup)

    def _writer(self, q: queue.Queue[tuple[int, int, int]]) -> None:
        call = self._sync_range
        assert call is not None
        while True:
            fd, off, n = q.get()
            try:
                call(fd, off, n, 2)  # SYNC_FILE_RANGE_WRITE: start writing this range, don't wait
            finally:
                os.close(fd)


@functools.cache
def _disk() -> _Disk:
    """The process's one :class:`_Disk` (and so one writer thread), made on first use."""
    return _Disk()


def _remove(pfd: int, base: bytes) -> None:
    """Delete ``base`` in ``pfd`` and everything below it, at any depth."""
    try:
        st = os.lstat(base, dir_fd=pfd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(base, dir_fd=pfd)
        return
    dirs = DirStack(pfd)
    try:
        fd = os.open(base, DIR_FLAGS, dir_fd=pfd)
        os.fchmod(fd, 0o700)
        dirs.push(fd)
        stack: list[list[str]] = [os.listdir(fd)]
        names: list[str] = []
        while stack:
            todo = stack[-1]
            dfd = dirs.fds[-1]
            if not todo:
                stack.pop()
                if names:
                    name = names.pop()
                    dirs.pop()
                    os.rmdir(name, dir_fd=dirs.fds[-1])
                continue
            name = todo.pop()
            try:
                os.unlink(name, dir_fd=dfd)
            except IsADirectoryError:
                fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
                os.fchmod(fd, 0o700)
                dirs.push(fd)
                names.append(name)
                stack.append(os.listdir(fd))
    finally:
        dirs.close()
    os.rmdir(base, dir_fd=pfd)
