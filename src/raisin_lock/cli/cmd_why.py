"""raisin why OLD.lock [NEW.lock]: the root cause of every rebuild between two locks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "why",
        help="explain each output path that changes between two locks",
        description=(
            "For every component whose output path differs between OLD and NEW, print the input "
            "that changed: its source pin, a build step, an env value, a build dependency's "
            "version, the toolchain, or a dependency (explained above it, down to the root cause)."
        ),
    )
    p.add_argument(
        "old", help="the lock before (e.g. one saved from git: git show HEAD:raisin.lock)"
    )
    p.add_argument("new", nargs="?", help="the lock after (default: this project's raisin.lock)")
    p.add_argument("--json", action="store_true", help="print one JSON object (see README)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.why import explain
    from raisin_lock.lock.why import root_causes

    exps = explain(ctx.project, Path(args.old), Path(args.new) if args.new else None)
    if args.json:
        doc = {
            "components": {
                e.name: {
                    "old_out": e.old_out,
                    "new_out": e.new_out,
                    "causes": [{"kind": c.kind, "detail": c.detail} for c in e.causes],
                    "root_causes": root_causes(exps, e.name),
                }
                for e in exps
            }
        }
        ctx.out(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    for e in exps:
        ctx.out(f"{e.name}: {e.old_out or '(new)'} -> {e.new_out}")
        for c in e.causes:
            if c.kind == "dependency":
                ctx.out(f"  because dependency {c.detail} changed")
            else:
                ctx.out(f"  because {c.kind} {c.detail}")
        if not e.root:
            ctx.out(f"  root cause: {', '.join(root_causes(exps, e.name))}")
    if not exps:
        ctx.info("no output path changes")
    return 0
