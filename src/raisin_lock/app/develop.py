"""Develop: a shell in exactly the build environment of one component.

``raisin develop NAME [-c CMD]`` locks as ``realize`` does, realizes NAME's
dependencies (built, or from caches), and opens the sandbox a build of NAME
would get. The working directory is writable in place: a ``path`` source is
the developer's checkout itself; any other source is copied once to
``store/.raisin/develop/NAME/src`` and kept there between sessions. ``$out``
is ``store/.raisin/develop/NAME/out`` (emptied first): what a build would
install lands there, and nothing is registered.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from raisin_lock.app.planning import plan
from raisin_lock.app.project import Project, Report, quiet
from raisin_lock.app.realizing import realize
from raisin_lock.build.develop import run_shell
from raisin_lock.build.sandbox import select_sandbox
from raisin_lock.build.scheduler import Scheduler
from raisin_lock.display import display_path
from raisin_lock.errors import BuildError, InputError, unknown_component
from raisin_lock.sources import FetchContext
from raisin_lock.store import tree

DEVELOP = Path(".raisin") / "develop"


def develop(
    project: Project,
    name: str,
    command: str | None = None,
    *,
    sandbox: str = "auto",
    offline: bool = False,
    report: Report = quiet,
) -> int:
    """Run ``command`` (or an interactive shell) in ``name``'s build environment; its exit code."""
    p = plan(project, [name], offline=offline, report=report)
    lk = p.lock
    if name not in lk.components:
        raise unknown_component(name, lk.components, key="NAME")
    comp = lk.components[name]
    if comp.deps:
        res = realize(project, list(comp.deps), sandbox=sandbox, offline=offline, report=report)
        if not res.ok:
            raise BuildError(
                f"the dependencies of {name} did not build", hint="see `raisin realize`"
            )
    store = p.store
    mode = select_sandbox(sandbox)
    ctx = FetchContext(store=store, base_dir=p.base_dir, offline=offline, file=project.lock_display)
    sched = Scheduler(store=store, lock=lk, fetch=ctx, jobs=1, sandbox=mode)
    src = sched.source(name)
    home = store.root / DEVELOP / name
    if comp.source.kind == "path" and comp.source.path is not None and not comp.fetch:
        workdir = (p.base_dir / comp.source.path).resolve()
        if not workdir.is_dir():
            raise InputError(
                f"expected a directory, found nothing at {display_path(workdir)}",
                key=f"components.{name}.source.path",
            )
    else:
        workdir = home / "src"
        if not workdir.exists():
            report(f"copying {name}'s source to {display_path(workdir)} (kept between sessions)")
            tree.copy(store.host_path(src), workdir)
            _writable(workdir)
    build_dir = home / "build"
    out_host = home / "out"
    for old in (build_dir, out_host):
        tree.remove(old)
    spec, _ = sched.spec_for(name, out_host, build_dir, src, home / "develop.log")
    spec = replace(spec, workdir_host=str(workdir))
    report(
        f"{name}: build environment, working in {display_path(workdir)}; $out -> {display_path(out_host)}"
    )
    return run_shell(spec, command)


def _writable(top: Path) -> None:
    """u+w on a copied store tree (store paths are read-only)."""
    for path in [top, *top.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o700)
        elif path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
