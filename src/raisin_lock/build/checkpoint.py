"""Checkpointed build trees: the previous build directory, with only the changed files new.

The compiler cache (:mod:`.ccache`) saves the compiles, but make still walks
every object through it. A developer's own tree is faster still: the objects
are there and make's dependency tracking rebuilds what a change touches.
raisin does the same (nixpkgs' checkpointBuildTools idea): after a build of
a component it keeps the working tree (``/build/src``, objects included) in
``store/.raisin/checkpoints/NAME``, with the source store path it started
from and a key of everything else the build depends on (steps, environment,
dependencies' outputs, build dependencies, toolchain). The next build of
the same component with the same key starts from that tree instead of a
fresh copy: files whose content changed between the two source trees are
copied in (with a new mtime, so make sees them), files that are gone are
deleted, new ones added, and the build's steps run as usual.

Only the pristine sources are compared, never the checkpoint's own state, so
a build that rewrote one of its sources leaves it for make to redo. The
result must equal a clean build: ``realize --check`` never uses a checkpoint
and compares, which is how a user proves it. ``raisin gc`` drops
checkpoints not used for 30 days.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from raisin_lock import atomic
from raisin_lock.build import ccache
from raisin_lock.build.sandbox import BuildSpec
from raisin_lock.lock.derivation import Derivation
from raisin_lock.lock.lockfile import Lock
from raisin_lock.store import tree

CHECKPOINTS = Path(".raisin") / "checkpoints"


def key_for(lock: Lock, drvs: Mapping[str, Derivation], name: str, mode: str) -> str | None:
    """The checkpoint key of ``name``'s build when it may be incremental (``mode``: auto: for
    path sources, on, off), else None: everything but the source its objects depend on."""
    comp = lock.components[name]
    if mode == "off" or (mode == "auto" and comp.source.kind != "path"):
        return None
    deps = {d: drvs[d].out.base for d in comp.deps}
    toolchain, system = lock.toolchain, lock.system
    parts = {
        "steps": comp.steps,
        "env": comp.env,
        "deps": deps,
        "build_deps": comp.build_deps,
        "toolchain": toolchain,
        "system": system,
        "fetch": comp.fetch,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def prepare(
    store_root: Path, name: str, want: str, spec: BuildSpec, src: Path, build_dir: Path
) -> tuple[BuildSpec, bool]:
    """``spec`` for an incremental build: from the checkpoint if there is one, through ccache."""
    restored = restore(store_root, name, want, src, build_dir / "src")
    if restored:
        spec = replace(spec, copy_src=False)
    if ccache.available():
        cache_dir = store_root / ccache.CACHE_DIR
        cache_dir.mkdir(parents=True, exist_ok=True)
        spec = replace(spec, ccache_host=str(cache_dir))
    return spec, restored


def restore(store_root: Path, name: str, want: str, new_src: Path, dest: Path) -> bool:
    """Put the checkpoint of ``name`` at ``dest``, updated to the source ``new_src``.

    False (``dest`` untouched) when there is no checkpoint for this key, or
    its source tree is gone from the store.
    """
    home = store_root / CHECKPOINTS / name
    try:
        recorded = json.loads((home / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return False
    old_src = store_root / str(recorded.get("source", ""))
    if recorded.get("key") != want or not old_src.is_dir() or not (home / "src").is_dir():
        return False
    try:
        if dest.exists():
            tree.remove(dest)
        os.rename(home / "src", dest)  # taken: a concurrent build of the same name starts fresh
        _apply(old_src, new_src, dest)
    except OSError:  # a checkpoint only saves time: start from a fresh copy instead
        tree.remove(dest)
        return False
    return True


def save(store_root: Path, name: str, want: str, src: str, work: Path) -> None:
    """Keep the working tree ``work`` of a successful build (from source ``src``, a store
    path's base name) as ``name``'s checkpoint."""
    home = store_root / CHECKPOINTS / name
    try:
        home.mkdir(parents=True, exist_ok=True)
        tree.remove(home / "src")
        os.rename(work, home / "src")
        doc = {"key": want, "source": src, "saved": int(time.time())}
        atomic.write_text(home / "checkpoint.json", json.dumps(doc) + "\n")
    except OSError:  # another build of the same name saved first, or no space: no checkpoint
        return


def trim(store_root: Path, *, days: int = 30) -> int:
    """Delete checkpoints not used for ``days`` days; return how many."""
    cutoff = time.time() - days * 86400
    gone = 0
    base = store_root / CHECKPOINTS
    for home in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            saved = json.loads((home / "checkpoint.json").read_text()).get("saved", 0)
        except (OSError, ValueError):
            saved = 0
        if saved < cutoff:
            tree.remove(home)
            gone += 1
    return gone


def _apply(old: Path, new: Path, work: Path) -> None:
    """Make ``work`` hold ``new``'s version of every file where ``new`` differs from ``old``."""
    for root, dirs, files in os.walk(new):
        rel = Path(root).relative_to(new)
        (work / rel).mkdir(parents=True, exist_ok=True)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            n, o, w = Path(root) / name, old / rel / name, work / rel / name
            if _same(o, n):
                continue
            if w.is_dir() and not w.is_symlink():
                tree.remove(w)
            elif os.path.lexists(w):
                os.unlink(w)
            if n.is_symlink():
                os.symlink(os.readlink(n), w)
            else:
                shutil.copyfile(n, w)  # a new mtime: make sees the change
                os.chmod(w, 0o755 if os.access(n, os.X_OK) else 0o644)
    for root, dirs, files in os.walk(old):
        rel = Path(root).relative_to(old)
        for name in files + dirs:
            if not os.path.lexists(new / rel / name) and os.path.lexists(work / rel / name):
                tree.remove(work / rel / name)


def _same(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
    try:
        return (
            a.is_file()
            and os.access(a, os.X_OK) == os.access(b, os.X_OK)
            and filecmp.cmp(a, b, shallow=False)
        )
    except OSError:
        return False
