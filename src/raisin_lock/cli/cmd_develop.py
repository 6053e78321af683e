"""raisin develop NAME [-c CMD]: a shell in NAME's exact build environment."""

from __future__ import annotations

import argparse

from raisin_lock.cli import options
from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "develop",
        help="a shell (or -c CMD) in a component's build environment",
        description=(
            "Open the sandbox a build of NAME gets (no network, no home, fixed paths and "
            "variables, the dependencies' outputs) with the source writable in place: a path "
            "source is your checkout itself, any other source a copy kept in "
            "store/.raisin/develop/NAME/src. $out is store/.raisin/develop/NAME/out; nothing "
            "is registered. The exit code is the command's."
        ),
    )
    p.add_argument("name", metavar="NAME", help="the component whose build environment to enter")
    p.add_argument("-c", dest="command", metavar="CMD", help="run this (sh -c) instead of a shell")
    options.sandbox(p)
    options.offline(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.develop import develop

    return develop(
        ctx.project,
        args.name,
        args.command,
        sandbox=args.sandbox,
        offline=args.offline,
        report=ctx.info,
    )
