"""The scheduler: realize a lock's graph, each build as soon as its inputs are valid.

Up to ``jobs`` builds run at once, and every build's ``make`` shares one GNU
make jobserver of ``jobs`` tokens (each running build holds one), so two
concurrent builds never oversubscribe the cores. A build holds its output's
store lock from "is it valid?" to registration, so two raisin processes on
one store build each path once: the second finds it valid when it gets the
lock. ``--check`` rebuilds valid paths into a scratch directory mounted at
the same virtual path and compares NAR hashes.

With substituters, every missing output is first looked up in the caches
(in parallel, before anything starts); an offered path is fetched in one of
``FETCH_SLOTS`` download slots instead of a build slot, so downloads run
beside the builds that do not depend on them. A failed substitution falls
back to building, saying why, unless ``fallback`` is off or ``jobs`` is 0
(build nothing locally, as Nix's ``--max-jobs 0``).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from raisin_lock.build import ccache, checkpoint, fetching, sandbox
from raisin_lock.build.buildlog import DEFAULT_MAX_LOG_SIZE
from raisin_lock.build.differences import diffoscope, tree_differences
from raisin_lock.build.events import Events
from raisin_lock.build.jobserver import Jobserver
from raisin_lock.build.kept import keep
from raisin_lock.build.killer import cancel_on_exit, human_size
from raisin_lock.build.result import Failure, RealizeResult
from raisin_lock.build.sandbox import BuildSpec, check_sandbox
from raisin_lock.cache.substitute import SubstituteFailed
from raisin_lock.errors import BuildError, InputError, RaisinError, SourceError
from raisin_lock.lock import graph
from raisin_lock.lock.derivation import Derivation, dep_var
from raisin_lock.nar import hash_path
from raisin_lock.sources import materialize
from raisin_lock.store.tree import normalise

if TYPE_CHECKING:
    from raisin_lock.cache.substitute import Substituters
    from raisin_lock.lock.lockfile import Lock
    from raisin_lock.sources import FetchContext
    from raisin_lock.store.local import Store
    from raisin_lock.store_path import StorePath

SandboxMode = Literal["bwrap", "none"]
# Downloads are CPU-bound (hashing, decompressing, unpacking): one slot per
# core, and one more so the cores stay busy while a finished path waits for
# its fsync (1 GB over loopback on 2 cores, 8 interleaved rounds: medians
# 2.05 s either way, best 1.77 s with 2 slots and 1.65 s with 3).
FETCH_SLOTS = min(8, max(2, os.cpu_count() or 2)) + 1


@dataclass
class Scheduler:
    store: Store
    lock: Lock
    fetch: FetchContext
    jobs: int
    sandbox: SandboxMode
    keep_going: bool = False
    keep_failed: bool = False  # -K: failed build dirs (and differing --check outputs) are kept
    events: Events = field(default_factory=Events)
    cancel: threading.Event = field(default_factory=threading.Event)
    substituters: Substituters | None = None
    fallback: bool = True
    sandbox_request: str | None = None  # resolved at the first build when sandbox is not chosen yet
    # False for a sandboxed realize: a valid path built with --sandbox none is
    # rebuilt in the sandbox (and its record replaced) instead of trusted.
    trust_unsandboxed: bool = True
    max_log_size: int = DEFAULT_MAX_LOG_SIZE  # bytes per build log, 0: no cap
    incremental: str = "auto"  # checkpoint + compiler cache: auto (path sources), on, off
    # remote execution (remote/execute.py): builds ``name``, given the local build to fall back on
    remote_build: Callable[[str, Callable[[str], str]], str] | None = None

    def __post_init__(self) -> None:
        self.drvs: dict[str, Derivation] = self.lock.derivations()
        self.offered: set[str] = set()
        self.unoffered: dict[str, list[str]] = {}
        self._sandbox_lock = threading.Lock()
        self.cache_stats: dict[str, tuple[int, int]] = {}  # name -> compiler cache (hits, misses)
        self.checkpointed: set[str] = set()  # built from their previous build tree

    # ------------------------------------------------------------ substitutes

    def query_substitutes(self, todo: list[str]) -> set[str]:
        """Ask the caches about every output in ``todo`` (in parallel); return the offered names."""
        subs = self.substituters
        if not subs or not todo:
            return set()

        def ask(name: str) -> tuple[str, bool, list[str]]:
            offer, reasons = subs.query(self.drvs[name].out)
            return name, offer is not None, reasons

        with ThreadPoolExecutor(
            max_workers=min(16, len(todo)), thread_name_prefix="raisin-query"
        ) as pool:
            for name, ok, reasons in pool.map(ask, todo):
                if ok:
                    self.offered.add(name)
                else:
                    self.unoffered[name] = reasons
        return set(self.offered)

    def _fetch_one(self, name: str) -> str:

        assert self.substituters is not None
        drv = self.drvs[name]
        if self.store.is_valid(drv.out):
            return "valid"
        if self.cancel.is_set():
            raise _BuildFailed("cancelled", None, cancelled=True)
        self.events.started(name, "substituting")
        t0 = time.monotonic()
        try:
            info = self.substituters.fetch(self.store, drv.out, deriver=drv.hash().sri)
        except SubstituteFailed as exc:
            if not self.fallback or self.jobs == 0:
                self.events.finished(
                    name, False, time.monotonic() - t0, None, "substitution failed"
                )
                if exc.trust:
                    raise InputError(f"{name}: substitution refused: {exc.message}") from None
                raise _BuildFailed(f"substitution failed: {exc.message}", None) from None
            self.events.warn(f"{name}: substitution failed, building instead: {exc.message}")
            return self._build_one(name)
        self.events.finished(
            name, True, time.monotonic() - t0, None, f"substituted, {human_size(info.nar_size)}"
        )
        return "substituted"

    def _not_local(self, name: str) -> str:
        why = "; ".join(self.unoffered.get(name, [])) or "no substituter"
        if self.substituters is not None and self.substituters.refused(self.drvs[name].out):
            raise InputError(f"{name}: substitution refused: {why}")
        if self.jobs == 0:
            raise _BuildFailed(f"-j 0 builds nothing locally and no cache offers it ({why})", None)
        raise _BuildFailed(f"--no-fallback: no cache offers it ({why})", None)

    def _realize_one(self, name: str) -> str:
        if name in self.offered:
            return self._fetch_one(name)
        if self.substituters and (self.jobs == 0 or not self.fallback):
            return self._not_local(name)
        if self.remote_build is not None:
            return self.remote_build(name, self._build_one)
        return self._build_one(name)

    def _ensure_sandbox(self) -> None:
        if self.sandbox_request is None:
            return
        with self._sandbox_lock:
            if self.sandbox_request is not None:
                if self.sandbox_request != "none":
                    check_sandbox()
                    self.sandbox = "bwrap"
                else:
                    self.sandbox = "none"
                self.sandbox_request = None

    # ------------------------------------------------------------ planning

    def plan(self, names: list[str]) -> tuple[list[str], list[str]]:
        """(closure in build order, the ones already valid)."""
        order = self.lock.closure(names)
        outs = [self.drvs[n].out for n in order]
        valid = self.store.valid_subset(outs)
        if not self.trust_unsandboxed:
            valid -= self.store.unsandboxed_subset(outs)
        return order, [n for n in order if self.drvs[n].out in valid]

    # ------------------------------------------------------------ realize

    def realize(self, names: list[str]) -> RealizeResult:
        order, valid = self.plan(names)
        result = RealizeResult(already_valid=valid)
        todo = [n for n in order if n not in set(valid)]
        if not todo:
            return result
        if self.substituters and not self.offered and not self.unoffered:
            self.query_substitutes(todo)
        for name in todo:
            if name in self.unoffered and self.fallback and self.jobs > 0:
                reasons = self.unoffered[name]
                if any("not in the cache" not in r for r in reasons):
                    self.events.warn(f"{name}: not substituted ({'; '.join(reasons)}); building it")
        fetch = [n for n in todo if n in self.offered]
        if fetch:
            self.events.planned(fetch, "substitute")
        build = [n for n in todo if n not in self.offered]
        if build:
            self.events.planned(build)
        self._run_graph(todo, result, self._realize_one)
        result.compiler_cache = dict(self.cache_stats)
        result.checkpointed = sorted(self.checkpointed)
        return result

    def check(self, names: list[str]) -> RealizeResult:
        """Rebuild valid paths of ``names`` (not their dependencies) and compare."""
        result = self.realize(names)  # whatever is missing gets built first
        if not result.ok:
            return result
        if self.sandbox != "bwrap":
            raise InputError(
                "--check needs the bubblewrap sandbox (it rebuilds at the same virtual path)"
            )
        targets = [n for n in self.lock.closure(names) if n in set(names)]
        self.events.planned(targets, "check")
        self._run_graph(targets, result, self._check_one, independent=True)
        return result

    def _run_graph(
        self,
        todo: list[str],
        result: RealizeResult,
        work: Callable[[str], str],
        independent: bool = False,
    ) -> None:

        waiting = {n: {d for d in self.lock.components[n].deps if d in set(todo)} for n in todo}
        if independent:
            waiting = {n: set() for n in todo}
        dependents: dict[str, list[str]] = {n: [] for n in todo}
        for n, ds in waiting.items():
            for d in ds:
                dependents[d].append(n)
        # Critical path first (build times are unknown beforehand: each counts 1), then by name.
        chain = graph.critical_path_priority({n: tuple(waiting[n]) for n in todo}, lambda _n: 1.0)
        priority = {n: (chain[n], n) for n in todo}
        ready = sorted((n for n in todo if not waiting[n]), key=priority.__getitem__, reverse=True)
        running: dict[Future[str], str] = {}
        finished: set[str] = set()  # built, failed, cancelled, ... (not skipped)
        stopped = False
        slots = max(1, self.jobs)
        self._jobserver = Jobserver(slots)

        fetches: set[Future[str]] = set()  # the running futures that are downloads

        def fetching(name: str) -> bool:
            return name in self.offered and work == self._realize_one

        def free(name: str) -> bool:
            if fetching(name):
                return len(fetches) < FETCH_SLOTS
            return len(running) - len(fetches) < slots

        try:
            with (
                ThreadPoolExecutor(
                    max_workers=slots + FETCH_SLOTS, thread_name_prefix="raisin-build"
                ) as pool,
                cancel_on_exit(self.cancel),
            ):
                while ready or running:
                    i = 0
                    while i < len(ready) and not stopped:
                        if not free(ready[i]):
                            i += 1
                            continue
                        name = ready.pop(i)
                        fut = pool.submit(work, name)
                        running[fut] = name
                        if fetching(name):
                            fetches.add(fut)
                    if not running:
                        break
                    done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in done:
                        name = running.pop(fut)
                        fetches.discard(fut)
                        try:
                            note = fut.result()
                        except _BuildFailed as exc:
                            if exc.cancelled:  # stopped because another build failed
                                if exc.log is None:
                                    continue  # never started: counted as not started
                                result.cancelled.append(Failure(name, exc.reason, exc.log))
                                finished.add(name)
                                continue
                            finished.add(name)
                            result.failed.append(Failure(name, exc.reason, exc.log))
                            self._skip_dependents(name, dependents, waiting, result)
                            if not self.keep_going:
                                stopped = True
                                self.cancel.set()
                            continue
                        except RaisinError as exc:
                            finished.add(name)
                            self.events.finished(name, False, 0.0, None, "error below")
                            result.failed.append(Failure(name, str(exc)))
                            self._skip_dependents(name, dependents, waiting, result)
                            if not self.keep_going or exc.exit_code == 2:
                                stopped = True
                                self.cancel.set()
                                if exc.exit_code == 2:
                                    raise
                            continue
                        finished.add(name)
                        if note == "built":
                            result.built.append(name)
                        elif note == "substituted":
                            result.substituted.append(name)
                        elif note == "valid":
                            result.already_valid.append(name)
                        elif note == "differs":
                            files, summary = self.diffs()[name]
                            result.not_reproducible[name] = files
                            if summary:
                                result.check_summary[name] = summary
                        for dep in dependents[name]:
                            waiting[dep].discard(name)
                            if not waiting[dep] and dep not in result.skipped:
                                ready.append(dep)
                        ready.sort(key=priority.__getitem__, reverse=True)
                    if stopped:
                        ready.clear()
        finally:
            self._jobserver.close()
        for n in todo:  # what a stop left: neither finished nor skipped
            if n not in finished and n not in result.skipped:
                result.not_started.append(n)
                self.events.skipped(n, "not started")

    def _skip_dependents(
        self,
        name: str,
        dependents: dict[str, list[str]],
        waiting: dict[str, set[str]],
        result: RealizeResult,
    ) -> None:
        stack = list(dependents[name])
        while stack:
            n = stack.pop()
            if n not in result.skipped:
                result.skipped.append(n)
                self.events.skipped(n, f"{name} failed")
                stack.extend(dependents[n])

    # ------------------------------------------------------------ one build

    def _inputs(
        self, name: str, src: StorePath
    ) -> tuple[dict[str, str], set[StorePath], dict[str, str]]:
        comp = self.lock.components[name]
        dep_outs = [self.drvs[d].out for d in comp.deps]
        closure = self.store.closure(dep_outs) if dep_outs else set()
        inputs = {sp.virtual: str(self.store.host_path(sp)) for sp in closure | {src}}
        dep_vars = {dep_var(d): self.drvs[d].out.virtual for d in comp.deps}
        return inputs, closure | {src}, dep_vars

    def spec_for(
        self, name: str, out_host: Path, bdir: Path, src: StorePath, log: Path
    ) -> tuple[BuildSpec, set[StorePath]]:
        """The sandbox spec of ``name``'s build, and the store paths its output may refer to."""
        comp = self.lock.components[name]
        inputs, candidates, dep_vars = self._inputs(name, src)
        spec = BuildSpec(
            name=name,
            steps=comp.steps,
            env=dict(comp.env),
            out=self.drvs[name].out.virtual,
            out_host=str(out_host),
            src=src.virtual,
            src_host=str(self.store.host_path(src)),
            inputs=inputs,
            dep_vars=dep_vars,
            build_dir_host=str(bdir),
            log_path=str(log),
            source_date_epoch=comp.source.date,
            jobs=self.jobs,
            sandbox=self.sandbox,
            max_log_size=self.max_log_size,
        )
        return spec, candidates

    def source(self, name: str) -> StorePath:
        """The store path the build of ``name`` starts from: its source, or the fetched tree."""

        comp = self.lock.components[name]
        ctx = replace(self.fetch, component=name, key=f"components.{name}.source")  # one per thread
        if comp.fetched is not None and self.store.is_valid(comp.fetched):
            return comp.fetched  # the fetched tree is all the build needs
        try:
            src = materialize(comp.source, ctx)
        except SourceError as exc:
            if comp.source.kind == "path" and exc.hint is None:
                exc.hint = (
                    f"{name}'s source is a local directory, which a lock does not carry: "
                    f"put the directory there, or give a --substituter (a cache that has "
                    f"{self.drvs[name].out.base})"
                )
            raise
        if not comp.fetch:
            return src
        fetched, _ = fetching.fetch(
            self.store,
            name,
            comp.fetch,
            src,
            comp.source.date,
            comp.fetch_hash,
            mode=self.sandbox,
            offline=ctx.offline,
            file=ctx.file,
        )
        return fetched

    def _build_one(self, name: str) -> str:
        try:
            return self._build_one_locked(name)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            raise BuildError(f"{name}: no space left on device{where}") from exc
        except BuildError as exc:
            if "No space left on device" not in exc.message:
                raise
            raise BuildError(f"{name}: no space left on device: {exc.message}") from exc

    def _build_one_locked(self, name: str) -> str:

        drv = self.drvs[name]
        out = drv.out
        self._ensure_sandbox()
        if not self._jobserver.acquire(self.cancel):
            raise _BuildFailed("cancelled", None, cancelled=True)
        try:
            if self.cancel.is_set():
                raise _BuildFailed("cancelled", None, cancelled=True)
            with self.store.lock(out):
                # a valid unsandboxed path under a sandboxed realize: build it again
                redo = self.store.is_valid(out) and not self._trusted(out)
                if self.store.is_valid(out) and not redo:
                    self.events.finished(name, True, 0.0, None, "built by another process")
                    return "valid"
                src = self.source(name)
                log = self.store.log_path(out)
                log.parent.mkdir(parents=True, exist_ok=True)
                log.unlink(missing_ok=True)
                self.events.started(name, "building")
                t0 = time.monotonic()
                with self.store.tmpdir(f"build-{name}") as bdir:
                    out_host = bdir / "out" / out.base if redo else self.store.prepare_build(out)
                    spec, candidates = self.spec_for(name, out_host, bdir, src, log)
                    ck = checkpoint.key_for(self.lock, self.drvs, name, self.incremental)
                    if ck is not None:
                        root, host_src = self.store.root, self.store.host_path(src)
                        spec, restored = checkpoint.prepare(root, name, ck, spec, host_src, bdir)
                        if restored:
                            self.checkpointed.add(name)
                    res = sandbox.run(spec, jobserver=self._jobserver, cancel=self.cancel)
                    if spec.ccache_host is not None:
                        self.cache_stats[name] = ccache.stats(str(bdir))
                    if not res.ok:
                        why = res.failure or f"exit status {res.exit_code}"
                        if self.keep_failed and not res.cancelled:
                            if not redo and os.path.lexists(out_host):
                                os.rename(out_host, bdir / "out")
                            why += f"; build directory kept: {keep(self.store.root, bdir, 'build', name)}"
                        if not redo:
                            self.store.prepare_build(out)  # remove the partial output now
                        if res.cancelled:
                            self.events.cancelled(name, time.monotonic() - t0, log)
                            raise _BuildFailed("cancelled", log, cancelled=True)
                        self.events.finished(name, False, time.monotonic() - t0, log)
                        raise _BuildFailed(why, log)
                    if not out_host.exists():
                        self.events.finished(name, False, time.monotonic() - t0, log)
                        raise _BuildFailed("the build did not create $out", log)
                    try:
                        if redo:
                            info = self.store.replace_unsandboxed(
                                out, out_host, candidates=candidates, deriver=drv.hash().sri
                            )
                        else:
                            info = self.store.register(
                                out,
                                candidates=candidates,
                                deriver=drv.hash().sri,
                                sandboxed=self.sandbox == "bwrap",
                            )
                    except BuildError as exc:
                        if not redo:
                            self.store.prepare_build(out)
                        self.events.finished(name, False, time.monotonic() - t0, log)
                        raise _BuildFailed(str(exc), log) from None
                    if ck is not None:
                        checkpoint.save(self.store.root, name, ck, src.base, bdir / "src")
                self.store.record_derivation(drv.hash().sri, out, name)
                self.events.finished(
                    name, True, time.monotonic() - t0, log, human_size(info.nar_size)
                )
                return "built"
        finally:
            self._jobserver.release()

    def _trusted(self, out: StorePath) -> bool:
        if self.trust_unsandboxed or self.sandbox != "bwrap":
            return True
        return not self.store.unsandboxed_subset([out])

    def rebuild_in(self, name: str, scratch: Path) -> Path:
        """Build ``name`` again into ``scratch/out`` (mounted at its virtual path); normalised."""

        src = self.source(name)
        out_host = scratch / "out"
        bdir = scratch / "build"
        bdir.mkdir()
        log = scratch / "build.log"
        spec, _ = self.spec_for(name, out_host, bdir, src, log)
        res = sandbox.run(spec, jobserver=self._jobserver, cancel=self.cancel)
        if not res.ok or not out_host.exists():
            kept = self.store.log_path(self.drvs[name].out).with_suffix(".rebuild.log")
            shutil.copyfile(log, kept)
            raise _BuildFailed(f"rebuild failed (exit status {res.exit_code})", kept)
        normalise(out_host, fsync=False)
        return out_host

    def _check_one(self, name: str) -> str:

        out = self.drvs[name].out
        info = self.store.query(out)
        assert info is not None
        if not self._jobserver.acquire(self.cancel):
            raise _BuildFailed("cancelled", None, cancelled=True)
        try:
            self.events.started(name, "checking")
            t0 = time.monotonic()
            with self.store.tmpdir(f"check-{name}") as scratch:
                try:
                    again_tree = self.rebuild_in(name, scratch)
                except _BuildFailed as exc:
                    self.events.finished(name, False, time.monotonic() - t0, exc.log)
                    raise
                again, _ = hash_path(again_tree)
                if again != info.nar_hash:
                    files = tree_differences(self.store.host_path(out), again_tree)
                    summary = diffoscope(self.store.host_path(out), again_tree)
                    if self.keep_failed:
                        kept = keep(self.store.root, again_tree, "check", name)
                        line = f"second build kept: {kept} (first: {self.store.host_path(out)})"
                        summary = f"{summary}\n{line}" if summary else line
                    self._record_diff(name, files, summary)
                    self.events.finished(
                        name, False, time.monotonic() - t0, None, "not reproducible"
                    )
                    return "differs"
            self.events.finished(name, True, time.monotonic() - t0, None, "reproducible")
            return "checked"
        finally:
            self._jobserver.release()

    def repair(self, names: list[str]) -> list[str]:
        """Rebuild damaged valid outputs of ``names`` and swap the content back in."""

        fixed = []
        self._jobserver = Jobserver(self.jobs)
        try:
            for name in names:
                out = self.drvs[name].out
                self._jobserver.acquire()
                try:
                    with self.store.tmpdir(f"repair-{name}") as scratch:
                        self.store.repair(out, self.rebuild_in(name, scratch))
                    fixed.append(name)
                finally:
                    self._jobserver.release()
        finally:
            self._jobserver.close()
        return fixed

    def _record_diff(self, name: str, files: list[str], summary: str | None) -> None:
        self._diffs = getattr(self, "_diffs", {})
        self._diffs[name] = (files, summary)

    def diffs(self) -> dict[str, tuple[list[str], str | None]]:
        return getattr(self, "_diffs", {})


class _BuildFailed(Exception):
    def __init__(self, reason: str, log: Path | None, *, cancelled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log = log
        self.cancelled = cancelled  # stopped because of another failure, not failed itself
