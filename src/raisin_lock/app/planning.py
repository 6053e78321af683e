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

from raisin_lock.app.project import Project, Report, quiet, read_lock
from raisin_lock.app.staleness import up_to_date
from raisin_lock.display import display_path
from raisin_lock.errors import CheckFailed, LockError, ManifestError, unknown_component
from raisin_lock.lock import lockfile
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
    mode: str = "lock",
) -> Plan:
    """Lock if needed, select ``names`` (all when empty) and see what is built.

    ``mode``: ``lock`` brings the lock up to date first, as ``raisin lock``
    would (a manifest edit, or an edit inside a ``path`` source, is seen);
    ``locked`` refuses a lock that is not up to date (:class:`CheckFailed`,
    exit 1, as uv's and Cargo's ``--locked``); ``frozen`` uses the lock as it
    is, without looking at the manifest. Unless ``sandbox`` is ``"none"``, a
    path built with ``--sandbox none`` does not count as built: a sandboxed
    realize rebuilds it."""
    if lock_file is not None:
        shown = display_path(lock_file)
        lk = lockfile.read(lock_file, shown=shown)
        lockfile.check_consistent(lk, shown)
        base_dir = lock_file.resolve().parent
    else:
        current = read_lock(project) if project.lock_path.exists() else None
        if current is not None and (mode == "frozen" or not project.manifest_path.exists()):
            lk = current
        elif mode == "frozen":
            raise LockError(
                "no such file (--frozen builds from the lock as it is)", file=project.lock_display
            )
        elif not project.manifest_path.exists():
            raise ManifestError(
                "no such file (and no lock to build from)", file=display_path(project.manifest_path)
            )
        elif current is not None and up_to_date(project, current, offline=offline):
            lk = current  # the no-op: nothing to lock, and app.locking is not even imported
        elif mode == "locked":
            from raisin_lock.app.locking import lock  # the slow path (see tests/test_layering.py)

            res = lock(project, check=True, offline=offline)
            if res.stale:
                why = ", ".join(f"{n} ({r})" for n, r in sorted(res.stale.items()))
                raise CheckFailed(
                    f"not up to date with raisin.toml and the path sources: {why}",
                    file=project.lock_display,
                    hint="run `raisin lock` (or realize without --locked)",
                )
            lk = res.lock
        else:
            from raisin_lock.app.locking import lock  # the slow path (see tests/test_layering.py)

            res = lock(project, offline=offline, report=report)
            if res.written:
                report(f"{project.lock_display} updated ({', '.join(res.resolved) or 'pins'})")
            lk = res.lock
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
