"""The activation root as activation sees it: the real directory, or a simulation of it.

Planning (``--dry-run``, and the check before a real switch) and undo run
the same code against a :class:`RootView`; a *dry* view records changes in
an overlay (paths made, paths gone) instead of making them, so a plan sees
the root as it will be after the earlier steps. Paths are relative to the
root; :meth:`RootView.physical` follows symlinked parent directories
(``lib -> usr/lib``) the way the host would, confined to the root like a
chroot.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from raisin_lock.errors import RaisinError

_MAX_HOPS = 40


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RootView:
    """The root as activation sees it. ``dry``: changes only update an overlay."""

    def __init__(self, root: Path, *, dry: bool) -> None:
        self.root = root
        self.dry = dry
        self._gone: set[str] = set()
        self._made: dict[str, tuple[str, str | None]] = {}  # rel -> (kind, sha or target)

    def host(self, rel: str) -> Path:
        return self.root / rel

    def _shadowed(self, rel: str) -> bool:
        parts = rel.split("/")
        return any("/".join(parts[:i]) in self._gone for i in range(1, len(parts) + 1))

    def kind(self, rel: str) -> str | None:
        if rel in self._made:
            return self._made[rel][0]
        if self._shadowed(rel):
            return None
        try:
            st = os.lstat(self.host(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return "symlink"
        return (
            "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        )

    def readlink(self, rel: str) -> str:
        if rel in self._made:
            return str(self._made[rel][1])
        return os.readlink(self.host(rel))

    def content_id(self, rel: str) -> str | None:
        """sha256 of a file, ``link:TARGET`` of a symlink, None otherwise."""
        k = self.kind(rel)
        if k == "file":
            if rel in self._made:
                return str(self._made[rel][1])
            return sha_file(self.host(rel))
        if k == "symlink":
            return "link:" + self.readlink(rel)
        return None

    def is_empty_dir(self, rel: str) -> bool:
        if self.kind(rel) != "dir":
            return False
        names = (
            set()
            if rel in self._made and not os.path.isdir(self.host(rel))
            else set(os.listdir(self.host(rel)))
        )
        names |= {
            m.rsplit("/", 1)[1]
            for m in self._made
            if m.startswith(rel + "/") and "/" not in m[len(rel) + 1 :]
        }
        return all(self.kind(f"{rel}/{n}") is None for n in names)

    def physical(self, rel: str) -> str:
        """``rel`` with symlinked parent directories followed, confined to the root."""
        parts = [p for p in rel.split("/") if p]
        done: list[str] = []
        hops = 0
        i = 0
        while i < len(parts) - 1:
            cand = "/".join([*done, parts[i]])
            if self.kind(cand) == "symlink":
                hops += 1
                if hops > _MAX_HOPS:
                    raise RaisinError(
                        f"too many levels of symlinks under {cand}", file=str(self.root)
                    )
                target = self.readlink(cand)
                base = [] if target.startswith("/") else list(done)
                for t in target.split("/"):
                    if t in ("", "."):
                        continue
                    if t == "..":
                        if base:
                            base.pop()
                    else:
                        base.append(t)
                parts = base + parts[i + 1 :]
                done, i = [], 0
                continue
            done.append(parts[i])
            i += 1
        return "/".join([*done, parts[-1]]) if parts else ""

    # ---- changes ---------------------------------------------------------

    def mkdir(self, rel: str) -> None:
        if self.dry:
            self._made[rel] = ("dir", None)
            self._gone.discard(rel)
        else:
            os.mkdir(self.host(rel), 0o755)

    def symlink(self, rel: str, target: str) -> None:
        if self.dry:
            self._made[rel] = ("symlink", target)
            self._gone.discard(rel)
        else:
            host_path = self.host(rel)
            tmp = host_path.with_name(f".{host_path.name}.raisin-tmp")
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(target, tmp)
            os.replace(tmp, host_path)

    def write(self, rel: str, src: Path | bytes, mode: int, sha: str) -> None:
        if self.dry:
            self._made[rel] = ("file", sha)
            self._gone.discard(rel)
            return
        host_path = self.host(rel)
        tmp = host_path.with_name(f".{host_path.name}.raisin-tmp")
        data = src if isinstance(src, bytes) else src.read_bytes()
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, host_path)

    def remove(self, rel: str) -> None:
        if self.dry:
            self._made.pop(rel, None)
            self._gone.add(rel)
        elif self.kind(rel) == "dir":
            os.rmdir(self.host(rel))
        else:
            os.unlink(self.host(rel))

    def rename(self, rel: str, to: str) -> None:
        if self.dry:
            k = self.kind(rel)
            self._gone.add(rel)
            self._made.pop(rel, None)
            self._made[to] = (k or "file", None)
        else:
            os.rename(self.host(rel), self.host(to))
