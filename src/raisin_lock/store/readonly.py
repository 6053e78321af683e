"""A store opened so that reading it changes nothing on disk, not even a directory mtime.

SQLite opens a WAL database, even with ``mode=ro``, by creating its
``-wal``/``-shm`` files beside it (and the last connection deletes them on
close): the file contents stay identical, but ``.raisin/`` is written to.
``--dry-run`` promises that *nothing* is written, so :class:`ReadOnlyStore`
opens the database with ``immutable=1`` when no ``-wal`` exists (then no
other connection is open and the main file holds every committed
transaction), and plain ``mode=ro`` otherwise (the files exist already, so
nothing is created). Every write method refuses.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from raisin_lock.errors import RaisinError
from raisin_lock.store.db import BUSY_TIMEOUT_S, Database
from raisin_lock.store.local import Store


class ReadOnlyStore(Store):
    def __init__(self, root: Any) -> None:
        super().__init__(root, create=False)

    def _reader(self) -> Database | None:
        with self._open_lock:
            if self._db is None:
                path = self.db_path
                if not path.is_file():
                    return None
                wal = path.with_name(path.name + "-wal")
                flag = "mode=ro" if os.path.exists(wal) else "immutable=1"
                try:
                    conn = sqlite3.connect(
                        path.absolute().as_uri() + "?" + flag,
                        uri=True,
                        timeout=BUSY_TIMEOUT_S,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                except sqlite3.Error as exc:
                    raise RaisinError(
                        f"cannot open the store database: {exc}", file=str(path)
                    ) from exc
                db = Database(path, conn, readonly=True)
                if db._schema_version() is None:
                    db.close()
                    return None
                self._db = db
            return self._db

    def _writer(self) -> Database:
        raise RaisinError("this store is open read-only (dry run)", file=str(self.root))

    def _ensure_layout(self) -> None:
        raise RaisinError("this store is open read-only (dry run)", file=str(self.root))
