"""Why: explain every rebuild between two locks, and why one component needs another.

``raisin why [OLD.lock [NEW.lock]]`` compares two locks (by default the
committed ``raisin.lock`` in git's HEAD is not assumed: OLD is required,
NEW defaults to the project's lock) and names, for each component whose
output path changes, the input that changed first. ``raisin why-depends A
B`` lists the dependency paths from A to B in the project's lock.
"""

from __future__ import annotations

from pathlib import Path

from raisin_lock.app.project import Project, load_lock
from raisin_lock.display import display_path
from raisin_lock.errors import unknown_component
from raisin_lock.lock import lockfile, why
from raisin_lock.lock.why import Explanation


def explain(project: Project, old_path: Path, new_path: Path | None = None) -> list[Explanation]:
    """What changes between the lock at ``old_path`` and ``new_path`` (default: the project's)."""
    old = lockfile.read(old_path, shown=display_path(old_path))
    new_p = new_path or project.lock_path
    new = lockfile.read(new_p, shown=display_path(new_p))
    return why.explain(old, new)


def dependency_paths(project: Project, start: str, target: str) -> list[list[str]]:
    """The dependency paths from ``start`` to ``target`` in the project's lock."""
    lk = load_lock(project)
    for name, key in ((start, "A"), (target, "B")):
        if name not in lk.components:
            raise unknown_component(name, lk.components, key=key)
    return why.dependency_paths(lk, start, target)
