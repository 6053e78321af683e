"""Bisect: find the first commit of one component that breaks the stack.

``raisin bisect NAME --good REF --bad REF -- TEST`` does what ``git bisect
run`` does, with the whole stack around the component: for each commit it
tries, it pins NAME to that commit in a temporary lock (every other
component exactly as in ``raisin.lock``, so their outputs are the ones in
the store already, or substituted), realizes that lock, and judges it by a
``raisin test`` name or a command (exit 0 good, 125 skip, anything else
bad; a commit that does not build is skipped, as a ``make || exit 125``
script would do). It prints the first bad commit and leaves ``raisin.lock``
untouched.

The command runs in the project directory with ``RAISIN_LOCK`` (the
temporary lock), ``RAISIN_REV`` (the commit being judged) and, per
component, ``RAISIN_OUT_<var>`` (its output path in this store; ``<var>``
as in builds: ``qemu-xen`` -> ``qemu_xen``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from raisin_lock.app.project import Project, Report, load_lock, quiet
from raisin_lock.app.realizing import realize
from raisin_lock.app.testing import run_tests
from raisin_lock.errors import InputError, unknown_component
from raisin_lock.lock import lockfile
from raisin_lock.lock.derivation import dep_var
from raisin_lock.lock.lockfile import Lock
from raisin_lock.sources import FetchContext
from raisin_lock.sources import git as git_source

GOOD, BAD, SKIP = "good", "bad", "skip"


@dataclass
class Step:
    rev: str
    verdict: str
    built: list[str] = field(default_factory=list)  # components built (not found in the store)
    why: str = ""


@dataclass
class BisectResult:
    first_bad: str | None  # None: every candidate was skipped
    steps: list[Step]
    candidates: int  # commits between good (excluded) and bad (included)
    left: list[str] = field(default_factory=list)  # when skips leave several candidates

    @property
    def builds(self) -> int:
        """How many steps had to build something (the rest came from the store)."""
        return sum(1 for s in self.steps if s.built)


def bisect(
    project: Project,
    name: str,
    good: str,
    bad: str,
    *,
    test: str | None = None,
    command: list[str] | None = None,
    jobs: int | None = None,
    sandbox: str = "auto",
    report: Report = quiet,
) -> BisectResult:
    """Find the first bad commit of ``name`` between ``good`` and ``bad``."""
    if (test is None) == (command is None):
        raise InputError("give either a test name or a command after --", key="TEST")
    lk = load_lock(project)
    if name not in lk.components:
        raise unknown_component(name, lk.components, key="NAME")
    comp = lk.components[name]
    if comp.source.kind != "git" or comp.source.url is None:
        raise InputError(
            f"{name} has a {comp.source.kind} source; bisect walks a git history",
            key=f"components.{name}.source",
        )
    url = comp.source.url
    store = project.store()
    ctx = FetchContext(
        store=store, base_dir=project.dir, component=name, key=f"components.{name}.source"
    )
    revs = git_source.commits_between(ctx, url, good, bad)
    if not revs:
        raise InputError(f"{bad!r} is not a descendant of {good!r} in {url}", key="--bad")
    report(f"bisecting {name}: {len(revs)} commits after {good}, {bad} is bad")
    judge = _judge(project, lk, name, test, command, jobs, sandbox, report)
    candidates = list(revs)  # skipped commits are dropped from it
    skipped: list[str] = []
    steps: list[Step] = []
    lo, hi = 0, len(candidates) - 1  # candidates[hi] is bad; everything before lo is good
    while lo < hi:
        mid = (lo + hi) // 2
        step = judge(ctx, url, candidates[mid])
        steps.append(step)
        report(f"{candidates[mid][:12]}: {step.verdict}" + (f" ({step.why})" if step.why else ""))
        if step.verdict == BAD:
            hi = mid
        elif step.verdict == GOOD:
            lo = mid + 1
        else:
            skipped.append(candidates.pop(mid))
            hi -= 1
    found = candidates[hi]
    last_good = revs.index(candidates[lo - 1]) if lo > 0 else -1
    hidden = [r for r in skipped if last_good < revs.index(r) < revs.index(found)]
    if hidden:  # a skipped commit between the last good one and this one may be the first bad
        return BisectResult(None, steps, len(revs), left=sorted([*hidden, found], key=revs.index))
    return BisectResult(found, steps, len(revs))


def _judge(
    project: Project,
    lk: Lock,
    name: str,
    test: str | None,
    command: list[str] | None,
    jobs: int | None,
    sandbox: str,
    report: Report,
) -> Callable[[FetchContext, str, str], Step]:
    comp = lk.components[name]

    def judge(ctx: FetchContext, url: str, rev: str) -> Step:
        pinned = git_source.pin(ctx, url, rev)
        trial = Lock(system=lk.system, toolchain=dict(lk.toolchain), components=dict(lk.components))
        trial.components[name] = replace(comp, source=pinned)
        for n, drv in trial.derivations().items():
            trial.components[n] = replace(trial.components[n], out=drv.out, drv=drv.hash())
        with ctx.store.tmpdir("bisect") as tmp:
            lock_path = tmp / "raisin.lock"
            lockfile.write(lock_path, trial)
            trial_project = Project(
                dir=project.dir, store_root=project.store_root, lock_path=lock_path
            )
            res = realize(trial_project, None, jobs=jobs, sandbox=sandbox, report=report)
            if not res.ok:
                failed = ", ".join(f.name for f in res.failed) or ", ".join(res.skipped)
                return Step(rev, SKIP, res.built, f"does not build: {failed}")
            if test is not None:
                run = run_tests(trial_project, [test], jobs=jobs, sandbox=sandbox)
                result = next(r for r in run.results if r.name == test)
                verdict = {"passed": GOOD, "failed": BAD}.get(result.status, SKIP)
                return Step(rev, verdict, res.built, result.reason if verdict != GOOD else "")
            assert command is not None
            env = dict(os.environ, RAISIN_LOCK=str(lock_path), RAISIN_REV=rev)
            for n, c in trial.components.items():
                env[f"RAISIN_OUT_{dep_var(n)}"] = str(ctx.store.host_path(c.out))
            code = subprocess.run(command, cwd=project.dir, env=env, check=False).returncode
            verdict = GOOD if code == 0 else SKIP if code == 125 else BAD
            return Step(rev, verdict, res.built, f"exit status {code}" if code else "")

    return judge
