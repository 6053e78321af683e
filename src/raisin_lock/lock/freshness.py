"""Freshness: is a lock still the answer to its manifest, and if not, why.

The one staleness check. ``lock`` uses :func:`stale_reasons` to decide what
to resolve again, ``lock --check`` reports it, ``realize`` re-locks when
:func:`declarations_changed` says the manifest moved on, and ``profile
switch`` refuses a lock whose declarations changed. Declarations are
compared by fingerprint (:mod:`raisin_lock.manifest.quick`), so no check here
validates the manifest or fetches anything; the content of ``path`` sources
is the caller's to hash (``path_changed``), since hashing a directory is I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from raisin_lock.lock.lockfile import Lock
from raisin_lock.manifest import MANIFEST_NAME
from raisin_lock.manifest.quick import fingerprint, quick_components

# The reason given for a component whose build (not its source) was edited:
# it is derived again from its old pin, which stays put even on a moved branch.
BUILD_CHANGED = f"build changed in {MANIFEST_NAME} (source pin kept)"


def changed_declarations(manifest_path: Path, lk: Lock) -> list[str] | None:
    """Components added, removed or edited in the manifest since ``lk`` was written.

    None when the manifest cannot be read quickly (missing or not plain TOML):
    the caller must load it properly to find out.
    """
    raw = quick_components(manifest_path)
    if raw is None:
        return None
    changed = [
        n
        for n, t in raw.items()
        if n not in lk.components or lk.components[n].decl != fingerprint(t)
    ]
    return sorted(changed + [n for n in lk.components if n not in raw])


def declarations_changed(manifest_path: Path, lk: Lock | None) -> bool:
    """Must the lock be made again before it is used (missing, or any declaration changed)?"""
    if lk is None:
        return True
    changed = changed_declarations(manifest_path, lk)
    return changed is None or bool(changed)


def stale_reasons(
    old: Lock,
    decls: Mapping[str, str],
    *,
    path_sources: Collection[str] = (),
    path_changed: Callable[[str], bool] = lambda _name: False,
    forced: Collection[str] = (),
    follows: Mapping[str, str] | None = None,
    source_decls: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Why each component needs resolving again (empty: the lock stands).

    ``decls``: each declared component's fingerprint; ``path_sources``: the
    components whose source is a local directory, whose content
    ``path_changed(name)`` compares with the pin; ``forced``: ``--update``
    names; ``follows``: follower -> followed (a follower is stale when what
    it follows is); ``source_decls``: the fingerprints of each declaration's
    source part, so that a component whose edit left it unchanged gets
    :data:`BUILD_CHANGED` (re-derive, keep the pin) instead of a re-resolve.
    """
    reasons: dict[str, str] = {}
    bad = old.inconsistent()
    for name in sorted(decls):
        prev = old.components.get(name)
        if prev is None:
            reasons[name] = "not in the lock"
        elif name in forced:
            reasons[name] = "update requested"
        elif prev.decl != decls[name] and not (
            source_decls is not None
            and prev.decl_source is not None
            and prev.decl_source == source_decls.get(name)
        ):
            reasons[name] = f"changed in {MANIFEST_NAME}"
        elif name in bad:
            reasons[name] = f"inconsistent: {bad[name]}"
        elif name in path_sources and path_changed(name):
            reasons[name] = "source directory changed"
        elif prev.decl != decls[name]:
            reasons[name] = BUILD_CHANGED  # only the build part moved: keep the pin
    for name in old.components:
        if name not in decls:
            reasons[name] = f"no longer in {MANIFEST_NAME}"
    if follows:
        changed = True
        while changed:
            changed = False
            for name, leader in follows.items():
                moved = leader in reasons and reasons[leader] != BUILD_CHANGED
                if moved and reasons.get(name, BUILD_CHANGED) == BUILD_CHANGED and name in decls:
                    reasons[name] = f"follows {leader}, which changed"
                    changed = True
    return reasons
