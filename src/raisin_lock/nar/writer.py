"""NAR: Nix's archive format, byte-identical to ``nix-store --dump``.

What it is: a canonical serialisation of a file tree in which only what a
build can observe counts: the type of each node (regular file, symlink,
directory), whether a regular file is executable (the owner-execute bit,
``S_IXUSR``, exactly as Nix tests it), file contents, symlink targets, and
directory entry names. Owners, other mode bits, timestamps, hard links and
extended attributes are not recorded; directory entries are sorted by their
raw name bytes. The same tree therefore always gives the same bytes.

Why it exists: the SHA-256 of a NAR is the content hash that pins sources,
names store paths and is signed in binary caches (``.narinfo``), and NARs are
what caches and ``export``/``import`` ship around. A hash only means
something if every implementation serialises identically, so this module is
tested byte-for-byte against ``nix-store --dump``, ``nix-hash --type sha256``
and ``nix-store --restore``.

Grammar (every ``str`` is a little-endian u64 length, the bytes, then zero
padding to a multiple of 8)::

    nar       = str("nix-archive-1") node
    node      = str("(") str("type") body str(")")
    body      = str("regular") [str("executable") str("")] str("contents") str(CONTENTS)
              | str("symlink") str("target") str(TARGET)
              | str("directory") { str("entry") str("(") str("name") str(NAME)
                                   str("node") node str(")") }

The operations here:

* :func:`dump`, :func:`iter_dump` stream the NAR of a path (any depth, bounded
  memory, no Python recursion);
* :func:`hash_path` gives its SHA-256 and size, reading the tree on one thread
  while hashing on the caller's (the hashing releases the GIL);
* :func:`restore` unpacks an *untrusted* NAR, strictly: only the canonical form
  above is accepted (so the returned hash is also the hash of the restored
  tree), names must be safe and strictly ascending, nothing is written
  through a symlink (targets themselves are kept as they are, as in Nix), and
  a failure leaves nothing behind.

Stricter than Nix on purpose: ``nix-store --restore`` (2.8) accepts unsorted
entries (its sortedness check compares against a name reset for every entry),
ignores data after the root node, accepts a regular node without
``contents``, and leaves a partial tree behind
on error. raisin's reader refuses all of these and cleans up.

Startup matters (``raisin store hash`` is a whole process): this module
imports only cheap stdlib modules and :mod:`.hashing`; ``errors``,
``_thread`` and ``_queue`` are imported when first needed.

Version history:

    v1: "nix-archive-1", the only NAR version Nix has ever written; read and
        written here.
"""

from __future__ import annotations

import hashlib
import os
import stat

from raisin_lock.hashing import Hash
from raisin_lock.nar.format import (
    CHUNK,
    CLOSE,
    CLOSE2,
    DIR_FLAGS,
    ENTRY_DIR,
    ENTRY_EXE,
    ENTRY_LNK,
    ENTRY_NAME,
    ENTRY_REG,
    FILE_FLAGS,
    FLUSH,
    FSENC,
    FSERR,
    HEAD_DIR,
    HEAD_EXE,
    HEAD_LNK,
    HEAD_REG,
    MAGIC,
    PAD,
    RING,
    SMALL,
    TAIL,
    DirStack,
    pack_u64,
    token,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~10 ms of startup otherwise
    from collections.abc import Callable, Collection, Generator, Iterator
    from typing import TypeAlias, TypeVar

    T = TypeVar("T")
    Chunk: TypeAlias = "bytes | memoryview | _Handoff"  # what hash_path's reader sends

_KINDS = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def _unsupported(path: bytes, mode: int) -> ValueError:
    kind = _KINDS.get(stat.S_IFMT(mode), "special file")
    return ValueError(f"{os.fsdecode(path)}: unsupported file type ({kind}) for a NAR")


def _read_file(fd: int, size: int, path: bytes) -> Iterator[bytes]:
    """Exactly ``size`` bytes of ``fd``, in fresh chunks of at most CHUNK."""
    left = size
    while left:
        data = os.read(fd, min(left, CHUNK))
        if not data:
            raise _shrank(path)
        left -= len(data)
        yield data


def _shrank(path: bytes) -> ValueError:
    return ValueError(f"{os.fsdecode(path)}: file shrank while being archived")


def _read_rest(fd: int, view: memoryview, path: bytes) -> None:
    """Finish a short read of a small file (rare: a file being written)."""
    while view:
        n = os.readv(fd, [view])
        if not n:
            raise _shrank(path)
        view = view[n:]


def _listing(fd: int) -> list[tuple[bytes, os.DirEntry[str]]]:
    """A directory's entries sorted by raw name bytes, as Nix sorts them."""
    with os.scandir(fd) as it:
        entries = [(e.name.encode(FSENC, FSERR), e) for e in it]
    entries.sort()  # names are unique, so DirEntry objects are never compared
    return entries


def _chunks(
    root: str | os.PathLike[str] | bytes,
    take: Callable[[], memoryview],
    pack: Callable[[memoryview], T],
    contents: Callable[[int, int, bytes], Iterator[T]],
    exclude: frozenset[bytes] = frozenset(),
) -> Generator[T | bytes, None, None]:
    """The NAR of ``root`` as chunks of at most :data:`CHUNK` bytes.

    Headers, symlinks and small files are written straight into a buffer of
    ``CHUNK`` bytes from ``take()``, and each full buffer becomes one chunk
    through ``pack(view)``: few hash updates or writes, and no allocation per
    file, which matters more than it seems (fresh memory costs page faults).
    A larger file's contents come from ``contents(fd, size, path)``.
    The loop over a directory's entries is the hot path of hashing a source
    tree, hence its unrolled style.
    """
    rootb = os.fsencode(root)
    st = os.lstat(rootb)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        yield MAGIC + HEAD_LNK + token(os.readlink(rootb)) + CLOSE
        return
    if stat.S_ISREG(mode):
        fd = os.open(rootb, FILE_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _unsupported(rootb, st.st_mode)
            size = st.st_size
            yield MAGIC + (HEAD_EXE if st.st_mode & 0o100 else HEAD_REG) + pack_u64(size)
            yield from contents(fd, size, rootb)
            yield PAD[: -size % 8] + CLOSE
        finally:
            os.close(fd)
        return
    if not stat.S_ISDIR(mode):
        raise _unsupported(rootb, mode)

    open_, fstat, readv, close, readlink = os.open, os.fstat, os.readv, os.close, os.readlink
    u64, pad, tail, small, flush, file_flags = pack_u64, PAD, TAIL, SMALL, FLUSH, FILE_FLAGS
    names: list[bytes] = []  # path of the current directory below root

    def where(name: bytes) -> bytes:
        return os.path.join(rootb, *names, name)

    mv = take()
    head = MAGIC + HEAD_DIR
    mv[: len(head)] = head
    pos = len(head)
    dirs = DirStack(open_(rootb, DIR_FLAGS))
    try:
        top = _listing(dirs.fds[0])
        if exclude:  # names left out at the top level only (a checkout's .git)
            top = [e for e in top if e[0] not in exclude]
        stack = [iter(top)]
        while stack:
            if pos >= flush:  # also after directory entries alone (trees of empty dirs)
                yield pack(mv[:pos])
                mv = take()
                pos = 0
            dfd = dirs.fds[-1]
            for name, entry in stack[-1]:
                n = len(name)
                if entry.is_file(follow_symlinks=False):
                    fd = open_(name, file_flags, dir_fd=dfd)
                    try:
                        st = fstat(fd)
                        mode = st.st_mode
                        if mode & 0o170000 != 0o100000:
                            raise _unsupported(where(name), mode)
                        size = st.st_size
                        head = b"".join((
                            ENTRY_NAME, u64(n), name, pad[: -n % 8],
                            ENTRY_EXE if mode & 0o100 else ENTRY_REG, u64(size),
                        ))  # fmt: skip
                        end = pos + len(head)
                        mv[pos:end] = head
                        if size <= small:
                            pos = end + size
                            if size:
                                got = readv(fd, [mv[end:pos]])
                                if got != size:
                                    _read_rest(fd, mv[end + got : pos], where(name))
                            t = tail[-size % 8]
                            end = pos + len(t)
                            mv[pos:end] = t
                            pos = end
                        else:
                            yield pack(mv[:end])
                            yield from contents(fd, size, where(name))
                            mv = take()
                            t = tail[-size % 8]
                            mv[: len(t)] = t
                            pos = len(t)
                    finally:
                        close(fd)
                elif entry.is_dir(follow_symlinks=False):
                    fd = open_(name, DIR_FLAGS, dir_fd=dfd)
                    dirs.push(fd)
                    names.append(name)
                    head = b"".join((ENTRY_NAME, u64(n), name, pad[: -n % 8], ENTRY_DIR))
                    end = pos + len(head)
                    mv[pos:end] = head
                    pos = end
                    stack.append(iter(_listing(fd)))
                    break
                elif entry.is_symlink():
                    target = readlink(name, dir_fd=dfd)
                    tn = len(target)
                    head = b"".join((
                        ENTRY_NAME, u64(n), name, pad[: -n % 8],
                        ENTRY_LNK, u64(tn), target, pad[: -tn % 8], CLOSE2,
                    ))  # fmt: skip
                    end = pos + len(head)
                    mv[pos:end] = head
                    pos = end
                else:
                    raise _unsupported(where(name), entry.stat(follow_symlinks=False).st_mode)
                if pos >= flush:
                    yield pack(mv[:pos])
                    mv = take()
                    pos = 0
            else:
                # This directory is done: close its node, and its entry below the root.
                stack.pop()
                if names:
                    names.pop()
                    dirs.pop()
                    mv[pos : pos + 32] = CLOSE2
                    pos += 32
                else:
                    mv[pos : pos + 16] = CLOSE
                    pos += 16
        yield pack(mv[:pos])
    finally:
        dirs.close()
        close(dirs.fds[0])


def _one_buffer() -> Callable[[], memoryview]:
    """``take`` for a single-threaded consumer: one buffer, reused once packed."""
    view = memoryview(bytearray(CHUNK))
    return lambda: view


def iter_dump(path: str | os.PathLike[str] | bytes) -> Iterator[bytes]:
    """The NAR of ``path`` as a stream of ``bytes`` chunks, each at most 1 MiB.

    ``path`` may be a file, a directory or a symlink (which is archived as
    itself, never followed). Raises ``ValueError`` naming the path for a fifo,
    socket or device, or for a file that shrinks while it is read; ``OSError``
    for unreadable paths. Chunks already yielded stay valid (for uploads).
    """
    for chunk in _chunks(path, _one_buffer(), bytes, _read_file):
        if chunk:
            yield chunk


def dump(path: str | os.PathLike[str] | bytes, write: Callable[[bytes], object]) -> int:
    """Stream the NAR of ``path`` to ``write``; return its size in bytes.

    Same bytes as ``nix-store --dump PATH``; see :func:`iter_dump` for errors.
    """
    total = 0
    for chunk in iter_dump(path):
        write(chunk)
        total += len(chunk)
    return total


class _Handoff:
    """A large file whose contents :func:`hash_path`'s hashing thread reads itself."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, fd: int, size: int, path: bytes) -> None:
        self.fd = fd  # owned by the receiver, which closes it
        self.size = size
        self.path = path

    def hash_into(self, update: Callable[[memoryview], object], view: memoryview) -> None:
        try:
            left = self.size
            while left:
                n = os.readv(self.fd, [view[: min(left, len(view))]])
                if not n:
                    raise _shrank(self.path)
                update(view[:n])
                left -= n
        finally:
            os.close(self.fd)


def hash_path(
    path: str | os.PathLike[str] | bytes, *, exclude: Collection[str] = ()
) -> tuple[Hash, int]:
    """SHA-256 of the NAR of ``path`` (what ``nix-hash --type sha256`` prints) and its size.

    ``exclude``: names left out of a directory ``path``'s top level, as if
    absent (a local checkout's ``.git``).

    A reader thread walks the tree while this thread hashes; both the syscalls
    and ``hashlib`` release the GIL, so the two overlap. Small files and
    headers travel in 1 MiB buffers that come back to the reader once hashed
    (fresh memory costs page faults); a file over 128 KiB travels as a file
    descriptor that this thread reads, so that while it hashes a big file the
    reader already works through what follows. At most ``RING`` items are in
    flight, which bounds memory (~``RING`` MiB, only as much as the hashing
    lags behind) and open files. Errors are those of :func:`iter_dump`.

    ``_thread`` and ``_queue`` rather than ``threading``/``queue``: this runs
    once per ``raisin store hash`` process, where their import time shows.
    """
    import _thread

    try:
        from _queue import SimpleQueue
    except ImportError:  # pragma: no cover - non-CPython
        from queue import SimpleQueue

    items: SimpleQueue[Chunk | BaseException | None] = SimpleQueue()
    # One token per item in flight: the reader takes one before it fills a
    # buffer or hands off a file; this thread returns it once that is hashed
    # (after putting the buffer back on ``free``).
    tokens: SimpleQueue[None] = SimpleQueue()
    for _ in range(RING):
        tokens.put(None)
    stop = False
    done = _thread.allocate_lock()
    done.acquire()

    free: SimpleQueue[bytearray] = SimpleQueue()  # ring buffers hashed and reusable
    allocated = 0

    def take() -> memoryview:
        nonlocal allocated
        tokens.get()
        if free.empty() and allocated < RING:  # grow only as far as the hashing lags
            allocated += 1
            return memoryview(bytearray(CHUNK))
        return memoryview(free.get())

    def pack(view: memoryview) -> Chunk:
        return view

    def handoff(fd: int, size: int, where: bytes) -> Iterator[Chunk]:
        tokens.get()
        yield _Handoff(os.dup(fd), size, where)

    def produce() -> None:
        gen = _chunks(path, take, pack, handoff, frozenset(os.fsencode(x) for x in exclude))
        try:
            for chunk in gen:
                if stop:
                    break
                items.put(chunk)
            else:
                items.put(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            items.put(exc)
        finally:
            gen.close()
            done.release()

    _thread.start_new_thread(produce, ())
    h = hashlib.sha256()
    update = h.update
    size = 0
    view = memoryview(bytearray(CHUNK))
    finished = False
    try:
        while (item := items.get()) is not None:
            if isinstance(item, memoryview):  # a filled buffer
                update(item)
                size += len(item)
                free.put(item.obj)  # type: ignore[arg-type]  # the reader may now refill it
                tokens.put(None)
            elif isinstance(item, _Handoff):
                item.hash_into(update, view)
                size += item.size
                tokens.put(None)
            elif isinstance(item, bytes):  # a root file's or symlink's own header
                update(item)
                size += len(item)
            else:
                raise item
        finished = True
    finally:
        if not finished:  # stop the reader: it may be waiting for a token
            stop = True
            for _ in range(RING):
                tokens.put(None)
        done.acquire()  # the reader has exited and closed its files
        while not finished and not items.empty():
            item = items.get_nowait()
            if isinstance(item, _Handoff):
                os.close(item.fd)
    return Hash(h.digest()), size
