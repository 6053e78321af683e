"""Sources: resolve a component's declared source to an exact, hashed pin.

Every fetcher ends the same way: the content as a content-addressed store
path (``<digest>-<label>-source``, named by its NAR hash and shared by all
components using it) plus a :class:`LockedSource` recording how to get it
again and what its hash must be. ``resolve`` runs at lock time (may use the
network); ``materialize`` runs at realize time from the lock alone.
"""

from __future__ import annotations

import errno
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from raisin_lock.errors import HashMismatch, SourceError
from raisin_lock.lock.pins import LockedSource
from raisin_lock.nar import hash_path
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.manifest.model import SourceSpec
    from raisin_lock.store.local import Store

# One fetcher module per source kind (the registry instead of if/elif chains).
FETCHERS = {"git": "git", "path": "path", "url": "url", "debian": "debian"}


@dataclass
class FetchContext:
    """What a fetcher needs: the store, where relative paths start, the network policy."""

    store: Store
    base_dir: Path
    offline: bool = False
    component: str = ""
    key: str = ""
    file: str = "raisin.toml"


def _fetcher(kind: str) -> ModuleType:
    """The module that fetches sources of ``kind`` (imported on first use: git pulls in GitPython)."""
    return importlib.import_module(f"raisin_lock.sources.{FETCHERS[kind]}")


def resolve(
    spec: SourceSpec, ctx: FetchContext, previous: LockedSource | None = None
) -> LockedSource:
    """Pin ``spec``: exact revision, content in the store, NAR hash."""
    pin: LockedSource = _fetcher(spec.kind).resolve(spec, ctx)
    return pin


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    """Write the pinned source's tree at ``dest`` (new) and check its NAR hash (HashMismatch)."""
    _fetcher(src.kind).fetch_tree(src, ctx, dest)
    actual = hash_path(dest)[0]
    if actual != src.nar_hash:
        hint = (
            f"run `raisin lock` to pin the new content of {ctx.component}"
            if src.kind == "path"
            else None
        )
        raise HashMismatch(
            f"{_describe(src)}: expected {src.nar_hash.sri}, found {actual.sri}",
            file=ctx.file,
            key=ctx.key,
            hint=hint,
        )


def _describe(src: LockedSource) -> str:
    if src.kind == "git":
        return f"commit {src.rev} of {src.url}"
    if src.kind == "path":
        return f"directory {src.path}"
    if src.kind == "url":
        return f"{src.url}"
    return f"Debian source {src.debian} {src.debian_version}"


def materialize(src: LockedSource, ctx: FetchContext) -> StorePath:
    """Make the pinned source a valid store path, refetching if needed; check its hash."""
    sp = src.store_path
    if ctx.store.is_valid(sp):
        return sp
    try:
        with ctx.store.tmpdir("source") as tmp:
            tree = tmp / "tree"
            fetch_tree(src, ctx, tree)
            ctx.store.add_tree(tree, sp.name, expected=src.nar_hash)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise SourceError(
            f"no space left on device while copying {_describe(src)} into the store",
            file=ctx.file,
            key=ctx.key,
        ) from None
    return sp
