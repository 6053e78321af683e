"""The local store: a directory of read-only store paths and its database.

A :class:`Store` is a host directory ``ROOT``. Each valid store path lives at
``ROOT/<digest>-<name>`` and is read-only; what is valid, and what refers to
what, is recorded in ``ROOT/.raisin/db.sqlite`` (see ``db.py``). The rest of
``.raisin/`` is ``locks/`` (one flock file per path being worked on, plus
``.store.lock`` for store-wide sweeps), ``tmp/`` (scratch directories, never
valid paths), ``logs/`` (build logs); other entries belong to other modules
and are left alone.

Crash safety (invariant 1) rests on one ordering: content first, record
second.

1. A path is built or copied at its final host path while its per-path lock
   is held (:meth:`Store.lock`, :meth:`Store.prepare_build`), or unpacked in
   ``tmp/`` and renamed into place under that lock (:meth:`Store.add_nar`).
2. :meth:`Store.register` normalises the tree bottom-up, fsyncing every file
   and directory after its last change, hashes it, fsyncs ``ROOT``, and only
   then inserts the row and its references in one transaction
   (``synchronous=FULL``: durable once COMMIT returns).
3. A crash before the commit leaves an unregistered directory whose lock is
   free; :meth:`Store.cleanup` (run at the start of every mutating command)
   deletes it. A crash after it leaves a complete registration.
4. Deletion runs the other way: rows first (durable), content second; a
   crash in between leaves unregistered content for ``cleanup``.

fsync of every file costs time on big trees; ``Store(fsync=False)`` skips it
(and keeps crash safety against kill -9, but not against power loss).

If the database is lost, the directory still holds the truth: a newly
created database is marked ``needs_reindex`` and the first writer adopts
every complete (fully normalised) unregistered path before anything may be
cleaned up, so a missing ``db.sqlite`` never makes ``cleanup`` wipe a store.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from raisin_lock import atomic, nar
from raisin_lock.errors import BuildError, HashMismatch, InputError, RaisinError
from raisin_lock.hashing import Hash
from raisin_lock.store import locks, remote_marks, tree, upkeep
from raisin_lock.store.db import Database
from raisin_lock.store.path_info import Damage, PathInfo
from raisin_lock.store_path import StorePath

__all__ = ["Damage", "PathInfo", "Store"]

_STORE_LOCK = ".store.lock"


def _hash_mismatch(what: str, expected: Hash, actual: Hash, *, file: str | None) -> HashMismatch:
    exc = HashMismatch(
        f"hash mismatch for {what}: expected {expected.sri}, got {actual.sri}", file=file
    )
    exc.expected = expected.sri  # type: ignore[attr-defined]
    exc.actual = actual.sri  # type: ignore[attr-defined]
    return exc


class Store:
    """A store directory and its database.

    Constructing one touches nothing; the database is opened on first use.
    Read methods never create or modify anything (on a store that does not
    exist they answer "nothing is valid"); the first write creates the
    layout (unless ``create=False``, which makes a missing store an error).

    One ``Store`` may be shared by the threads of a process; after a
    ``fork`` the child must make its own.
    """

    def __init__(self, root: Path | str, *, create: bool = True, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self._create = create
        self._fsync = fsync
        self._meta = self.root / ".raisin"
        self._db: Database | None = None
        self._retired: list[Database] = []
        self._open_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- layout and opening -------------------------------------------

    @property
    def db_path(self) -> Path:
        return self._meta / "db.sqlite"

    def host_path(self, sp: StorePath) -> Path:
        return self.root / sp.base

    def log_path(self, sp: StorePath) -> Path:
        return self._meta / "logs" / f"{sp.base}.log"

    def _lock_file(self, sp: StorePath) -> Path:
        return self._meta / "locks" / f"{sp.base}.lock"

    def _ensure_layout(self) -> None:
        if not self._create and not self._meta.is_dir():
            raise RaisinError(
                "no raisin store here", file=str(self.root), hint="check --store / RAISIN_STORE"
            )
        try:
            for sub in ("locks", "tmp", "logs"):
                (self._meta / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RaisinError(
                f"cannot create the store: {exc.strerror}", file=str(self.root)
            ) from exc

    def _reader(self) -> Database | None:
        with self._open_lock:
            if self._db is None:
                self._db = Database.open_existing(self.db_path)
            return self._db

    def _writer(self) -> Database:
        with self._open_lock:
            if self._db is None or self._db.readonly:
                self._ensure_layout()
                db, _ = Database.open_or_create(
                    self.db_path, initial_meta={upkeep.NEEDS_REINDEX: "1"}
                )
                if self._db is not None:
                    # Another thread may be mid-read on it: close it at close().
                    self._retired.append(self._db)
                self._db = db
                if db.get_meta(upkeep.NEEDS_REINDEX):
                    with self.store_lock():
                        if db.get_meta(upkeep.NEEDS_REINDEX):
                            upkeep.reindex_locked(self, db)
            return self._db

    @contextmanager
    def store_lock(self) -> Iterator[None]:
        """Store-wide lock for sweeps (cleanup, reindex) that must not overlap."""
        self._ensure_layout()
        fd = locks.acquire(self._meta / "locks" / _STORE_LOCK, wait=True)
        assert fd is not None
        try:
            yield
        finally:
            locks.release(fd, None)

    def close(self) -> None:
        with self._open_lock:
            for db in [*self._retired, *([self._db] if self._db else [])]:
                db.close()
            self._retired = []
            self._db = None

    def entries(self) -> set[StorePath]:
        """Everything under ROOT named like a store path, valid or not."""
        out: set[StorePath] = set()
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for name in names:
            if name.startswith("."):
                continue
            try:
                out.add(StorePath.parse(name))
            except ValueError:
                pass  # not ours: never touched
        return out

    # ---- queries -------------------------------------------------------

    def is_valid(self, sp: StorePath) -> bool:
        db = self._reader()
        return db is not None and db.is_valid(sp)

    def valid_subset(self, sps: Iterable[StorePath]) -> set[StorePath]:
        db = self._reader()
        return db.valid_subset(sps) if db is not None else set()

    def query(self, sp: StorePath) -> PathInfo | None:
        db = self._reader()
        return db.query(sp) if db is not None else None

    def unsandboxed_subset(self, sps: Iterable[StorePath]) -> set[StorePath]:
        """The valid paths among ``sps`` that were built with ``--sandbox none``."""
        db = self._reader()
        return db.unsandboxed_subset(sps) if db is not None else set()

    def closure(self, sps: Iterable[StorePath]) -> set[StorePath]:
        """``sps`` and everything they refer to, transitively; all must be valid."""
        wanted = set(sps)
        if not wanted:
            return set()
        db = self._reader()
        missing = wanted - (db.valid_subset(wanted) if db is not None else set())
        if missing or db is None:
            raise RaisinError(f"{min(missing).base} is not a valid store path", file=str(self.root))
        return db.closure(wanted)

    def referrers(self, sp: StorePath) -> set[StorePath]:
        """Valid paths that refer to ``sp`` (``sp`` itself excluded)."""
        db = self._reader()
        return db.referrers(sp) if db is not None else set()

    def all_valid(self) -> list[StorePath]:
        db = self._reader()
        return db.all_valid() if db is not None else []

    def derivation_output(self, drv_hash: str) -> StorePath | None:
        """The output path recorded for ``drv_hash`` (valid or not), or None."""
        db = self._reader()
        return db.derivation_output(drv_hash) if db is not None else None

    def record_derivation(self, drv_hash: str, out: StorePath, name: str) -> None:
        self._writer().record_derivation(drv_hash, out, name)

    # ---- locks and scratch space -----------------------------------------

    @contextmanager
    def lock(self, sp: StorePath, *, wait: bool = True) -> Iterator[bool]:
        """Hold ``sp``'s exclusive lock; yields False (not held) if busy and
        ``wait`` is False. Not re-entrant: locking a path twice in one
        thread deadlocks."""
        self._ensure_layout()
        lock_file = self._lock_file(sp)
        fd = locks.acquire(lock_file, wait=wait)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            locks.release(fd, lock_file)

    @contextmanager
    def tmpdir(self, prefix: str = "tmp") -> Iterator[Path]:
        """A fresh directory under ``.raisin/tmp`` (same file system as the
        store), removed afterwards even if read-only. Named
        ``<prefix>-<pid>-<random>`` and flocked, so ``cleanup`` can tell a
        live one from a leftover."""
        self._ensure_layout()
        safe = re.sub(r"[^A-Za-z0-9._+]", "_", prefix) or "tmp"
        path = Path(tempfile.mkdtemp(prefix=f"{safe}-{os.getpid()}-", dir=self._meta / "tmp"))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        locks.try_lock_fd(fd)
        try:
            yield path
        finally:
            try:
                tree.remove(path)
            finally:
                locks.release(fd, None)

    # ---- adding paths --------------------------------------------------

    def prepare_build(self, sp: StorePath) -> Path:
        """Clear the host path of ``sp`` for a build; caller holds ``lock(sp)``.

        Removes leftovers of an earlier, unregistered attempt. Returns the
        host path, which does not exist afterwards.
        """
        host = self.host_path(sp)
        if self.is_valid(sp):
            raise RaisinError(f"{sp.base} is already valid; refusing to replace it", file=str(host))
        self._ensure_layout()
        tree.remove(host)
        return host

    def register(
        self,
        sp: StorePath,
        *,
        candidates: Iterable[StorePath] = (),
        deriver: str | None = None,
        sandboxed: bool = True,
        ca: str | None = None,
        expected: Hash | None = None,
    ) -> PathInfo:
        """Make the complete content at ``host_path(sp)`` a valid path.

        Caller holds ``lock(sp)``. Normalises the tree (BuildError naming a
        device file, fifo or socket), hashes it, records as references the
        ``candidates`` (and ``sp`` itself) whose digests occur in it. If
        ``expected`` is given and differs, the content is deleted and
        HashMismatch raised.
        """
        by_digest = {c.digest: c for c in candidates}
        by_digest[sp.digest] = sp
        return self._register(
            sp,
            scan=by_digest,
            references=None,
            deriver=deriver,
            sandboxed=sandboxed,
            ca=ca,
            expected=expected,
        )

    def _register(
        self,
        sp: StorePath,
        *,
        scan: dict[str, StorePath] | None,
        references: frozenset[StorePath] | None,
        deriver: str | None,
        sandboxed: bool,
        ca: str | None,
        expected: Hash | None,
    ) -> PathInfo:
        host = self.host_path(sp)
        db = self._writer()
        if db.is_valid(sp):
            raise RaisinError(f"{sp.base} is already valid", file=str(host))
        if not os.path.lexists(host):
            raise BuildError(f"{sp.base} was not produced", file=str(host))
        try:
            tree.normalise(host, fsync=self._fsync)
            nar_hash, nar_size, found = tree.hash_and_scan(host, scan or ())
        except (OSError, ValueError) as exc:
            raise BuildError(f"cannot read the output {sp.base}: {exc}", file=str(host)) from exc
        if expected is not None and nar_hash != expected:
            tree.remove(host)
            raise _hash_mismatch(sp.base, expected, nar_hash, file=str(host))
        if references is None:
            references = frozenset((scan or {})[d] for d in found)
        if self._fsync:
            atomic.fsync_dir(self.root)
        info = PathInfo(
            path=sp,
            nar_hash=nar_hash,
            nar_size=nar_size,
            references=references,
            deriver=deriver,
            registration_time=int(time.time()),
            sandboxed=sandboxed,
            ca=ca,
        )
        remote_marks.forget(self.root, sp)
        db.add_paths([info])
        return info

    def add_tree(
        self, src_dir: Path, name: str, *, expected: Hash | None = None, ca: str = "source"
    ) -> PathInfo:
        """Copy a prepared source tree into the store, named by its NAR hash.

        Same content and name, same path: a second call copies nothing. If
        ``expected`` is given it must equal the tree's hash (HashMismatch).
        """
        src = Path(src_dir)
        try:
            nar_hash, _ = nar.hash_path(src)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the source tree: {exc}", file=str(src)) from exc
        if expected is not None and nar_hash != expected:
            raise _hash_mismatch(str(src), expected, nar_hash, file=str(src))
        sp = StorePath.make("source", nar_hash, name)
        info = self.query(sp)
        if info is not None:
            return info
        with self.lock(sp):
            info = self.query(sp)
            if info is not None:
                return info
            host = self.prepare_build(sp)
            try:
                tree.copy(src, host)
            except OSError as exc:
                raise InputError(f"cannot copy the source tree: {exc}", file=str(src)) from exc
            try:
                return self._register(
                    sp,
                    scan=None,
                    references=frozenset(),
                    deriver=None,
                    sandboxed=True,
                    ca=ca,
                    expected=nar_hash,
                )
            except HashMismatch as exc:
                raise HashMismatch(
                    f"{src} changed while it was being copied into the store", file=str(src)
                ) from exc

    def add_nar(
        self,
        read: Callable[[int], bytes],
        sp: StorePath,
        *,
        expected: Hash,
        references: Iterable[StorePath],
        deriver: str | None = None,
        sandboxed: bool = True,
        ca: str | None = None,
        max_size: int | None = None,
        before_register: Callable[[], None] | None = None,
        rehash: bool = True,
    ) -> PathInfo:
        """Unpack a NAR (substitution, import) as ``sp``, if its hash is ``expected``.

        The NAR is unpacked in ``tmp/``, its hash checked (HashMismatch: nothing
        is registered or left behind), the tree normalised and re-hashed, and
        renamed into place under ``lock(sp)``. ``references`` are recorded as
        given (no scan) and must be valid already (or ``sp`` itself).
        ``max_size`` bounds the NAR (UnsafeArchive past it); ``before_register``
        runs after the content checked out and before anything becomes
        visible (a download's file-hash check): if it raises, nothing is kept.
        ``rehash=False`` skips hashing the unpacked tree again: ``restore``
        accepts only canonical NARs, so the hash of the bytes it consumed is
        already the tree's (the re-hash only guards against a restore bug).
        If ``sp`` is already valid, nothing is read.
        """
        restore = nar.restore
        refs = frozenset(references)
        info = self.query(sp)
        if info is not None:
            return info
        db = self._writer()
        missing = refs - {sp} - db.valid_subset(refs)
        if missing:
            raise RaisinError(
                f"cannot add {sp.base}: it refers to {min(missing).base}, which is not valid",
                file=str(self.root),
            )
        with self.lock(sp):
            info = self.query(sp)
            if info is not None:
                return info
            with self.tmpdir("nar") as tmp:
                dest = tmp / sp.base
                try:
                    got, size = restore(read, dest, max_size=max_size)
                except RaisinError:
                    raise
                except (OSError, ValueError, EOFError) as exc:
                    raise InputError(f"cannot unpack the NAR of {sp.base}: {exc}") from exc
                if got != expected:
                    raise _hash_mismatch(f"the NAR of {sp.base}", expected, got, file=None)
                try:
                    tree.normalise(dest, fsync=self._fsync)
                    on_disk = tree.hash_and_scan(dest, ())[0] if rehash else got
                except (OSError, ValueError) as exc:
                    raise InputError(f"bad NAR content for {sp.base}: {exc}") from exc
                if on_disk != expected:
                    raise _hash_mismatch(f"the unpacked {sp.base}", expected, on_disk, file=None)
                if before_register is not None:
                    before_register()
                host = self.prepare_build(sp)
                os.rename(dest, host)
            try:
                if self._fsync:
                    atomic.fsync_dir(self.root)
                info = PathInfo(
                    path=sp,
                    nar_hash=expected,
                    nar_size=int(size),
                    references=refs,
                    deriver=deriver,
                    registration_time=int(time.time()),
                    sandboxed=sandboxed,
                    ca=ca,
                )
                remote_marks.forget(self.root, sp)
                db.add_paths([info])
            except BaseException:
                tree.remove(host)
                raise
            return info

    # ---- maintenance ---------------------------------------------------

    def repair(self, sp: StorePath, replacement: Path) -> None:
        """Replace a valid path's damaged content with ``replacement`` (a tree on this filesystem).

        The replacement is normalised and must hash to the recorded NAR hash
        (HashMismatch otherwise, and the damaged content stays): the record is
        the truth, repair only restores it. The swap is two renames under the
        path's lock; a crash between them leaves the path missing, which the
        next ``verify`` reports and ``--repair`` fixes again.
        """
        with self.lock(sp):
            info = self.query(sp)
            if info is None:
                raise InputError(f"{sp.base} is not a valid path", file=str(self.root))
            tree.normalise(replacement, fsync=self._fsync)
            actual, _ = nar.hash_path(replacement)
            if actual != info.nar_hash:
                raise _hash_mismatch(sp.base, info.nar_hash, actual, file=str(self.root))
            host = self.host_path(sp)
            trash = replacement.parent / f"damaged-{sp.digest}"
            if os.path.lexists(host):
                os.rename(host, trash)
            os.rename(replacement, host)
            if self._fsync:
                atomic.fsync_dir(self.root)
            if os.path.lexists(trash):
                tree.remove(trash)

    def replace_unsandboxed(
        self, sp: StorePath, replacement: Path, *, candidates: Iterable[StorePath], deriver: str
    ) -> PathInfo:
        """Like :meth:`repair` (caller holds ``lock(sp)``), but the record follows the
        sandboxed rebuild: an unsandboxed build's hash is no trusted record."""
        old = self.query(sp)
        if old is None or old.sandboxed:
            raise InputError(f"{sp.base} is not a valid unsandboxed path", file=str(self.root))
        scan = {c.digest: c for c in candidates}
        scan[sp.digest] = sp
        try:
            tree.normalise(replacement, fsync=self._fsync)
            nar_hash, nar_size, found = tree.hash_and_scan(replacement, scan)
        except (OSError, ValueError) as exc:
            raise BuildError(f"cannot read the output {sp.base}: {exc}", file=str(replacement))
        host = self.host_path(sp)
        trash = replacement.parent / f"unsandboxed-{sp.digest}"
        if os.path.lexists(host):
            os.rename(host, trash)
        os.rename(replacement, host)
        if self._fsync:
            atomic.fsync_dir(self.root)
        refs = frozenset(scan[d] for d in found)
        info = PathInfo(sp, nar_hash, nar_size, refs, deriver, int(time.time()), True, old.ca)
        self._writer().replace_path(info)
        tree.remove(trash)
        return info

    def cleanup(self) -> list[str]:
        """Remove leftovers of crashed or interrupted work; return what went.

        Run at the start of every mutating command. Removes
        ``ROOT/<digest>-<name>`` entries that are not valid and whose lock is
        free (a path another process is building is never touched), and
        ``tmp/`` directories whose owner process is gone and whose lock is
        free. Returns their names (``.raisin/tmp/...`` for scratch dirs).
        Entries not named like store paths are never touched: ``--store``
        pointed at the wrong directory must not wipe it.
        """
        return upkeep.cleanup(self, self._writer())

    def verify(self, *, paths: Iterable[StorePath] | None = None) -> list[Damage]:
        """Re-hash valid paths (all, or ``paths``) and report every damage:
        content missing, NAR hash changed, not read-only/mtime 1 any more,
        unreadable; a path in ``paths`` that is not valid is ``"invalid"``.
        Read-only."""
        return upkeep.verify(self, self._reader(), paths)

    def delete(self, sp: StorePath) -> None:
        self.delete_many([sp])

    def delete_many(self, sps: Iterable[StorePath]) -> None:
        """Unregister and remove ``sps`` (for gc).

        Refused (nothing deleted) if a valid path outside ``sps`` refers to
        one of them. Paths are locked, unregistered in one transaction per
        batch of 128 (referrers before their references) and only then
        removed from disk. Paths in ``sps`` that are not valid just lose any
        leftover content. The caller must not hold any of their locks.
        """
        wanted = set(sps)
        if wanted:
            upkeep.delete_many(self, self._writer(), wanted)

    def reindex(self) -> int:
        """Adopt complete but unregistered paths found under ROOT; return how many.

        "Complete" means fully normalised: :meth:`register` normalises a tree
        only once it is complete, bottom-up, root last. An adopted path's
        references are found by scanning it for the digests of every path in
        the store (valid or being adopted), which finds every real reference
        a build's candidate set would have; deriver is unknown; it is marked
        ``ca="source"`` (and sandboxed) when its name is the source path of
        its content hash, else ``sandboxed=False``. Paths being built (lock
        held), not normalised, or referring to something that cannot be
        adopted are skipped (``cleanup`` removes the unnormalised ones).
        Rows whose content is missing are kept: ``verify`` reports them.
        """
        db = self._writer()
        with self.store_lock():
            return upkeep.reindex_locked(self, db)
