"""raisin bisect NAME --good REF --bad REF -- TEST|COMMAND...: the first bad commit of one component."""

from __future__ import annotations

import argparse

from raisin_lock.cli import options
from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bisect",
        usage="raisin bisect NAME --good REF --bad REF [-j N] [--sandbox MODE] -- TEST|COMMAND...",
        help="find the first commit of a component that breaks a test",
        description=(
            "Bisect one git-pinned component between two commits, everything else as locked "
            "(built already or substituted). Each step is judged by a `raisin test` name or a "
            "command: exit 0 good, 125 skip, anything else bad; a commit that does not build is "
            "skipped. The command sees RAISIN_LOCK, RAISIN_REV and RAISIN_OUT_<component>. "
            "raisin.lock is left unchanged."
        ),
    )
    p.add_argument("name", metavar="NAME", help="the component to bisect (a git source)")
    p.add_argument(
        "--good", required=True, metavar="REF", help="a commit, tag or branch known good"
    )
    p.add_argument("--bad", required=True, metavar="REF", help="a commit, tag or branch known bad")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel builds (default: cores)")
    options.sandbox(p)
    p.set_defaults(run=run, after_dashes=[])


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.bisect import bisect
    from raisin_lock.app.testing import load
    from raisin_lock.errors import InputError

    judge = list(args.after_dashes)
    if not judge:
        raise InputError("give a test name or a command after --", key="TEST")
    test: str | None = None
    command: list[str] | None = judge
    if len(judge) == 1:
        _lock, cases = load(ctx.project)
        if judge[0] in cases:
            test, command = judge[0], None
    res = bisect(
        ctx.project,
        args.name,
        args.good,
        args.bad,
        test=test,
        command=command,
        jobs=args.jobs,
        sandbox=args.sandbox,
        report=ctx.info,
    )
    ctx.info(
        f"{len(res.steps)} steps over {res.candidates} commits, {res.builds} of them built something"
    )
    if res.first_bad is None:
        ctx.out("the first bad commit could be any of:")
        for rev in res.left:
            ctx.out(rev)
        return 1
    ctx.out(f"{res.first_bad} is the first bad commit of {args.name}")
    return 0
