"""What the store knows about one valid path, and what ``verify`` reports.

:class:`PathInfo` is one row of the database's ``valid_paths`` table with its
references: the facts that make a directory under the store root a *valid*
store path. :class:`Damage` is one way a valid path's content no longer
matches those facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from raisin_lock.hashing import Hash
from raisin_lock.store_path import StorePath


@dataclass(frozen=True)
class PathInfo:
    """A registered (valid) store path.

    ``references`` are the store paths whose digests occur in the content
    (possibly ``path`` itself); ``deriver`` is the derivation hash that built
    it, if known; ``sandboxed`` says whether it was built in the sandbox;
    ``ca`` marks content-addressed paths (``"source"`` for sources).
    """

    path: StorePath
    nar_hash: Hash
    nar_size: int
    references: frozenset[StorePath]
    deriver: str | None
    registration_time: int
    sandboxed: bool
    ca: str | None


@dataclass(frozen=True)
class Damage:
    """One problem ``Store.verify`` found with a valid path.

    ``kind`` is ``"missing"`` (content gone), ``"hash"`` (NAR hash differs),
    ``"mode"`` (writable, setuid, or mtime not 1: content may have been
    touched), ``"unreadable"`` (content cannot be hashed) or ``"invalid"``
    (a path asked about is not registered at all).
    """

    path: StorePath
    kind: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.path.base}: {self.kind}: expected {self.expected}, found {self.actual}"
