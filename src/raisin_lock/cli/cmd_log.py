"""raisin log NAME: print the last build log of a component."""

from __future__ import annotations

import argparse
import shutil
import sys

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("log", help="the last build log of a component")
    p.add_argument("name", metavar="NAME", help="the component")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.inspecting import build_log

    path = build_log(ctx.project, args.name)
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()
    return 0
