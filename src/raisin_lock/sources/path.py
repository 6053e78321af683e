"""Local directory sources: hashed as they are, ``.git`` left out.

This is how a developer points one component at a checkout with a patch in
it: every ``raisin lock`` rehashes the directory, so an edit shows up as a
new pin (and a new output path for it and its dependents).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from raisin_lock.errors import SourceError
from raisin_lock.lock.pins import DEFAULT_DATE, LockedSource, make_label
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

IGNORED = {".git"}


def _dir(spec_path: str, ctx: FetchContext) -> Path:
    p = Path(spec_path)
    if not p.is_absolute():
        p = ctx.base_dir / p
    if not p.is_dir():
        raise SourceError(
            f"expected a directory, found {'a file' if p.exists() else 'nothing'} at {p}",
            file=ctx.file,
            key=ctx.key,
        )
    return p


def _hash(p: Path, ctx: FetchContext):  # type: ignore[no-untyped-def]
    exclude = _excluder(p, ctx)
    return hash_path(p, exclude=[name for name in os.listdir(p) if exclude("", name)])[0]


def _excluder(top: Path, ctx: FetchContext):  # type: ignore[no-untyped-def]
    """Leave out ``.git`` and the store itself when it lies inside (top level)."""
    store = os.path.realpath(ctx.store.root)
    top_real = os.path.realpath(top)

    def exclude(rel: str, name: str) -> bool:
        if rel:
            return False
        return name in IGNORED or os.path.join(top_real, name) == store

    return exclude


def _copy(src: Path, dst: Path, ctx: FetchContext) -> None:
    exclude = _excluder(src, ctx)
    top = os.path.realpath(src)

    def ignore(d: str, names: list[str]) -> list[str]:
        rel = os.path.relpath(os.path.realpath(d), top)
        rel = "" if rel == "." else rel
        return [n for n in names if exclude(rel, n)]

    shutil.copytree(src, dst, symlinks=True, ignore=ignore)


def resolve(spec, ctx: FetchContext) -> LockedSource:  # type: ignore[no-untyped-def]
    assert spec.path is not None
    p = _dir(spec.path, ctx)
    nar_hash = _hash(p, ctx)
    # Only hashed here: realize copies the directory into the store (and checks
    # it still has this hash), so a first lock of many checkouts stays cheap.
    return LockedSource(
        kind="path",
        nar_hash=nar_hash,
        date=DEFAULT_DATE,
        label=make_label(str(p.resolve())),
        path=spec.path,
    )


def current_hash(spec_path: str, ctx: FetchContext):  # type: ignore[no-untyped-def]
    """The hash the directory has now (for staleness checks)."""
    return _hash(_dir(spec_path, ctx), ctx)


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.path is not None
    _copy(_dir(src.path, ctx), dest, ctx)
