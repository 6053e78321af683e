"""raisin graph [--format dot|json]: the dependency graph of the lock."""

from __future__ import annotations

import argparse

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("graph", help="dependency graph (dot or json)")
    p.add_argument(
        "--format",
        choices=["dot", "json"],
        default="dot",
        help="dot (Graphviz, default) or json (nodes and edges)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.inspecting import graph_data
    from raisin_lock.lock import graph

    edges, extra = graph_data(ctx.project)
    if args.format == "dot":
        labels = {n: f"{n} {e['version']}" for n, e in extra.items()}
        ctx.out(graph.to_dot(edges, labels).rstrip("\n"))
    else:
        ctx.out(graph.to_json(edges, extra).rstrip("\n"))
    return 0
