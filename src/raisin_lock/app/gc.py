"""Garbage collection: delete every store path no root can reach.

**Roots** are registered under the store, in ``.raisin/gcroots/``, as
symlinks named by a hash of what they point to:

- ``lock-<hash>`` -> the absolute path of a lock realized in this store
  (``realize`` registers it). Every component's output is a root, its
  source a build-time root. If the lock file is gone the root no longer
  counts (and gc removes the link); if it changed, its new content counts.
- ``profiles-<hash>`` -> a ``profiles/`` directory that switched a profile
  in this store. Every generation link in it pointing into this store is a
  root; the build inputs its ``generation.json`` lists are build-time roots.

Paths reachable from a root through the database's references are live;
build-time roots (and what they reach) too, unless ``runtime_only``.

**Concurrency.** ``.raisin/gc.lock`` is flocked *exclusively* by gc for its
whole run, and *shared* by any process between "register my root" and "I
have seen which paths are valid" (:func:`guard`): ``realize`` registers its
lock root and plans under it, ``profile switch`` registers a generation and
links it under it. So a path a process decided to rely on is always rooted
before gc reads the roots, or gc has finished before the process looks.
Paths registered after gc listed the valid paths are never candidates; a
candidate whose per-path lock is held (being built, repaired or just
registered) is skipped, with everything it refers to.

After deleting, link-farm entries of ``store optimise`` that only the farm
still holds are deleted too (they are the bytes actually freed).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock import atomic
from raisin_lock.build import ccache, checkpoint
from raisin_lock.errors import RaisinError
from raisin_lock.lock import lockfile
from raisin_lock.profiles.generation import read_info
from raisin_lock.profiles.profile import LINK_RE
from raisin_lock.store import tree
from raisin_lock.store.optimise import OptimiseResult, sweep_links
from raisin_lock.store.optimise import optimise as optimise_store
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.app.project import Project
    from raisin_lock.store.local import Store

GCROOTS = "gcroots"
GC_LOCK = "gc.lock"


def _meta(store: Store) -> Path:
    return store.root / ".raisin"


@contextmanager
def guard(store: Store, *, exclusive: bool = False) -> Iterator[None]:
    """Hold the store's gc lock (shared: keep gc out; exclusive: be gc)."""
    meta = _meta(store)
    meta.mkdir(parents=True, exist_ok=True)
    fd = os.open(meta / GC_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _register(store: Store, kind: str, target: Path) -> None:
    target = target.absolute()
    d = _meta(store) / GCROOTS
    name = f"{kind}-{hashlib.sha256(str(target).encode()).hexdigest()[:32]}"
    link = d / name
    try:
        if os.readlink(link) == str(target):
            return
    except OSError:
        pass
    d.mkdir(parents=True, exist_ok=True)
    atomic.replace_symlink(str(target), link)


def register_lock_root(store: Store, lock_path: Path) -> None:
    """Root every component of the lock at ``lock_path`` (call under :func:`guard`)."""
    _register(store, "lock", lock_path)


def register_profiles_root(store: Store, profiles_dir: Path) -> None:
    _register(store, "profiles", profiles_dir)


@dataclass
class Roots:
    runtime: set[StorePath] = field(default_factory=set)
    build: set[StorePath] = field(default_factory=set)
    stale: list[Path] = field(default_factory=list)  # root links whose target is gone
    sources: list[str] = field(default_factory=list)  # what was read, for humans


def _in_store(store: Store, target: str) -> StorePath | None:
    t = Path(target)
    try:
        if t.parent.resolve() != store.root.resolve():
            return None
        return StorePath.parse(t.name)
    except (ValueError, OSError):
        return None


def find_roots(store: Store, extra_profiles: list[Path] = ()) -> Roots:  # type: ignore[assignment]

    roots = Roots()
    d = _meta(store) / GCROOTS
    profile_dirs = {p.absolute() for p in extra_profiles if p.is_dir()}
    try:
        entries = sorted(os.listdir(d))
    except FileNotFoundError:
        entries = []
    for name in entries:
        if name.startswith("."):
            continue
        link = d / name
        try:
            target = Path(os.readlink(link))
        except OSError:
            continue
        if not target.exists():
            roots.stale.append(link)
            continue
        if name.startswith("lock-"):
            try:
                lk = lockfile.read(target, shown=str(target))
            except RaisinError as exc:
                raise RaisinError(
                    f"cannot read the gc root {target}: {exc.message}",
                    file=str(link),
                    hint="fix or delete that lock (or this root link) before collecting garbage",
                ) from None
            roots.sources.append(str(target))
            for c in lk.components.values():
                roots.runtime.add(c.out)
                roots.build.add(c.source.store_path)
                if c.fetched is not None:
                    roots.build.add(c.fetched)
        elif name.startswith("profiles-"):
            profile_dirs.add(target)

    for pd in sorted(profile_dirs):
        try:
            names = os.listdir(pd)
        except OSError:
            continue
        for n in names:
            if not LINK_RE.match(n):
                continue
            try:
                sp = _in_store(store, os.readlink(pd / n))
            except OSError:
                continue
            if sp is None:
                continue
            roots.sources.append(str(pd / n))
            roots.runtime.add(sp)
            if store.is_valid(sp):
                try:
                    roots.build.update(read_info(store, sp).build_inputs)
                except RaisinError:
                    pass
    return roots


@dataclass
class GcResult:
    deleted: list[tuple[StorePath, int]] = field(default_factory=list)  # path, bytes freed
    kept_busy: list[StorePath] = field(default_factory=list)
    stale_roots: list[Path] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    links_freed: int = 0
    live: int = 0
    cache_freed: int = 0  # compiler cache entries unused for 30 days (build/ccache.py)

    @property
    def bytes_freed(self) -> int:
        return sum(b for _, b in self.deleted) + self.links_freed + self.cache_freed


def _freed_bytes(path: Path) -> int:
    """Bytes deleting ``path`` frees: files with no other hard link, plus symlinks and dirs."""
    total = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if st.st_nlink == 1 or stat.S_ISLNK(st.st_mode) else 0
    for _dfd, _name, s in tree.walk(path):  # by directory handle: any depth
        if stat.S_ISLNK(s.st_mode) or (not stat.S_ISDIR(s.st_mode) and s.st_nlink == 1):
            total += s.st_size
    return total


def collect(
    store: Store,
    *,
    dry_run: bool = False,
    runtime_only: bool = False,
    extra_profiles: list[Path] = (),  # type: ignore[assignment]
) -> GcResult:
    """Delete (or with ``dry_run`` list) every path unreachable from the roots."""
    res = GcResult()
    if not (store.root / ".raisin").is_dir():
        return res
    if dry_run:
        _collect(store, res, dry_run=True, runtime_only=runtime_only, extra=list(extra_profiles))
        return res
    with guard(store, exclusive=True):
        res.leftovers = store.cleanup()
        _collect(store, res, dry_run=False, runtime_only=runtime_only, extra=list(extra_profiles))
    return res


def _collect(
    store: Store, res: GcResult, *, dry_run: bool, runtime_only: bool, extra: list[Path]
) -> None:
    valid = set(store.all_valid())  # first: anything registered later is never a candidate
    roots = find_roots(store, extra)
    res.stale_roots = roots.stale
    wanted = roots.runtime | (set() if runtime_only else roots.build)
    live = store.closure(wanted & valid) if wanted & valid else set()
    res.live = len(live)
    dead = valid - live
    busy: set[StorePath] = set()
    for sp in sorted(dead) if not dry_run else ():  # (locking writes lock files)
        with store.lock(sp, wait=False) as held:
            if not held:
                busy.add(sp)
    if busy:
        keep = store.closure(busy & set(store.all_valid()))
        res.kept_busy = sorted(busy)
        dead -= keep | busy
    res.deleted = [(sp, _freed_bytes(store.host_path(sp))) for sp in sorted(dead)]
    if dry_run:
        return
    store.delete_many(dead)
    for link in roots.stale:
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass

    res.links_freed = sweep_links(store)


def gc(project: Project, *, dry_run: bool = False, runtime_only: bool = False) -> GcResult:
    """Collect the garbage of the project's store, its ``profiles/`` among the roots."""

    if not (project.store_root / ".raisin").is_dir():
        return GcResult()
    store = project.read_only_store() if dry_run else project.store(create=False)
    res = collect(
        store, dry_run=dry_run, runtime_only=runtime_only, extra_profiles=[project.profiles_dir]
    )
    if not dry_run:
        res.cache_freed = ccache.trim(project.store_root / ccache.CACHE_DIR)
        checkpoint.trim(project.store_root)
    return res


def optimise(project: Project) -> OptimiseResult:
    """Hard-link identical files of the project's store."""

    store = project.store(create=False)
    return optimise_store(store)
