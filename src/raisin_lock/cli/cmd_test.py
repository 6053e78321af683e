"""raisin test [NAME...] [--junit FILE] [--list] [--keep] [-j N] [--sandbox MODE] [--offline]."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.cli import options
from raisin_lock.cli.context import Context

if TYPE_CHECKING:
    from raisin_lock.testing.results import TestResult
    from raisin_lock.testing.spec import TestCase

TAIL = 20


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("test", help="boot the realized stack under QEMU and check the console")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="tests to run (default: all; their `after` tests run first)",
    )
    p.add_argument("--junit", metavar="FILE", default=None, help="write JUnit XML results to FILE")
    p.add_argument("--list", action="store_true", help="list the stack's tests and exit")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep every test's directory (failed ones are always kept)",
    )
    p.add_argument(
        "-j", "--jobs", type=int, default=None, help="build jobs for realizing what is missing"
    )
    options.sandbox(p)
    options.offline(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"ok": bool, "results": [{"name", "status" (passed|failed|error|skipped), '
        '"seconds", "reason", "log": FILE|null}]}; with --list: {"tests": {NAME: {"origin", '
        '"needs", "timeout", "after", "skip": WHY|null}}}',
    )
    p.set_defaults(run=run)


def _list(ctx: Context, cases: dict[str, TestCase]) -> int:
    from raisin_lock.app.testing import static_skip

    if not cases:
        ctx.info("no tests: no recipe of this stack and no [tests.*] in raisin.toml declares one")
        return 0
    width = max(len(n) for n in cases)
    for name, case in cases.items():
        why = static_skip(case)
        needs = ", ".join(f"{n}={c}" if c and c != n else n for n, c in case.needs.items()) or "-"
        ctx.out(
            f"{name:<{width}}  {case.origin}; needs {needs}; timeout {case.timeout:g}s"
            + (f"; after {', '.join(case.after)}" if case.after else "")
            + (f"  [skip: {why}]" if why else "")
        )
        if case.doc and not ctx.quiet:
            ctx.out(f"{'':<{width}}  {' '.join(case.doc.split())}")
    return 0


def _list_json(ctx: Context, cases: dict[str, TestCase]) -> int:
    from raisin_lock.app.testing import static_skip

    ctx.json(
        {
            "tests": {
                name: {
                    "origin": case.origin,
                    "needs": dict(case.needs),
                    "timeout": case.timeout,
                    "after": list(case.after),
                    "skip": static_skip(case),
                }
                for name, case in cases.items()
            }
        }
    )
    return 0


class _Printer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def info(self, message: str) -> None:
        self.ctx.info(message)

    def started(self, case: TestCase) -> None:
        self.ctx.info(f"test {case.name}: running (timeout {case.timeout:g}s)")

    def finished(self, result: TestResult) -> None:
        word = {"passed": "ok", "failed": "FAILED", "error": "ERROR", "skipped": "skipped"}[
            result.status
        ]
        timing = f" ({result.seconds:.1f}s)" if result.status in ("passed", "failed") else ""
        extra = f": {result.reason}" if result.status != "passed" else ""
        self.ctx.info(f"test {result.name} {word}{timing}{extra}")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.testing import load, run_tests
    from raisin_lock.cli.progress import make_events
    from raisin_lock.errors import InputError
    from raisin_lock.testing import junit

    if args.jobs is not None and args.jobs < 1:
        raise InputError("-j must be at least 1", key="-j")
    if args.list:
        _lk, cases = load(ctx.project, offline=args.offline)
        if args.json:
            return _list_json(ctx, cases)
        return _list(ctx, cases)
    printer = _Printer(ctx)
    res = run_tests(
        ctx.project,
        args.names,
        jobs=args.jobs,
        sandbox=args.sandbox,
        offline=args.offline,
        keep=args.keep,
        events=make_events(ctx.quiet),
        progress=printer,  # type: ignore[arg-type]
    )
    if args.junit:
        junit.write(res, Path(args.junit))
    if args.json:
        ctx.json(
            {
                "ok": res.ok,
                "results": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "seconds": round(r.seconds, 3),
                        "reason": r.reason,
                        "log": str(r.log) if r.log else None,
                    }
                    for r in res.results
                ],
            }
        )
        return 0 if res.ok else 1
    _table(ctx, res.results)
    for r in res.results:
        if r.unpinned:
            for iname in r.unpinned:
                ctx.info(f"note: {r.name}: input {iname} is not pinned; used {r.inputs[iname]}")
            ctx.info("  to pin, add to raisin.toml:")
            ctx.info(f"    [tests.{r.name}.inputs]")
            for iname, pin in r.unpinned.items():
                ctx.info(f"    {iname} = {pin}")
    for r in res.results:
        if r.status not in ("failed", "error"):
            continue
        ctx.info(f"error: {r.name}: {r.reason}")
        if r.tail:
            tail = r.tail[-TAIL:]
            ctx.info(f"--- last {len(tail)} console lines of {r.name} ---")
            for line in tail:
                ctx.info(f"  {line}")
        if r.log:
            ctx.info(
                f"--- full log: {r.log}"
                + (f"  (test directory kept: {r.workdir})" if r.workdir else "")
            )
    if args.junit:
        ctx.info(f"JUnit XML written to {args.junit}")
    return 0 if res.ok else 1


def _table(ctx: Context, results: list[TestResult]) -> None:
    if not results:
        ctx.out("no tests to run")
        return
    rows = [("TEST", "RESULT", "TIME", "DETAIL")]
    for r in results:
        word = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}[r.status]
        detail = "" if r.status == "passed" else r.reason
        rows.append((r.name, word, f"{r.seconds:.1f}s" if r.seconds else "-", detail))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        ctx.out(f"{row[0]:<{w[0]}}  {row[1]:<{w[1]}}  {row[2]:>{w[2]}}  {row[3]}".rstrip())
    counts = {
        s: sum(r.status == s for r in results) for s in ("passed", "failed", "error", "skipped")
    }
    ctx.out(", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "passed"))
