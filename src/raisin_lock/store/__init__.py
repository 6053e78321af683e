"""The store: read-only, content-named paths under one directory, and the
SQLite index saying which are valid and what refers to what.

``local.py`` holds :class:`Store` (directory layout, locks, registration,
cleanup, verify, gc deletion, reindex); ``db.py`` all SQL (schema in
``schema.sql``); ``tree.py`` what is done to a path's files (normalise,
hash and scan, remove); ``locks.py`` the flock helpers.
"""

from __future__ import annotations

from raisin_lock.store.local import Store
from raisin_lock.store.path_info import Damage, PathInfo

__all__ = ["Damage", "PathInfo", "Store"]
