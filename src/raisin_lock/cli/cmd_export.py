"""raisin export FILE [NAME...] --key SECRET: one file holding the lock and the closure."""

from __future__ import annotations

import argparse
from pathlib import Path

from raisin_lock.cli.cmd_gc import human
from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="write the lock and its built closure into one file (offline hand-over)"
    )
    p.add_argument("file", metavar="FILE", help="the export file to write")
    p.add_argument("names", nargs="*", metavar="NAME", help="components (default: all in the lock)")
    p.add_argument(
        "--key", required=True, metavar="SECRET", help="secret key file that signs the paths"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.caches import export

    def progress(sp, size):  # type: ignore[no-untyped-def]
        if ctx.verbose:
            ctx.info(f"exported {sp.base} ({human(size)})")

    dest = Path(args.file)
    res = export(
        ctx.project,
        dest if dest.is_absolute() else Path.cwd() / dest,
        args.names,
        Path(args.key),
        progress=progress,
    )
    ctx.info(
        f"wrote {args.file}: {len(res.paths)} store paths, {human(res.file_bytes)} of NARs, and the lock"
    )
    return 0
