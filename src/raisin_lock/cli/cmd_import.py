"""raisin import FILE [--trusted-key KEY...] [--lock-out PATH]: load an export into the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "import", help="verify and load an export file (paths + lock) into the store"
    )
    p.add_argument("file", metavar="FILE", help="an export file (from `raisin export`)")
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="NAME:BASE64",
        help="public key whose signatures are accepted (repeatable; also [cache] trusted-keys)",
    )
    p.add_argument(
        "--lock-out",
        default=None,
        metavar="PATH",
        help="where to write the exported lock (default: raisin.lock here, if absent or equal)",
    )
    p.add_argument(
        "--no-check-sigs",
        action="store_true",
        help="accept unsigned or untrusted paths (hashes are still checked)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.caches import import_

    if args.no_check_sigs:
        ctx.warn("--no-check-sigs: accepting paths whoever signed them")

    def progress(sp, state):  # type: ignore[no-untyped-def]
        if ctx.verbose or state == "added":
            ctx.info(f"{'imported' if state == 'added' else 'already valid'}: {sp.base}")

    src = Path(args.file)
    lock_out = Path(args.lock_out).absolute() if args.lock_out else None
    res, dest = import_(
        ctx.project,
        src.absolute(),
        keys=args.trusted_key,
        lock_out=lock_out,
        check_sigs=not args.no_check_sigs,
        progress=progress,
    )
    ctx.info(
        f"imported {len(res.added)} store paths ({len(res.present)} already valid); lock: {dest}"
    )
    ctx.info(f"build nothing, use them: raisin realize --lock {dest}")
    return 0
