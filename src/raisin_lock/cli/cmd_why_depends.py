"""raisin why-depends A B: every dependency path by which A needs B."""

from __future__ import annotations

import argparse

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("why-depends", help="show the dependency paths from A to B")
    p.add_argument("a", metavar="A", help="the component that (maybe) needs B")
    p.add_argument("b", metavar="B", help="the component needed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.why import dependency_paths

    paths = dependency_paths(ctx.project, args.a, args.b)
    for path in paths:
        ctx.out(" -> ".join(path))
    if not paths:
        ctx.info(f"{args.a} does not depend on {args.b}")
    return 0
