"""The store database: which store paths are valid, and their references.

All SQL in raisin lives here; the rest of the package sees
:class:`Database` methods that take and return :class:`StorePath` and
:class:`PathInfo`. The tables are described in ``schema.sql``.

Choices, and why:

- **WAL journal**: readers never block the writer or each other, so many
  raisin processes (``show`` while ``realize -j`` runs) share one store.
- **synchronous=FULL**: a COMMIT is on disk when it returns. NORMAL would
  keep the database consistent too, but a power cut could then roll back a
  transaction raisin has already acted on: gc deletes a path's *row* and
  then its content, and with NORMAL the row could come back pointing at
  deleted content. One extra fsync per transaction is cheap next to a build.
- **BEGIN IMMEDIATE** for every write (:meth:`Database.transaction`): the
  write lock is taken up front, so two writers queue on the busy timeout
  instead of failing with SQLITE_BUSY half-way through a transaction.
- **A generous busy timeout** (10 minutes): transactions are short (no file
  I/O happens inside one), so waiting means another process is busy, not
  stuck.
- **foreign_keys=ON**: ``refs`` cascades from the referrer and restricts
  deleting a reference, so the valid set stays closed under references
  whatever the callers do.
- Store paths are stored as base names (``<digest>-<name>``), never absolute
  paths: a store directory can be moved or copied.
- Read-only use opens the file with ``mode=ro`` when it is not writable, and
  never creates or alters anything; a read-write connection used only for
  reads leaves the files byte-identical after :meth:`Database.close`.

Schema versions (``meta.schema_version``):

- 1 — ``meta``, ``valid_paths``, ``refs``, ``derivations``.

A database with a higher version is refused (written by a newer raisin); an
older one would be migrated here, in one transaction, before use.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from raisin_lock.errors import RaisinError
from raisin_lock.hashing import Hash
from raisin_lock.store.path_info import PathInfo
from raisin_lock.store_path import StorePath

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 600.0
# Bound on host parameters per statement (old SQLite builds allow 999).
_CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _schema_statements() -> list[str]:
    text = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    statements: list[str] = []
    buf = ""
    for line in text.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    return statements


class Database:
    """One connection to a store's ``db.sqlite``, shared by threads.

    Build instances with :meth:`open_existing` or :meth:`open_or_create`.
    A re-entrant mutex serialises use of the connection between threads; a
    transaction holds it throughout.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = conn
        self._mutex = threading.RLock()
        self._depth = 0

    # ---- opening -------------------------------------------------------

    @classmethod
    def open_existing(cls, path: Path) -> Database | None:
        """Open an existing database for reading; None if there is none yet.

        Opens read-write when the file is writable (so a later write needs no
        reopen), else with ``mode=ro``. Never creates or changes anything.
        """
        if not path.is_file():
            return None
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        db = cls(path, cls._connect(path, readonly=not writable), readonly=not writable)
        try:
            version = db._schema_version()
        except BaseException:
            db.close()
            raise
        if version is None:  # being created by another process right now
            db.close()
            return None
        return db

    @classmethod
    def open_or_create(
        cls, path: Path, *, initial_meta: dict[str, str] | None = None
    ) -> tuple[Database, bool]:
        """Open read-write, creating the schema if needed; True if created.

        ``initial_meta`` is written into ``meta`` in the creating transaction.
        """
        # Two processes opening a brand-new store at once race on
        # ``PRAGMA journal_mode = WAL``, which SQLite answers with an immediate
        # SQLITE_BUSY (no busy handler) to the loser: serialise the opening.
        lock_fd = _lock_file(path.with_name(path.name + ".open.lock"))
        try:
            db = cls(path, cls._connect(path, readonly=False), readonly=False)
            try:
                created = db._initialise(initial_meta or {})
            except BaseException:
                db.close()
                raise
        finally:
            os.close(lock_fd)
        return db, created

    @staticmethod
    def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                target = path.absolute().as_uri() + "?mode=ro"
                conn = sqlite3.connect(
                    target,
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(
                    path,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise RaisinError(f"cannot open the store database: {exc}", file=str(path)) from exc
        return conn

    def _schema_version(self) -> int | None:
        """The version, None if the file has no tables yet; refuse newer ones."""
        tables = {r[0] for r in self._read("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        rows = (
            self._read("SELECT value FROM meta WHERE key = 'schema_version'")
            if "meta" in tables
            else []
        )
        if not rows:
            raise RaisinError(
                "not a raisin store database (no schema_version)",
                file=str(self.path),
                hint="move it away, then run `raisin store verify` to rebuild the index",
            )
        try:
            version = int(rows[0][0])
        except ValueError:
            raise RaisinError(
                f"bad schema_version {rows[0][0]!r} in the store database", file=str(self.path)
            ) from None
        if version > SCHEMA_VERSION:
            raise RaisinError(
                f"store database has schema version {version}, newer than this raisin "
                f"understands ({SCHEMA_VERSION})",
                file=str(self.path),
                hint="use the newer raisin that wrote it, or point --store elsewhere",
            )
        if version < 1:
            raise RaisinError(f"unknown schema version {version}", file=str(self.path))
        return version

    def _initialise(self, initial_meta: dict[str, str]) -> bool:
        with self._translate():
            assert self._conn is not None
            # Persistent in the file; must run outside a transaction.
            self._conn.execute("PRAGMA journal_mode = WAL")
        with self.transaction():
            if self._schema_version() is not None:
                return False
            for statement in _schema_statements():
                self._write(statement)
            self._write(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            for key, value in initial_meta.items():
                self.set_meta(key, value)
            return True

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    # ---- plumbing ------------------------------------------------------

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            hint = None
            if "locked" in str(exc) or "busy" in str(exc):
                hint = "another raisin process kept the database busy for too long"
            raise RaisinError(
                f"store database error: {exc}", file=str(self.path), hint=hint
            ) from exc

    def _cursor(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RaisinError("store database is closed", file=str(self.path))
        return self._conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._mutex, self._translate():
            return self._cursor().execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self._depth == 0:
            raise RuntimeError("Database write outside transaction()")
        with self._translate():
            return self._cursor().execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. Re-entrant."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self.readonly:
                raise RaisinError("the store database is read-only here", file=str(self.path))
            conn = self._cursor()
            with self._translate():
                conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            self._depth = 0
            try:
                with self._translate():
                    conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise

    # ---- queries -------------------------------------------------------

    def is_valid(self, sp: StorePath) -> bool:
        return bool(self._read("SELECT 1 FROM valid_paths WHERE path = ?", (sp.base,)))

    def valid_subset(self, sps: Iterable[StorePath]) -> set[StorePath]:
        wanted = {sp.base: sp for sp in sps}
        out: set[StorePath] = set()
        for chunk in _chunks(sorted(wanted)):
            sql = f"SELECT path FROM valid_paths WHERE path IN ({_marks(len(chunk))})"
            out.update(wanted[r[0]] for r in self._read(sql, chunk))
        return out

    def unsandboxed_subset(self, sps: Iterable[StorePath]) -> set[StorePath]:
        """The valid paths among ``sps`` built without the sandbox (``sandboxed = 0``)."""
        wanted = {sp.base: sp for sp in sps}
        out: set[StorePath] = set()
        for chunk in _chunks(sorted(wanted)):
            sql = (
                "SELECT path FROM valid_paths WHERE sandboxed = 0"
                f" AND path IN ({_marks(len(chunk))})"
            )
            out.update(wanted[r[0]] for r in self._read(sql, chunk))
        return out

    def query(self, sp: StorePath) -> PathInfo | None:
        with self._mutex:
            rows = self._read(
                "SELECT id, nar_hash, nar_size, deriver, registration_time, sandboxed, ca"
                " FROM valid_paths WHERE path = ?",
                (sp.base,),
            )
            if not rows:
                return None
            pid, nar_hash, nar_size, deriver, regtime, sandboxed, ca = rows[0]
            refs = self._read(
                "SELECT v.path FROM refs r JOIN valid_paths v ON v.id = r.reference"
                " WHERE r.referrer = ?",
                (pid,),
            )
        return PathInfo(
            path=sp,
            nar_hash=Hash.parse(nar_hash),
            nar_size=int(nar_size),
            references=frozenset(StorePath.parse(r[0]) for r in refs),
            deriver=deriver,
            registration_time=int(regtime),
            sandboxed=bool(sandboxed),
            ca=ca,
        )

    def closure(self, sps: Iterable[StorePath]) -> set[StorePath]:
        """Valid paths reachable from the valid ones among ``sps`` (included)."""
        out: set[StorePath] = set()
        for chunk in _chunks(sorted({sp.base for sp in sps})):
            sql = (
                "WITH RECURSIVE c(id) AS ("
                f" SELECT id FROM valid_paths WHERE path IN ({_marks(len(chunk))})"
                " UNION SELECT r.reference FROM refs r JOIN c ON r.referrer = c.id)"
                " SELECT v.path FROM valid_paths v JOIN c ON v.id = c.id"
            )
            out.update(StorePath.parse(r[0]) for r in self._read(sql, chunk))
        return out

    def referrers(self, sp: StorePath) -> set[StorePath]:
        """Valid paths whose references include ``sp``, ``sp`` itself excluded."""
        rows = self._read(
            "SELECT v.path FROM valid_paths t"
            " JOIN refs r ON r.reference = t.id"
            " JOIN valid_paths v ON v.id = r.referrer"
            " WHERE t.path = ? AND v.id != t.id",
            (sp.base,),
        )
        return {StorePath.parse(r[0]) for r in rows}

    def all_valid(self) -> list[StorePath]:
        return [
            StorePath.parse(r[0]) for r in self._read("SELECT path FROM valid_paths ORDER BY path")
        ]

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def derivation_output(self, drv_hash: str) -> StorePath | None:
        rows = self._read("SELECT out_path FROM derivations WHERE drv_hash = ?", (drv_hash,))
        return StorePath.parse(rows[0][0]) if rows else None

    # ---- writes (inside transaction()) ---------------------------------

    def _ids(self, bases: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(sorted(set(bases))):
            sql = f"SELECT path, id FROM valid_paths WHERE path IN ({_marks(len(chunk))})"
            out.update((r[0], int(r[1])) for r in self._read(sql, chunk))
        return out

    def add_paths(self, infos: Sequence[PathInfo]) -> None:
        """Insert ``infos`` and their references; every reference must be
        valid already or among ``infos``. Call inside :meth:`transaction`."""
        with self.transaction():
            for info in infos:
                if self.is_valid(info.path):
                    raise RaisinError(f"{info.path.base} is already valid", file=str(self.path))
                self._write(
                    "INSERT INTO valid_paths (path, nar_hash, nar_size, deriver,"
                    " registration_time, sandboxed, ca) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        info.path.base,
                        info.nar_hash.sri,
                        info.nar_size,
                        info.deriver,
                        info.registration_time,
                        int(info.sandboxed),
                        info.ca,
                    ),
                )
            ids = self._ids(
                [i.path.base for i in infos] + [r.base for i in infos for r in i.references]
            )
            for info in infos:
                missing = sorted(r.base for r in info.references if r.base not in ids)
                if missing:
                    raise RaisinError(
                        f"{info.path.base} refers to {', '.join(missing)}, which "
                        f"{'is' if len(missing) == 1 else 'are'} not valid",
                        file=str(self.path),
                    )
                with self._translate():
                    self._cursor().executemany(
                        "INSERT INTO refs (referrer, reference) VALUES (?, ?)",
                        [(ids[info.path.base], ids[r.base]) for r in info.references],
                    )

    def replace_path(self, info: PathInfo) -> None:
        """Record new content for a valid path: hash, size, deriver, sandboxed flag, references.

        For an unsandboxed path rebuilt in the sandbox; its referrers keep
        pointing at it (the name does not change)."""
        with self.transaction():
            cur = self._write(
                "UPDATE valid_paths SET nar_hash = ?, nar_size = ?, deriver = ?,"
                " registration_time = ?, sandboxed = ? WHERE path = ?",
                (
                    info.nar_hash.sri,
                    info.nar_size,
                    info.deriver,
                    info.registration_time,
                    int(info.sandboxed),
                    info.path.base,
                ),
            )
            if cur.rowcount != 1:
                raise RaisinError(f"{info.path.base} is not valid", file=str(self.path))
            ids = self._ids([info.path.base] + [r.base for r in info.references])
            missing = sorted(r.base for r in info.references if r.base not in ids)
            if missing:
                raise RaisinError(
                    f"{info.path.base} refers to {', '.join(missing)}, not valid",
                    file=str(self.path),
                )
            self._write("DELETE FROM refs WHERE referrer = ?", (ids[info.path.base],))
            with self._translate():
                self._cursor().executemany(
                    "INSERT INTO refs (referrer, reference) VALUES (?, ?)",
                    [(ids[info.path.base], ids[r.base]) for r in info.references],
                )

    def delete_paths(self, sps: Iterable[StorePath]) -> None:
        """Unregister ``sps``; refused if a path outside them refers to one."""
        with self.transaction():
            ids = self._ids(sp.base for sp in sps)
            id_list = sorted(ids.values())
            for chunk in _chunks(id_list):
                self._write(f"DELETE FROM refs WHERE referrer IN ({_marks(len(chunk))})", chunk)
            for chunk in _chunks(id_list):
                try:
                    self._write(
                        f"DELETE FROM valid_paths WHERE id IN ({_marks(len(chunk))})", chunk
                    )
                except RaisinError as exc:
                    if isinstance(exc.__cause__, sqlite3.IntegrityError):
                        raise RaisinError(
                            "cannot delete store paths that other valid paths still refer to",
                            file=str(self.path),
                        ) from exc
                    raise

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None delete) a ``meta`` entry other than the version."""
        if key == "schema_version":
            raise ValueError("schema_version is managed by Database")
        with self.transaction():
            if value is None:
                self._write("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def record_derivation(self, drv_hash: str, out: StorePath, name: str) -> None:
        with self.transaction():
            self._write(
                "INSERT OR REPLACE INTO derivations (drv_hash, name, out_path) VALUES (?, ?, ?)",
                (drv_hash, name, out.base),
            )


def _lock_file(path: Path) -> int:
    """An exclusive flock on ``path`` (created); the caller closes the fd to release it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        raise RaisinError(
            f"cannot lock the store database: {exc.strerror}", file=str(path)
        ) from exc
    return fd
