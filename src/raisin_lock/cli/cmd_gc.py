"""raisin gc [--dry-run] [--runtime-only]: delete store paths no root reaches."""

from __future__ import annotations

import argparse

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "gc", help="delete store paths that no profile generation or realized lock needs"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    p.add_argument(
        "--runtime-only",
        action="store_true",
        help="also delete build-time inputs (sources, build-only dependencies) of live paths",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"dry_run": bool, "deleted": [{"path", "bytes"}], "bytes_freed": N, '
        '"live": N, "kept_busy": [PATH], "stale_roots": [LINK], "leftovers": N}',
    )
    p.set_defaults(run=run)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.gc import gc

    res = gc(ctx.project, dry_run=args.dry_run, runtime_only=args.runtime_only)
    root = ctx.project.store_root
    if args.json:
        ctx.json(
            {
                "dry_run": args.dry_run,
                "deleted": [{"path": str(root / sp.base), "bytes": n} for sp, n in res.deleted],
                "bytes_freed": res.bytes_freed,
                "live": res.live,
                "kept_busy": [str(root / sp.base) for sp in res.kept_busy],
                "stale_roots": [str(link) for link in res.stale_roots],
                "leftovers": len(res.leftovers),
            }
        )
        return 0
    for sp, _size in res.deleted:
        ctx.out(str(root / sp.base))
    for sp in res.kept_busy:
        ctx.info(f"in use by another process, kept: {root / sp.base}")
    for link in res.stale_roots:
        ctx.info(
            f"{'stale' if args.dry_run else 'removed stale'} gc root {link.name} (its target is gone)"
        )
    if res.leftovers:
        ctx.info(f"removed {len(res.leftovers)} leftover(s) of interrupted work")
    verb = "would delete" if args.dry_run else "deleted"
    ctx.info(
        f"{verb} {len(res.deleted)} store path{'s' if len(res.deleted) != 1 else ''}, "
        f"{res.bytes_freed} bytes ({human(res.bytes_freed)}) {'would be ' if args.dry_run else ''}freed; "
        f"{res.live} live"
    )
    return 0
