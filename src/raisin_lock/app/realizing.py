"""Realizing: build what the lock says into the store, and repair what is damaged.

``realize`` re-locks first when the manifest changed, plans under the gc
guard (so gc cannot collect what it relies on), substitutes from caches
what they offer, checks build dependencies and the sandbox only when
something will be built, and hands the rest to the scheduler.
``verify_store`` rehashes every valid path and, asked to, refetches damaged
sources and rebuilds damaged outputs of this project's lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from raisin_lock.app import planning
from raisin_lock.app.builddeps import require_installed
from raisin_lock.app.caches import make_substituters
from raisin_lock.app.gc import guard, register_lock_root
from raisin_lock.app.project import Project, Report, load_lock, quiet
from raisin_lock.build.buildlog import max_log_size
from raisin_lock.build.events import Events
from raisin_lock.build.result import RealizeResult
from raisin_lock.build.sandbox import select_sandbox
from raisin_lock.build.scheduler import Scheduler
from raisin_lock.display import display_path
from raisin_lock.errors import InputError
from raisin_lock.lock import toolchain
from raisin_lock.manifest.quick import top_table
from raisin_lock.remote.errors import RemoteUnreachable
from raisin_lock.sources import FetchContext, fetch_tree
from raisin_lock.store.local import Store
from raisin_lock.store.path_info import Damage


def realize(
    project: Project,
    names: list[str] | None = None,
    *,
    jobs: int | None = None,
    keep_going: bool = False,
    keep_failed: bool = False,
    incremental: str = "auto",
    check: bool = False,
    sandbox: str = "auto",
    offline: bool = False,
    lock_file: Path | None = None,
    events: Events | None = None,
    report: Report = quiet,
    substituters: list[str] | None = None,
    trusted_keys: list[str] | None = None,
    fallback: bool = True,
    plan: planning.Plan | None = None,
    toolchain_mismatch: str | None = None,
    remote: str | None = None,
    remote_fallback: bool = False,
) -> RealizeResult:
    """Build what the lock says into the store; return a scheduler RealizeResult.

    ``substituters``/``trusted_keys`` add to the manifest's ``[cache]`` table;
    ``jobs=0`` builds nothing locally (substitute only); ``plan``: what
    :func:`raisin_lock.app.planning.plan` said already (the CLI asks it first);
    ``toolchain_mismatch``: ``"error"`` (the default with ``lock_file``) or
    ``"warn"`` (the default otherwise) when the host's toolchain differs from
    the lock's record, as the outputs keep the lock's paths either way.
    ``remote``: ``grpc[s]://HOST:PORT[/INSTANCE]``, builds run there as REAPI
    actions (``remote_fallback``: locally when it does not answer)."""
    p = plan or planning.plan(
        project, names, lock_file=lock_file, offline=offline, report=report, sandbox=sandbox
    )
    lk, base_dir, selected, store, order = p.lock, p.base_dir, p.selected, p.store, p.order
    if not check and p.up_to_date:
        return RealizeResult(already_valid=order)
    ctx = FetchContext(
        store=store,
        base_dir=base_dir,
        offline=offline,
        file=display_path(lock_file or project.lock_path),
    )
    events = events or Events()
    subs = make_substituters(
        project if lock_file is None else None,
        substituters or [],
        trusted_keys or [],
        warn=events.warn,
        offline=offline,
    )
    njobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if njobs == 0 and not subs:
        raise InputError(
            "-j 0 builds nothing locally: give a --substituter (or [cache] substituters)", key="-j"
        )
    sched = Scheduler(
        store=store,
        lock=lk,
        fetch=ctx,
        jobs=njobs,
        sandbox="none",
        keep_going=keep_going,
        keep_failed=keep_failed,
        incremental=incremental,
        events=events,
        substituters=subs or None,
        fallback=fallback,
        trust_unsandboxed=sandbox == "none",
        max_log_size=max_log_size(),
    )
    with guard(store):  # gc cannot start between rooting the lock and seeing what is valid
        register_lock_root(store, (lock_file or project.lock_path).absolute())
        _order, valid = sched.plan(selected)
    missing = [n for n in _order if n not in valid]
    builder = None
    remote = remote or (_manifest_remote(project) if lock_file is None else None)
    if remote and missing and not check:
        from raisin_lock.remote.channel import parse_url
        from raisin_lock.remote.execute import RemoteBuilder

        builder = RemoteBuilder(sched, parse_url(remote), fallback=remote_fallback)
        try:
            builder.probe()
            sched.remote_build = builder
        except RemoteUnreachable as exc:
            builder.close()
            if not remote_fallback:
                raise
            events.warn(f"{exc.message}: building locally (--fallback)")
            builder = None
    offered = sched.query_substitutes(missing) if subs and not check else set()
    to_build = [n for n in missing if n not in offered]
    if njobs == 0 or not fallback:
        to_build = []  # nothing is built locally (what no cache offers fails)
    remote_only = builder is not None and not remote_fallback
    require_installed(  # stops with the missing packages and the command that installs them
        lk,
        [] if remote_only else [*to_build, *(n for n in selected if check and n not in to_build)],
        warn=sched.events.warn,
        project_dir=None if lock_file else project.dir,
    )
    if builder is not None and not check:
        sched.sandbox = "bwrap"  # the action's wrapper runs bwrap on the worker
    elif to_build or check:
        sched.sandbox = select_sandbox(sandbox)
    else:
        sched.sandbox_request = sandbox  # chosen only if a substitution falls back to a build
    if sched.sandbox == "none" and sched.sandbox_request is None:
        sched.events.warn(
            "building without a sandbox (--sandbox none): outputs are marked unsandboxed"
        )
    store.cleanup()
    mismatch = toolchain_mismatch or ("error" if lock_file is not None else "warn")
    diffs = (
        toolchain.differences(lk.toolchain, toolchain.probe())
        if (to_build or check) and not remote_only
        else []
    )
    if diffs and mismatch == "error":
        raise InputError(
            "the host's toolchain differs from the lock's record, and the outputs would "
            "get the lock's paths: " + "; ".join(diffs),
            file=display_path(lock_file or project.lock_path),
            key="toolchain",
            hint="build anyway with --toolchain-mismatch=warn",
        )
    for line in diffs:
        sched.events.warn(f"toolchain differs from the lock's record: {line}")
    try:
        return sched.check(selected) if check else sched.realize(selected)
    finally:
        sched.events.close()
        if subs:
            subs.close()
        if builder is not None:
            builder.close()


def _manifest_remote(project: Project) -> str | None:
    """``[remote] url`` of the manifest (validated with the rest by the manifest loader)."""
    url = (top_table(project.manifest_path, "remote") or {}).get("url")
    return url if isinstance(url, str) else None


def verify_store(
    project: Project, *, repair: bool = False, report: Report = quiet
) -> tuple[list[Damage], list[Damage]]:
    """Rehash every valid path; with ``repair``, rebuild or refetch the damaged ones."""
    store = project.store(create=False)
    damaged = store.verify()
    repaired: list[Damage] = []
    if damaged and repair:
        repaired = _repair(project, store, damaged, report)
    return damaged, repaired


def _repair(project: Project, store: Store, damaged: list[Damage], report: Report) -> list[Damage]:
    """Refetch damaged sources and rebuild damaged outputs of the project's lock."""
    if not project.lock_path.exists():
        report("no raisin.lock here: cannot tell how to rebuild the damaged paths")
        return []
    lk = load_lock(project)
    by_out = {c.out: n for n, c in lk.components.items()}
    by_src = {c.source.store_path: (n, c.source) for n, c in lk.components.items()}
    ctx = FetchContext(store=store, base_dir=project.dir, file=project.lock_display)
    fixed = []
    damaged = list({d.path: d for d in damaged}.values())
    for d in damaged:
        if d.path in by_src:
            name, src = by_src[d.path]
            ctx.component, ctx.key = name, f"components.{name}.source"
            report(f"refetching {d.path.base}")
            with store.tmpdir("repair-src") as tmp:
                fetch_tree(src, ctx, tmp / "tree")
                store.repair(d.path, tmp / "tree")
            fixed.append(d)
    outs = [by_out[d.path] for d in damaged if d.path in by_out]
    if outs:
        report(f"rebuilding {', '.join(outs)}")
        sched = Scheduler(
            store=store,
            lock=lk,
            fetch=ctx,
            jobs=os.cpu_count() or 1,
            sandbox=select_sandbox("auto"),
        )
        done = set(sched.repair(outs))
        fixed += [d for d in damaged if by_out.get(d.path) in done]
    for d in damaged:
        if d.path not in by_out and d.path not in by_src:
            report(f"cannot repair {d.path.base}: it is not in {project.lock_display}")
    return fixed
