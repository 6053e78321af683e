"""Store upkeep: sweeping leftovers, verifying, deleting (gc) and reindexing.

These are the operations that walk the whole store directory rather than one
path. They are :class:`~raisin_lock.store.local.Store` methods to callers;
the bodies live here to keep ``local.py`` about one path at a time. They see
the store through :class:`StoreView`, the few public methods they need, so
this module does not import ``local`` (which imports it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Protocol

from raisin_lock import nar
from raisin_lock.errors import RaisinError
from raisin_lock.store import locks, remote_marks, tree
from raisin_lock.store.db import Database
from raisin_lock.store.path_info import Damage, PathInfo
from raisin_lock.store_path import StorePath


class StoreView(Protocol):
    """What upkeep needs of a :class:`~raisin_lock.store.local.Store`."""

    root: Path

    def host_path(self, sp: StorePath) -> Path: ...

    def lock(self, sp: StorePath, *, wait: bool = True) -> AbstractContextManager[bool]: ...

    def store_lock(self) -> AbstractContextManager[None]: ...

    def entries(self) -> set[StorePath]: ...


TMP_NAME_RE = re.compile(r"-(\d+)-[a-z0-9_]+$")  # "<prefix>-<pid>-<random>"
NEEDS_REINDEX = "needs_reindex"  # meta key: set when a database is created
_DELETE_BATCH = 128  # paths locked at once by delete_many


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(store: StoreView, db: Database) -> list[str]:
    removed: list[str] = []
    with store.store_lock():
        entries = store.entries()
        for sp in sorted(entries - db.valid_subset(entries)):
            with store.lock(sp, wait=False) as held:
                # Re-check under the lock: it may have been registered since.
                if held and not db.is_valid(sp) and tree.remove(store.host_path(sp)):
                    removed.append(sp.base)
        removed.extend(_sweep_tmp(store))
    return removed


def _sweep_tmp(store: StoreView) -> list[str]:
    removed: list[str] = []
    tmp = store.root / ".raisin" / "tmp"
    for name in sorted(os.listdir(tmp)):
        m = TMP_NAME_RE.search(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        path = tmp / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            # A live lock means a forked child of the dead owner still uses it.
            if locks.try_lock_fd(fd) and tree.remove(path):
                removed.append(f".raisin/tmp/{name}")
        finally:
            os.close(fd)
    return removed


def verify(
    store: StoreView, db: Database | None, paths: Iterable[StorePath] | None
) -> list[Damage]:
    targets = sorted(paths) if paths is not None else (db.all_valid() if db else [])
    damages: list[Damage] = []
    for sp in targets:
        info = db.query(sp) if db is not None else None
        if info is None:
            damages.append(Damage(sp, "invalid", "registered", "not registered"))
            continue
        host = store.host_path(sp)
        if not os.path.lexists(host):
            if db is not None and db.is_valid(sp):  # not deleted by gc meanwhile
                damages.append(Damage(sp, "missing", info.nar_hash.sri, "no such file"))
            continue
        try:
            problem = tree.find_unnormalised(host)
            actual, _ = nar.hash_path(host)
        except (OSError, ValueError) as exc:
            damages.append(Damage(sp, "unreadable", info.nar_hash.sri, str(exc)))
            continue
        if problem is not None:
            damages.append(Damage(sp, "mode", "read-only, mtime 1", problem))
        if actual != info.nar_hash:
            damages.append(Damage(sp, "hash", info.nar_hash.sri, actual.sri))
    return damages


def delete_many(store: StoreView, db: Database, wanted: set[StorePath]) -> None:
    valid = db.valid_subset(wanted)
    refs: dict[StorePath, set[StorePath]] = {}
    for sp in sorted(valid):
        outside = db.referrers(sp) - wanted
        if outside:
            raise RaisinError(
                f"cannot delete {sp.base}: {min(outside).base} still refers to it",
                file=str(store.root),
                hint="delete its referrers too",
            )
        info = db.query(sp)
        refs[sp] = set(info.references & valid) - {sp} if info else set()
    order, cyclic = _topo(refs)
    batches = [order[i : i + _DELETE_BATCH] for i in range(0, len(order), _DELETE_BATCH)]
    for batch in [*batches, *([cyclic] if cyclic else [])]:
        with ExitStack() as stack:
            for sp in sorted(batch):  # sorted: two deleters cannot deadlock
                stack.enter_context(store.lock(sp))
            # Rows first, durably (synchronous=FULL); content only then. A
            # referrer registered meanwhile makes this fail (FK RESTRICT).
            db.delete_paths(batch)
            for sp in batch:
                remote_marks.forget(store.root, sp)
                tree.remove(store.host_path(sp))
    for sp in sorted(wanted - valid):
        with store.lock(sp):
            if not db.is_valid(sp):
                tree.remove(store.host_path(sp))


def reindex_locked(store: StoreView, db: Database) -> int:
    """Body of ``Store.reindex``; the caller holds the store-wide lock."""
    entries = store.entries()
    todo = sorted(entries - db.valid_subset(entries))
    digests = {sp.digest: sp for sp in db.all_valid()}
    digests.update((sp.digest, sp) for sp in todo)
    scanned: dict[StorePath, PathInfo] = {}
    for sp in todo:
        with store.lock(sp, wait=False) as held:
            host = store.host_path(sp)
            if not held or db.is_valid(sp) or tree.find_unnormalised(host) is not None:
                continue
            nar_hash, size, found = tree.hash_and_scan(host, digests)
            is_source = StorePath.make("source", nar_hash, sp.name) == sp
            scanned[sp] = PathInfo(
                path=sp,
                nar_hash=nar_hash,
                nar_size=size,
                references=frozenset(digests[d] for d in found),
                deriver=None,
                registration_time=int(time.time()),
                sandboxed=is_source,
                ca="source" if is_source else None,
            )
    graph = {sp: set(info.references) - {sp} for sp, info in scanned.items()}
    adopted = 0
    order, _cyclic = _topo(graph)  # paths on a reference cycle are not adopted
    for sp in reversed(order):  # references before their referrers
        info = scanned[sp]
        with store.lock(sp, wait=False) as held:
            host = store.host_path(sp)
            # Re-check: a builder may have replaced it since the scan.
            if not held or db.is_valid(sp) or not tree.root_is_normalised(host):
                continue
            others = info.references - {sp}
            if db.valid_subset(others) != others:
                continue  # a reference was not adopted
            db.add_paths([info])
            adopted += 1
    db.set_meta(NEEDS_REINDEX, None)
    return adopted


def _topo(graph: dict[StorePath, set[StorePath]]) -> tuple[list[StorePath], list[StorePath]]:
    """Order ``graph``'s nodes referrers first; also return the nodes on cycles.

    ``graph`` maps a path to the paths it refers to, self-references removed.
    """
    pending = {sp: 0 for sp in graph}
    for targets in graph.values():
        for t in targets:
            if t in pending:
                pending[t] += 1
    ready = sorted((sp for sp, n in pending.items() if n == 0), reverse=True)
    order: list[StorePath] = []
    while ready:
        sp = ready.pop()
        order.append(sp)
        del pending[sp]
        for t in sorted(graph[sp]):
            if t in pending:
                pending[t] -= 1
                if pending[t] == 0:
                    ready.append(t)
    return order, sorted(pending)
