"""The use case behind ``raisin test``: realize what the tests need, run them, return results.

Order of work: lock if the manifest changed; collect the stack's tests;
take the selected ones and every test they come ``after``; skip, with the
reason, those that cannot run here (``skip`` set, a needed component not in
the stack, a host tool not installed); realize the components the rest need
(missing builds first, ``--keep-going``, so one broken component does not
stop the tests of the others); then run each test in order in its own
directory under one temporary root, its console in
``<store>/.raisin/test-logs/NAME.log``. A test whose ``after`` test did not
pass is skipped. Directories of passed and skipped tests are removed at the
end; a failed test's is kept (its path is in the result) for a post-mortem.

Nothing is printed here; ``progress`` gets told what happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from raisin_lock.app.locking import lock
from raisin_lock.app.project import Project, load_lock
from raisin_lock.app.realizing import realize
from raisin_lock.build.events import Events
from raisin_lock.errors import HashMismatch, InputError, RaisinError
from raisin_lock.lock.lockfile import Lock
from raisin_lock.store.local import Store
from raisin_lock.testing import LIB_DIR, console
from raisin_lock.testing.inputs import InputUnavailable
from raisin_lock.testing.inputs import resolve as resolve_input
from raisin_lock.testing.results import Progress, Status, TestResult, TestRun
from raisin_lock.testing.spec import TestCase, collect, order


def _var(name: str) -> str:
    return name.replace("-", "_")


def load(
    project: Project, *, offline: bool = False, progress: Progress | None = None
) -> tuple[Lock, dict[str, TestCase]]:
    """The current lock (locking first if the manifest changed) and the stack's tests."""
    progress = progress or Progress()
    manifest = None
    if project.manifest_path.exists():
        lk = lock(project, offline=offline, report=progress.info).lock
        manifest = project.load_manifest()
    else:
        lk = load_lock(project)
    return lk, collect(lk, manifest)


def static_skip(case: TestCase) -> str | None:
    """Why ``case`` cannot run on this host with this stack, before anything is built; None if it can."""
    if case.skip is not None:
        return case.skip
    if case.absent:
        what = ", ".join(case.absent.values())
        return f"needs {what}, which this stack does not have"
    missing = [t for t in case.tools if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed" + (
            " (Debian: apt-get install qemu-system-x86)"
            if any(t.startswith("qemu-system-") for t in missing)
            else ""
        )
    return None


def run_tests(
    project: Project,
    names: list[str] | None = None,
    *,
    jobs: int | None = None,
    sandbox: str = "auto",
    offline: bool = False,
    keep: bool = False,
    events: Events | None = None,
    progress: Progress | None = None,
) -> TestRun:
    """Run the selected tests (all when ``names`` is empty) and their ``after`` tests."""
    progress = progress or Progress()
    started = time.time()
    lk, cases = load(project, offline=offline, progress=progress)
    for n in names or ():
        if n not in cases:
            raise InputError(
                f"unknown test {n!r} (known: {', '.join(cases) or 'none: no recipe or raisin.toml declares tests'})"
            )
    sequence = order(cases, list(names) if names else list(cases))
    static = {n: static_skip(cases[n]) for n in sequence}
    needed = sorted({c for n in sequence if static[n] is None for c in cases[n].components})
    broken: set[str] = set()
    if needed:
        res = realize(
            project,
            needed,
            jobs=jobs,
            keep_going=True,
            sandbox=sandbox,
            offline=offline,
            events=events,
            report=progress.info,
        )
        broken = {f.name for f in res.failed} | set(res.skipped)
    store = project.store()
    log_dir = store.root / ".raisin" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    workroot = Path(tempfile.mkdtemp(prefix="raisin-test-"))
    results: dict[str, TestResult] = {}
    try:
        for n in sequence:
            case = cases[n]
            result = _one(
                case, lk, store, static[n], broken, results, workroot, log_dir, offline, progress
            )
            results[n] = result
            progress.finished(result)
    finally:
        for r in results.values():
            if r.workdir is not None and (keep is False and r.status != "failed"):
                shutil.rmtree(r.workdir, ignore_errors=True)
                r.workdir = None
        if not keep and not any(r.workdir for r in results.values()):
            shutil.rmtree(workroot, ignore_errors=True)
    return TestRun(results=[results[n] for n in sequence], started=started, log_dir=log_dir)


def _one(
    case: TestCase,
    lk: Lock,
    store: Store,
    skip_reason: str | None,
    broken: set[str],
    done: dict[str, TestResult],
    workroot: Path,
    log_dir: Path,
    offline: bool,
    progress: Progress,
) -> TestResult:
    def result(status: Status, reason: str, **kw: Any) -> TestResult:
        return TestResult(case.name, case.origin, status, reason, **kw)

    if skip_reason is not None:
        return result("skipped", skip_reason)
    for a in case.after:
        if done[a].status != "passed":
            return result(
                "skipped",
                f"comes after {a}, which {'was skipped' if done[a].status == 'skipped' else 'did not pass'}",
            )
    bad = [c for c in case.components if c in broken]
    if bad:
        return result("error", f"{', '.join(bad)} did not build (raisin log {bad[0]})")
    progress.started(case)
    t0 = time.monotonic()
    env = _env(case, workroot)
    inputs: dict[str, str] = {}
    unpinned: dict[str, str] = {}
    for iname, ispec in case.inputs.items():
        try:
            got = resolve_input(ispec, store, offline=offline)
        except InputUnavailable as exc:
            return result("skipped", f"input {iname}: {exc}")
        except (InputError, HashMismatch) as exc:
            return result("error", f"input {iname}: {exc}", seconds=time.monotonic() - t0)
        inputs[iname] = got.describe()
        if not got.pinned:
            unpinned[iname] = got.pin(ispec.keep)
        env[_var(iname)] = str(store.host_path(got.path))
    for n, comp in case.needs.items():
        assert comp is not None
        env[_var(n)] = str(store.host_path(lk.components[comp].out))
    for a in case.after:
        if done[a].workdir is not None:
            env[f"{_var(a)}_dir"] = str(done[a].workdir)
    workdir = workroot / case.name
    (workdir / ".tmp").mkdir(parents=True)
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir / ".tmp"),
        RAISIN_TEST_DIR=str(workdir),
        RAISIN_TEST_LIB=str(workdir / ".lib"),
    )
    try:
        shutil.copytree(LIB_DIR, workdir / ".lib")
        for rel, text in case.files.items():
            f = workdir / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            if text.startswith("#!"):
                f.chmod(0o755)
    except OSError as exc:
        return result("error", f"cannot write the test's files: {exc}", workdir=workdir)
    log = log_dir / f"{case.name}.log"
    _header(log, case, env, inputs)
    prep = time.monotonic() - t0
    outcome = console.run(
        case.run,
        cwd=workdir,
        env=env,
        log_path=log,
        expect=case.expect,
        fail_on=case.fail_on,
        timeout=case.timeout,
    )
    status: Status = "passed" if outcome.passed else "failed"
    with open(log, "a") as fh:
        fh.write(
            f"raisin: {status}: {outcome.reason} ({outcome.seconds:.1f}s; inputs {prep:.1f}s)\n"
        )
    return result(
        status,
        outcome.reason,
        seconds=prep + outcome.seconds,
        log=log,
        tail=outcome.tail,
        workdir=workdir,
        inputs=inputs,
        unpinned=unpinned,
    )


def _env(case: TestCase, workroot: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "RAISIN_TEST": case.name,
        "RAISIN_TEST_TIMEOUT": f"{case.timeout:g}",
    }


def _header(log: Path, case: TestCase, env: dict[str, str], inputs: dict[str, str]) -> None:
    lines = [
        f"raisin test {case.name} ({case.origin}), timeout {case.timeout:g}s, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    ]
    lines += [f"  ${_var(n)} = {env[_var(n)]}" for n in case.needs]
    lines += [f"  ${_var(n)} = {env[_var(n)]}  ({inputs[n]})" for n in inputs]
    lines += [f"  expect {p}" for p in case.expect]
    lines += [f"  fail-on {p}" for p in case.fail_on]
    try:
        log.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise RaisinError(f"cannot write the test log: {exc}", file=str(log)) from exc
