"""The project: where the manifest, its lock and the store are, and reading the lock.

Every use case starts from a :class:`Project` (made by the CLI from ``-C``,
``--store``/``RAISIN_STORE`` and ``--lock``). Use cases return values and
never print; progress goes to a :data:`Report` callback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.display import display_path
from raisin_lock.lock import lockfile
from raisin_lock.lock.lockfile import LOCK_NAME, Lock
from raisin_lock.manifest import MANIFEST_NAME
from raisin_lock.profiles import PROFILES_DIR
from raisin_lock.store.local import Store
from raisin_lock.store.readonly import ReadOnlyStore

if TYPE_CHECKING:
    from raisin_lock.manifest.model import Manifest

Report = Callable[[str], None]


def quiet(_: str) -> None:
    """A :data:`Report` that drops every line."""


@dataclass
class Project:
    """Where things are: the manifest, its lock, the store."""

    dir: Path
    store_root: Path
    lock_path: Path

    @classmethod
    def at(cls, directory: Path, store: str | None = None, lock: str | None = None) -> Project:
        directory = directory.resolve()
        env_store = os.environ.get("RAISIN_STORE")
        root = Path(store or env_store or directory / "store")
        if not root.is_absolute():
            root = (Path.cwd() / root) if (store or env_store) else directory / root
        lock_path = Path(lock).resolve() if lock else directory / LOCK_NAME
        return cls(
            dir=directory, store_root=root.resolve() if root.exists() else root, lock_path=lock_path
        )

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    def load_manifest(self) -> Manifest:
        from raisin_lock.manifest import model as manifest

        return manifest.load(self.manifest_path)

    def store(self, *, create: bool = True) -> Store:
        return Store(self.store_root, create=create)

    def read_only_store(self) -> Store:
        """The store for commands that must not write (dry runs, listings)."""
        return ReadOnlyStore(self.store_root)

    @property
    def profiles_dir(self) -> Path:
        return self.dir / PROFILES_DIR

    @property
    def lock_display(self) -> str:
        return display_path(self.lock_path)


def read_lock(project: Project) -> Lock | None:
    """The project's lock as it is on disk, or None when there is none."""
    if not project.lock_path.exists():
        return None
    return lockfile.read(project.lock_path, shown=project.lock_display)


def load_lock(project: Project) -> Lock:
    """Read and check the lock (an inconsistent lock is an input error)."""
    lk = lockfile.read(project.lock_path, shown=project.lock_display)
    lockfile.check_consistent(lk, project.lock_display)
    return lk
