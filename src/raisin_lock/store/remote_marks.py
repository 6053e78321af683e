"""Which valid paths a remote executor built: one marker file per path.

``realize --remote`` registers a downloaded output like a local build, then
marks it here (``.raisin/remote/<base>``, holding the server's URL), so that
``raisin push`` can refuse to sign what this machine did not build itself
without ``--sign-remote``. A marker belongs to one registration: registering
the path again (a local rebuild or a substitution after ``gc``) or deleting
it drops the marker, so it never outlives what it describes. A file, not a
database column: the schema stays as it is, and a store without the
directory simply has no remote paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from raisin_lock.store_path import StorePath

MARKS = Path(".raisin") / "remote"


def mark(root: Path, sp: StorePath, url: str) -> None:
    """Record that the valid path ``sp`` of the store at ``root`` was built at ``url``."""
    (d := root / MARKS).mkdir(exist_ok=True)
    (d / sp.base).write_text(url + "\n")


def built(root: Path, sps: Iterable[StorePath]) -> set[StorePath]:
    """Those of ``sps`` that carry a remote marker."""
    return {sp for sp in sps if (root / MARKS / sp.base).exists()}


def forget(root: Path, sp: StorePath) -> None:
    """Drop ``sp``'s marker (it is being registered anew, or deleted)."""
    try:
        os.unlink(root / MARKS / sp.base)
    except FileNotFoundError:
        pass
