"""raisin lock [--update [NAME...]] [--check] [--offline]."""

from __future__ import annotations

import argparse

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lock", help="resolve raisin.toml into raisin.lock")
    p.add_argument(
        "--update", nargs="*", metavar="NAME", default=None, help="re-resolve these (or all)"
    )
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the lock is stale"
    )
    p.add_argument("--offline", action="store_true", help="use only local mirrors")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"lock": FILE, "up_to_date": bool, "stale": {NAME: why}, "written": bool, '
        '"locked": {NAME: {"version", "rev", "nar_hash"}}}; "stale" is what the lock lacked '
        "or got wrong before this run (with --check: now); progress stays on stderr",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.project import read_lock
    from raisin_lock.app.staleness import up_to_date

    if args.update is None and not (args.check or args.json):
        current = read_lock(ctx.project)  # the no-op: nothing changed, the resolver not loaded
        if current is not None and up_to_date(ctx.project, current, offline=args.offline):
            ctx.info(f"{ctx.project.lock_display} unchanged")
            return 0
    from raisin_lock.app.locking import lock

    res = lock(
        ctx.project, update=args.update, check=args.check, offline=args.offline, report=ctx.info
    )
    for name, why in sorted(res.drift.items()):
        ctx.info(f"note: {name}: {why}; `raisin lock --update {name}` would re-expand it")
    if args.json:
        ctx.json(
            {
                "lock": ctx.project.lock_display,
                "up_to_date": not res.stale,
                "stale": dict(sorted(res.stale.items())),
                "written": bool(res.written),
                "locked": {
                    n: {
                        "version": c.version,
                        "rev": c.source.rev,
                        "nar_hash": c.source.nar_hash.sri,
                    }
                    for n, c in sorted(res.lock.components.items())
                },
            }
        )
        return 1 if args.check and res.stale else 0
    if args.check:
        if res.stale:
            ctx.out(f"{ctx.project.lock_display} is stale:")
            for name, why in sorted(res.stale.items()):
                ctx.out(f"  {name}: {why}")
            return 1
        ctx.info(f"{ctx.project.lock_display} is up to date")
        return 0
    for name in res.resolved:
        c = res.lock.components[name]
        pin = c.source.rev[:12] if c.source.rev else c.source.nar_hash.sri[:20]
        ctx.info(f"locked {name} {c.version} ({pin})")
    for name, sri in sorted(res.unrequired_hashes.items()):
        ctx.info(
            f"pinned components.{name}.source.hash = {sri}; add it to raisin.toml to make it required"
        )
    if res.written:
        ctx.info(f"wrote {ctx.project.lock_display} ({len(res.lock.components)} components)")
    else:
        ctx.info(f"{ctx.project.lock_display} unchanged")
    return 0
