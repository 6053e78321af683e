"""Local directory sources: hashed as they are, ``.git`` left out.

This is how a developer points one component at a checkout with a patch in
it: every ``raisin lock`` rehashes the directory, so an edit shows up as a
new pin (and a new output path for it and its dependents).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.errors import SourceError
from raisin_lock.hashing import Hash
from raisin_lock.lock.lockfile import LOCK_NAME
from raisin_lock.lock.pins import DEFAULT_DATE, LockedSource, make_label
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

if TYPE_CHECKING:
    from raisin_lock.manifest.model import SourceSpec

IGNORED = {".git"}
# The project's own state, left out when the source is the project directory itself.
PROJECT_STATE = (LOCK_NAME, "store", "profiles", ".git")


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


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def left_out(top: Path, ctx: FetchContext) -> list[str]:
    """Top-level names of ``top`` the copy and the hash leave out.

    ``.git`` always; when ``top`` is the project directory, also the project's
    lock, store and profiles (so ``path = "."`` hashes the same after a lock).
    A source that holds the store or ``profiles/`` anywhere else would copy
    them into themselves: SourceError.
    """
    top_real = os.path.realpath(top)
    project = os.path.realpath(ctx.base_dir)
    names = set(IGNORED)
    if top_real == project:
        names.update(PROJECT_STATE)
    for what, there in (
        ("the store", os.path.realpath(ctx.store.root)),
        ("profiles/", os.path.join(project, "profiles")),
    ):
        if not _inside(there, top_real):
            continue
        if top_real == project and os.path.dirname(there) == top_real:
            names.add(os.path.basename(there))
            continue
        raise SourceError(
            f"directory {top} contains {what} ({there}), which would be copied into itself",
            file=ctx.file,
            key=ctx.key if ctx.key.endswith(".path") else f"{ctx.key}.path",
            hint="point the source at a directory that does not contain it",
        )
    present = set(os.listdir(top))
    return sorted(names & present)


def _hash(p: Path, ctx: FetchContext) -> Hash:
    return hash_path(p, exclude=left_out(p, ctx))[0]


def _copy(src: Path, dst: Path, ctx: FetchContext) -> None:
    skip = set(left_out(src, ctx))
    top = os.path.realpath(src)

    def ignore(d: str, names: list[str]) -> list[str]:
        return [n for n in names if n in skip] if os.path.realpath(d) == top else []

    try:
        shutil.copytree(src, dst, symlinks=True, ignore=ignore)
    except shutil.Error as exc:
        reasons = [str(why) for *_paths, why in exc.args[0]] if exc.args else []
        full = any("No space left on device" in r for r in reasons)
        raise SourceError(
            f"no space left on device while copying {src} into the store"
            if full
            else f"cannot copy {src}: {reasons[0] if reasons else exc}",
            file=ctx.file,
            key=ctx.key,
        ) from None
    except OSError as exc:
        raise copy_error(exc, src, ctx) from None


def copy_error(exc: OSError, src: Path, ctx: FetchContext) -> SourceError:
    if exc.errno == errno.ENOSPC:
        return SourceError(
            f"no space left on device while copying {src} into the store",
            file=ctx.file,
            key=ctx.key,
        )
    return SourceError(f"cannot copy {src}: {exc.strerror or exc}", file=ctx.file, key=ctx.key)


def resolve(spec: SourceSpec, ctx: FetchContext) -> LockedSource:
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


def current_hash(spec_path: str, ctx: FetchContext) -> Hash:
    """The hash the directory has now (for staleness checks)."""
    return _hash(_dir(spec_path, ctx), ctx)


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.path is not None
    _copy(_dir(src.path, ctx), dest, ctx)
