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
from collections.abc import Iterable
from pathlib import Path

from raisin_lock import nar
from raisin_lock.errors import BuildError
from raisin_lock.hashing import NIX_BASE32_ALPHABET, Hash
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


def _walk_preorder(top: Path, *, open_dirs: bool) -> list[tuple[str, os.stat_result]]:
    """Every entry under ``top`` (``top`` first), parents before children.

    With ``open_dirs`` a directory the owner cannot list or enter is given
    ``u+rwx`` first (the stat recorded is the one from before that change).
    Iterative, so deep trees do not hit Python's recursion limit.
    """
    out: list[tuple[str, os.stat_result]] = []
    stack = [os.fspath(top)]
    while stack:
        p = stack.pop()
        st = os.lstat(p)
        out.append((p, st))
        if stat.S_ISDIR(st.st_mode):
            if open_dirs and (st.st_mode & 0o700) != 0o700:
                os.chmod(p, stat.S_IMODE(st.st_mode) | 0o700)
            with os.scandir(p) as it:
                stack.extend(e.path for e in it)
    return out


def normalise(top: Path, *, fsync: bool) -> None:
    """Make the tree at ``top`` canonical (see module docstring), in place.

    Children are finished before their parent, so a tree whose *root* is
    canonical was normalised completely (``reindex`` relies on this). With
    ``fsync`` every file and directory is fsynced after its last change, so
    the content is durable before the caller registers it.

    Raises BuildError naming the first device file, fifo or socket found;
    the tree is then left as it is (still unregistered).
    """
    entries = _walk_preorder(top, open_dirs=True)
    for p, st in entries:
        kind = _kind(st.st_mode)
        if kind is not None:
            raise BuildError(
                f"{p}: a store path may not contain a {kind}",
                file=p,
                hint="remove it in the build steps (only files, directories and symlinks)",
            )
    # Reversed pre-order visits every child before its parent.
    for p, st in reversed(entries):
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            os.utime(p, (CANONICAL_MTIME, CANONICAL_MTIME), follow_symlinks=False)
            continue
        if stat.S_ISDIR(mode):
            want = DIR_MODE
            flags = os.O_RDONLY | os.O_DIRECTORY
        else:
            want = EXEC_MODE if mode & stat.S_IXUSR else FILE_MODE
            flags = os.O_RDONLY
        os.chmod(p, want)
        os.utime(p, (CANONICAL_MTIME, CANONICAL_MTIME))
        if fsync:
            fsync_path(p, flags)


def fsync_path(p: str | os.PathLike[str], flags: int = os.O_RDONLY) -> None:
    fd = os.open(p, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def find_unnormalised(top: Path) -> str | None:
    """Describe the first entry of ``top`` that is not canonical, or None."""
    for p, st in _walk_preorder(top, open_dirs=False):
        mode = st.st_mode
        kind = _kind(mode)
        if kind is not None:
            return f"{p}: is a {kind}"
        if not stat.S_ISLNK(mode):
            perm = stat.S_IMODE(mode)
            ok = {DIR_MODE} if stat.S_ISDIR(mode) else {FILE_MODE, EXEC_MODE}
            if perm not in ok:
                return f"{p}: mode {perm:#o}"
        if st.st_mtime != CANONICAL_MTIME:
            return f"{p}: mtime {int(st.st_mtime)}"
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
    """Delete ``top`` (file, symlink or read-only tree); False if absent."""
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(top)
        return True
    # Give every directory u+rwx first, so entries can be unlinked.
    _walk_preorder(top, open_dirs=True)
    shutil.rmtree(top)
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
