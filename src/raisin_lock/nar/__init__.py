"""NAR, Nix's archive format: the canonical serialisation of a file tree.

The SHA-256 of a NAR pins sources, names store paths and is what binary
caches sign; NARs are what caches and ``export``/``import`` carry. This
package writes them byte-identically to ``nix-store --dump``
(:mod:`.writer`: :func:`dump`, :func:`iter_dump`, :func:`hash_path`) and
reads untrusted ones strictly (:mod:`.reader`: :func:`restore`); the
tokens both share live in :mod:`.format`.
"""

from __future__ import annotations

from raisin_lock.nar.format import CHUNK
from raisin_lock.nar.reader import restore
from raisin_lock.nar.writer import dump, hash_path, iter_dump

__all__ = ["CHUNK", "dump", "hash_path", "iter_dump", "restore"]
