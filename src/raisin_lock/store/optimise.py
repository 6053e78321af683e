"""``store optimise``: one inode for every set of identical files in the store.

As in Nix, a link farm ``.raisin/links/<sha256 of content>[x]`` (``x`` for
executables: the mode is part of the identity, since hard links share it)
holds one name for each distinct file content. Every regular file of every
valid path is hashed (unless its inode is already the farm's) and replaced
by a hard link to the farm entry. Files already canonical (read-only,
mtime 1) stay canonical, so ``store verify`` keeps passing.

A replacement is a hard link made under ``.raisin/tmp`` and renamed over the
file, so the file is never missing; the parent directory is made writable
for the rename and then put back to ``0555``/mtime 1, under the path's lock.
A busy path (being built or repaired) is skipped. gc removes farm entries
no store path uses any more (link count 1): :func:`sweep_links`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.store import tree
from raisin_lock.store.tree import CANONICAL_MTIME, DIR_MODE

if TYPE_CHECKING:
    from raisin_lock.store.local import Store

LINKS = "links"


@dataclass
class OptimiseResult:
    files_linked: int = 0
    bytes_saved: int = 0
    paths_skipped: int = 0


def _links_dir(store: Store) -> Path:
    return store.root / ".raisin" / LINKS


def _content_key(dfd: int, name: str, executable: bool) -> str:
    h = hashlib.sha256()
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    with open(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() + ("x" if executable else "")


def optimise(store: Store) -> OptimiseResult:
    res = OptimiseResult()
    links = _links_dir(store)
    links.mkdir(parents=True, exist_ok=True)
    farm_inodes = set()
    for e in os.scandir(links):
        farm_inodes.add(e.inode())
    tmp_dir = store.root / ".raisin" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for sp in store.all_valid():
        with store.lock(sp, wait=False) as held:
            if not held:
                res.paths_skipped += 1
                continue
            if not store.is_valid(sp):
                continue
            top = store.host_path(sp)
            if not top.is_dir() or top.is_symlink():
                continue
            # Directory handles, not paths: store paths may nest past PATH_MAX.
            for dfd, name, st in tree.walk(top):
                if not stat.S_ISREG(st.st_mode) or st.st_ino in farm_inodes:
                    continue
                key = _content_key(dfd, name, bool(st.st_mode & stat.S_IXUSR))
                entry = links / key
                try:
                    os.link(name, entry, src_dir_fd=dfd, follow_symlinks=False)
                    farm_inodes.add(st.st_ino)
                    continue
                except FileExistsError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.EMLINK:
                        continue
                    raise
                est = os.lstat(entry)
                if est.st_ino == st.st_ino:
                    continue
                if _replace(dfd, name, entry, tmp_dir):
                    res.files_linked += 1
                    res.bytes_saved += st.st_size
    return res


def _replace(dfd: int, name: str, entry: Path, tmp_dir: Path) -> bool:
    """Rename a new link to ``entry`` over ``name`` in the directory ``dfd``."""
    tmp = tmp_dir / f"optimise-{os.getpid()}-{os.urandom(6).hex()}"
    try:
        os.link(entry, tmp)
    except OSError as exc:
        if exc.errno == errno.EMLINK:
            return False
        raise
    os.fchmod(dfd, 0o755)
    try:
        os.rename(tmp, name, dst_dir_fd=dfd)
    finally:
        os.fchmod(dfd, DIR_MODE)
        os.utime(dfd, (CANONICAL_MTIME, CANONICAL_MTIME))
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return True


def sweep_links(store: Store) -> int:
    """Delete farm entries no store path shares any more; return bytes freed."""
    links = _links_dir(store)
    freed = 0
    try:
        it = os.scandir(links)
    except FileNotFoundError:
        return 0
    with it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            if st.st_nlink == 1:
                os.unlink(e.path)
                freed += st.st_size
    return freed
