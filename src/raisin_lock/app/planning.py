"""Planning a realize: which lock, which components, and is anything left to do.

The cheap first half of ``raisin realize``: re-lock when the manifest
changed, read the lock, select the components and their closure, and ask
the store which outputs are valid. When all are, nothing else is needed (no
scheduler, caches, sandbox probe or build-dependency check), so the CLI
asks this module first and loads :mod:`raisin_lock.app.realizing` only when
there is work; a no-op ``raisin realize`` stays about 0.1 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raisin_lock.app.locking import lock
from raisin_lock.app.project import Project, Report, quiet, read_lock
from raisin_lock.display import display_path
from raisin_lock.errors import ManifestError, unknown_component
from raisin_lock.lock import freshness, lockfile
from raisin_lock.lock.lockfile import Lock
from raisin_lock.store.local import Store


@dataclass
class Plan:
    """The lock a realize works from and what it covers."""

    lock: Lock
    base_dir: Path  # where the lock's relative path sources start
    selected: list[str]  # the components asked for
    store: Store
    order: list[str]  # their closure, dependencies first
    up_to_date: bool  # every output in ``order`` is valid already


def plan(
    project: Project,
    names: list[str] | None = None,
    *,
    lock_file: Path | None = None,
    offline: bool = False,
    report: Report = quiet,
    sandbox: str = "auto",
) -> Plan:
    """Lock if needed, select ``names`` (all when empty) and see what is built.

    Unless ``sandbox`` is ``"none"``, a path built with ``--sandbox none``
    does not count as built: a sandboxed realize rebuilds it."""
    if lock_file is not None:
        shown = display_path(lock_file)
        lk = lockfile.read(lock_file, shown=shown)
        lockfile.check_consistent(lk, shown)
        base_dir = lock_file.resolve().parent
    else:
        current = read_lock(project) if project.lock_path.exists() else None
        if current is None or (
            project.manifest_path.exists()
            and freshness.declarations_changed(project.manifest_path, current)
        ):
            if not project.manifest_path.exists():
                raise ManifestError(
                    "no such file (and no lock to build from)",
                    file=display_path(project.manifest_path),
                )
            report(f"{project.lock_display} is missing or out of date; locking first")
            lk = lock(project, offline=offline, report=report).lock
        else:
            lk = current
        lockfile.check_consistent(lk, project.lock_display)
        base_dir = project.dir
    selected = list(names) if names else sorted(lk.components)
    for n in selected:
        if n not in lk.components:
            raise unknown_component(n, lk.components)
    store = project.store()
    order = lk.closure(selected)
    drvs = lk.derivations()
    outs = [drvs[n].out for n in order]
    valid_paths = store.valid_subset(outs)
    if sandbox != "none":
        valid_paths -= store.unsandboxed_subset(outs)
    return Plan(lk, base_dir, selected, store, order, up_to_date=len(valid_paths) == len(order))
