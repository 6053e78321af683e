"""Staleness: does the lock still answer the manifest and the path sources, cheaply.

The fast path every ``raisin lock``, ``realize`` and ``test`` takes first:
declarations compared by fingerprint straight from the TOML (no manifest
validation), ``path`` sources by the NAR hash of their directory. Only when
something changed does the caller load the manifest and resolve
(:mod:`raisin_lock.app.locking`, which ``realize`` then imports: a no-op
realize stays a fraction of a second). The rules themselves are
:mod:`raisin_lock.lock.freshness`'s; this module adds the I/O (hashing
directories).
"""

from __future__ import annotations

from raisin_lock.app.project import Project
from raisin_lock.hashing import Hash
from raisin_lock.lock import freshness
from raisin_lock.lock.lockfile import Lock
from raisin_lock.manifest.quick import fingerprint, quick_components, source_fingerprint
from raisin_lock.sources import FetchContext
from raisin_lock.sources import path as path_source


def up_to_date(project: Project, old: Lock, *, check: bool = False, offline: bool = False) -> bool:
    """Nothing to resolve again: every declaration and every path source as locked.

    False also when the manifest cannot be read quickly (the caller reads it properly).
    """
    raw = quick_components(project.manifest_path)
    if raw is None:
        return False
    decls = {n: fingerprint(t) for n, t in raw.items()}
    source_decls = {n: source_fingerprint(t) for n, t in raw.items()}
    paths = {
        n: t["source"]["path"]
        for n, t in raw.items()
        if isinstance(t.get("source"), dict) and "path" in t["source"]
    }
    follows = {n: t["follows"] for n, t in raw.items() if isinstance(t.get("follows"), str)}
    reasons = reasons_to_relock(
        project,
        old,
        decls,
        paths,
        (),
        check=check,
        offline=offline,
        follows=follows,
        source_decls=source_decls,
    )
    return not reasons


def reasons_to_relock(
    project: Project,
    old: Lock,
    decls: dict[str, str],
    paths: dict[str, str],
    forced: list[str] | tuple[str, ...],
    *,
    check: bool,
    offline: bool,
    follows: dict[str, str],
    source_decls: dict[str, str],
) -> dict[str, str]:
    """Why each component needs resolving again; path sources are hashed here (I/O)."""
    ctxs: list[FetchContext] = []  # made on first use: making one may create the store

    def path_changed(name: str) -> bool:
        if not ctxs:
            ctxs.append(
                FetchContext(
                    store=project.store(create=not check), base_dir=project.dir, offline=offline
                )
            )
        ctx = ctxs[0]
        ctx.key = f"components.{name}.source.path"
        current: Hash = path_source.current_hash(paths[name], ctx)
        return current != old.components[name].source.nar_hash

    return freshness.stale_reasons(
        old,
        decls,
        path_sources=paths,
        path_changed=path_changed,
        forced=forced,
        follows=follows,
        source_decls=source_decls,
    )
