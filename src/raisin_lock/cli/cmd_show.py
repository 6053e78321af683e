"""raisin show [NAME] [--json]: pins, hashes, output paths, built or not."""

from __future__ import annotations

import argparse
import json

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("show", help="pins, hashes, out paths, built or not")
    p.add_argument("name", nargs="?", metavar="NAME", help="one component (default: all)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (shape: README, JSON output)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.inspecting import show

    data = show(ctx.project, args.name)
    if args.json:
        slim = {
            n: {k: c[k] for k in ("rev", "nar_hash", "out", "built", "sandboxed", "deps")}
            | {"version": c["version"], "source": c["pin"]}
            for n, c in data["components"].items()
        }
        ctx.out(
            json.dumps(
                {"components": slim, "locked": data.get("locked", True)}, indent=2, sort_keys=True
            )
        )
        return 0
    if not data.get("locked", True):
        ctx.info(
            f"{ctx.project.lock_display} does not exist yet: showing what raisin.toml declares"
        )
    for name, c in data["components"].items():
        mark = (
            ("built" if c["built"] else "not built") if data.get("locked", True) else "not locked"
        )
        if c["sandboxed"] is False:
            mark += ", unsandboxed"
        ctx.out(f"{name} {c['version']}  [{mark}]")
        where = c["url"] + (f" {c['ref']}" if c["ref"] else "")
        ctx.out(f"  source   {c['source']} {where}")
        if c["rev"]:
            ctx.out(f"  rev      {c['rev']}")
        if c["nar_hash"]:
            ctx.out(f"  nar_hash {c['nar_hash']}")
            ctx.out(f"  out      {c['out']}")
        if c["deps"]:
            ctx.out(f"  deps     {', '.join(c['deps'])}")
    return 0
