"""raisin diff OLD.lock [NEW.lock]: what changed, component by component."""

from __future__ import annotations

import argparse
from pathlib import Path

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("diff", help="compare two locks")
    p.add_argument("old", metavar="OLD.lock", help="the lock to compare from")
    p.add_argument(
        "new", nargs="?", metavar="NEW.lock", help="the lock to compare to (default: raisin.lock)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"added": [NAME], "removed": [NAME], "changed": {NAME: {"fields": '
        '{FIELD: {"old", "new"}}, "log": [LINE]}}}',
    )
    p.add_argument(
        "--fetch",
        action="store_true",
        help="fetch the commits the upstream log needs into the store's git mirrors",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import difflib

    from raisin_lock.app.inspecting import diff

    added, removed, changed = diff(
        ctx.project, Path(args.old), Path(args.new) if args.new else None, fetch=args.fetch
    )
    if args.json:
        ctx.json(
            {
                "added": list(added),
                "removed": list(removed),
                "changed": {
                    c.name: {
                        "fields": {f: {"old": a, "new": b} for f, a, b in c.changes},
                        "log": list(c.log or []),
                    }
                    for c in changed
                },
            }
        )
        return 0
    for n in added:
        ctx.out(f"+ {n}")
    for n in removed:
        ctx.out(f"- {n}")
    for c in changed:
        ctx.out(f"~ {c.name}")
        for field, a, b in c.changes:
            if field == "build" or "\n" in a or "\n" in b:
                ctx.out(f"    {field} changed:")
                for line in difflib.unified_diff(
                    a.splitlines(), b.splitlines(), "old", "new", n=1, lineterm=""
                ):
                    if not line.startswith(("---", "+++")):
                        ctx.out(f"      {line}")
            else:
                ctx.out(f"    {field}: {a or '(none)'} -> {b or '(none)'}")
        if c.log:
            ctx.out("    log:")
            for line in c.log:
                ctx.out(f"      {line}")
        elif c.log_missing:
            ctx.out(f"    log unavailable: {c.log_missing}")
    if not (added or removed or changed):
        ctx.info("no differences")
    return 0
