"""File-tree operations on the content of one store path.

A store path's content is a regular file, a symlink or a directory tree. This
module holds what the store does to such a tree on the host file system:
make it canonical (:func:`normalise`), hash it while looking for references
(:func:`hash_and_scan`), check that it is still canonical
(:func:`find_unnormalised`) and delete it even when it is read-only
(:func:`remove`). It knows nothing about the database or locks.

"Canonical" follows Nix's ``canonicalisePathMetaData``: regular files are
``0o444``, or ``0o555`` when the owner-execute bit was set; directories are
``0o555``; no setuid/setgid/sticky bits; every mtime (symlinks included) is
1; device files, fifos and sockets are refused. Deciding "executable" by the
owner bit, as the NAR format does, means normalising never changes a tree's
NAR hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from raisin_lock import nar
from raisin_lock.errors import BuildError
from raisin_lock.hashing import NIX_BASE32_ALPHABET, Hash
from raisin_lock.nar.format import DIR_FLAGS, DirStack
from raisin_lock.store_path import DIGEST_LEN

CANONICAL_MTIME = 1
FILE_MODE = 0o444
EXEC_MODE = 0o555
DIR_MODE = 0o555

# A "-" preceded by 32 Nix base32 characters (what store_path.DIGEST_BYTES_RE
# matches), written dash-first: re then jumps from "-" to "-" and only looks
# back there, 10-20x faster on text and binaries than trying every offset.
_REF_END_RE = re.compile(rb"-(?<=[" + NIX_BASE32_ALPHABET.encode() + rb"]{32}-)")

_SPECIAL = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def _kind(mode: int) -> str | None:
    """The name of a file type a store path must not contain, or None."""
    return _SPECIAL.get(stat.S_IFMT(mode))


Entry = tuple[int, str, os.stat_result]
"""``(dir_fd, name, lstat)``: one entry of a tree, named relative to an open parent."""


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    """A directory's entries with their lstat, stacked so ``pop()`` gives them in order."""
    with os.scandir(fd) as it:
        out = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    out.sort(reverse=True)
    return out


def walk(
    top: Path | str, *, open_dirs: bool = False, where: list[str] | None = None
) -> Iterator[Entry]:
    """Every entry of the tree at ``top``, children before their parent, ``top`` last.

    Each entry comes as ``(dir_fd, name, lstat)``: the open directory holding
    it and its one-component name, so whatever the caller does to it (chmod,
    utime, unlink, rmdir, open) is one syscall on one path component. That is
    what keeps trees deeper than ``PATH_MAX`` workable and symlinks never
    followed; :class:`~raisin_lock.nar.format.DirStack` (shared with the NAR
    writer and reader) bounds the fds held open. ``dir_fd`` is valid only
    until the next entry is asked for. A directory is yielded after all its
    children, so the caller may change or remove it then.

    With ``open_dirs`` a directory the owner cannot list, enter or write is
    given ``u+rwx`` before it is read (the lstat yielded is the one before).
    With ``where``, that list is kept equal to the path components of the
    entry's directory (for messages: ``os.path.join(*where, name)``).
    """
    path = os.path.abspath(os.fspath(top))
    parent, base = os.path.split(path)
    comps = where if where is not None else []
    comps[:] = [parent]
    pfd = os.open(parent, DIR_FLAGS)
    try:
        st = os.lstat(base, dir_fd=pfd)
        if not stat.S_ISDIR(st.st_mode):
            yield pfd, base, st
            return
        dirs = DirStack(pfd)
        try:
            stack = [(base, st, _enter(dirs, base, st, open_dirs))]
            comps.append(base)
            while stack:
                todo = stack[-1][2]
                while todo:
                    name, cst = todo.pop()
                    if stat.S_ISDIR(cst.st_mode):
                        stack.append((name, cst, _enter(dirs, name, cst, open_dirs)))
                        comps.append(name)
                        break
                    yield dirs.fds[-1], name, cst
                else:
                    name, dst, _ = stack.pop()
                    comps.pop()
                    dirs.pop()
                    yield dirs.fds[-1], name, dst
        finally:
            dirs.close()
    finally:
        os.close(pfd)


def _enter(
    dirs: DirStack, name: str, st: os.stat_result, open_dirs: bool
) -> list[tuple[str, os.stat_result]]:
    """Open directory ``name`` of the top of ``dirs``, push it, and list it."""
    dfd = dirs.fds[-1]
    if open_dirs and (st.st_mode & 0o700) != 0o700:
        os.chmod(name, stat.S_IMODE(st.st_mode) | 0o700, dir_fd=dfd)
    fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
    dirs.push(fd)
    return _listing(fd)


def _special(where: list[str], name: str, kind: str) -> BuildError:
    p = _show(where, name)
    return BuildError(
        f"{p}: a store path may not contain a {kind}",
        file=p,
        hint="remove it in the build steps (only files, directories and symlinks)",
    )


def _show(where: list[str], name: str) -> str:
    """``where/name`` for a message, its middle elided past 300 characters (deep trees)."""
    p = os.path.join(*where, name)
    return p if len(p) <= 300 else f"{p[:150]}...{p[-150:]}"


def normalise(top: Path, *, fsync: bool) -> None:
    """Make the tree at ``top`` canonical (see module docstring), in place.

    Children are finished before their parent, so a tree whose *root* is
    canonical was normalised completely (``reindex`` relies on this). With
    ``fsync`` every file and directory is fsynced after its last change, so
    the content is durable before the caller registers it. Works at any
    depth (see :func:`walk`) and never follows a symlink.

    Raises BuildError naming the first device file, fifo or socket found;
    the tree is then left unregistered, its root not canonical.
    """
    times = (CANONICAL_MTIME, CANONICAL_MTIME)
    where: list[str] = []
    for dfd, name, st in walk(top, open_dirs=True, where=where):
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            os.utime(name, times, dir_fd=dfd, follow_symlinks=False)
            continue
        kind = _kind(mode)
        if kind is not None:
            raise _special(where, name, kind)
        if stat.S_ISDIR(mode):
            want = DIR_MODE
            flags = os.O_RDONLY | os.O_DIRECTORY
        else:
            want = EXEC_MODE if mode & stat.S_IXUSR else FILE_MODE
            flags = os.O_RDONLY
        if not fsync:
            os.chmod(name, want, dir_fd=dfd)  # not a symlink: lstat said so
            os.utime(name, times, dir_fd=dfd, follow_symlinks=False)
            continue
        fd = os.open(name, flags | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        try:
            os.fchmod(fd, want)
            os.utime(fd, times)
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_path(p: str | os.PathLike[str], flags: int = os.O_RDONLY) -> None:
    fd = os.open(p, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def find_unnormalised(top: Path) -> str | None:
    """Describe the first entry of ``top`` that is not canonical, or None."""
    where: list[str] = []
    for _dfd, name, st in walk(top, where=where):
        mode = st.st_mode
        kind = _kind(mode)
        if kind is not None:
            return f"{_show(where, name)}: is a {kind}"
        if not stat.S_ISLNK(mode):
            perm = stat.S_IMODE(mode)
            ok = {DIR_MODE} if stat.S_ISDIR(mode) else {FILE_MODE, EXEC_MODE}
            if perm not in ok:
                return f"{_show(where, name)}: mode {perm:#o}"
        if st.st_mtime != CANONICAL_MTIME:
            return f"{_show(where, name)}: mtime {int(st.st_mtime)}"
    return None


def root_is_normalised(top: Path) -> bool:
    """Cheap check of the root only: true once :func:`normalise` finished."""
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return False
    mode = st.st_mode
    if _kind(mode) is not None:
        return False
    if stat.S_ISDIR(mode) and stat.S_IMODE(mode) != DIR_MODE:
        return False
    if stat.S_ISREG(mode) and stat.S_IMODE(mode) not in (FILE_MODE, EXEC_MODE):
        return False
    return st.st_mtime == CANONICAL_MTIME


class _RefScanner:
    """Feeds a NAR stream to SHA-256 while spotting candidate digests.

    Like Nix, references are found in the NAR stream (file contents, symlink
    targets, and also entry names). A reference is a 32-character digest
    followed by ``-``; the last 32 bytes of each chunk are carried over so a
    digest split between two chunks is still seen.
    """

    def __init__(self, digests: Iterable[str]) -> None:
        self.wanted = {d.encode() for d in digests}
        self.found: set[str] = set()
        self.sha = hashlib.sha256()
        self._tail = b""

    def write(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        if not self.wanted:
            return
        buf = self._tail + chunk
        for m in _REF_END_RE.finditer(buf):
            end = m.start()
            digest = buf[end - DIGEST_LEN : end]
            if digest in self.wanted:
                self.found.add(digest.decode())
        self._tail = buf[-DIGEST_LEN:]


def hash_and_scan(top: Path, digests: Iterable[str]) -> tuple[Hash, int, set[str]]:
    """NAR hash and size of ``top``, and which of ``digests`` occur in it."""
    scanner = _RefScanner(digests)
    size = nar.dump(top, scanner.write)
    return Hash(scanner.sha.digest()), size, scanner.found


def remove(top: Path) -> bool:
    """Delete ``top`` (file, symlink or read-only tree, at any depth); False if absent."""
    try:
        os.lstat(top)
    except FileNotFoundError:
        return False
    for dfd, name, st in walk(top, open_dirs=True):
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)
    return True


def copy(src: Path, dest: Path) -> None:
    """Copy a file, symlink or directory tree to ``dest`` (which must not
    exist), keeping symlinks as symlinks."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
    elif src.is_dir():
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest)
