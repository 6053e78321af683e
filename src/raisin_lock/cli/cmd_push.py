"""raisin push CACHE [NAME...] --key SECRET: sign and upload the closure of built components."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raisin_lock.cli.cmd_gc import human
from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("push", help="upload built components and their closure to a binary cache")
    p.add_argument(
        "cache",
        metavar="CACHE",
        help="file:///dir, http(s)://host/path (HTTP PUT) or s3://bucket/prefix?endpoint=URL",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="components (default: all in the lock)")
    p.add_argument(
        "--key", required=True, metavar="SECRET", help="secret key file (raisin key generate)"
    )
    p.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="also push paths built with --sandbox none (refused by default)",
    )
    p.add_argument(
        "--sign-remote",
        action="store_true",
        help="also sign paths built by a remote executor (realize --remote; refused by default)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.caches import push

    live = _live(ctx)

    def progress(sp, state, nar_bytes, file_bytes):  # type: ignore[no-untyped-def]
        if state == "present":
            if ctx.verbose:
                ctx.info(f"already in the cache: {sp.base}")
            return
        ctx.info(f"pushed {sp.base} ({human(nar_bytes)} NAR, {human(file_bytes)} compressed)")
        if live is not None:
            live.advance(file_bytes)

    res = push(
        ctx.project,
        args.cache,
        args.names,
        Path(args.key),
        progress=progress,
        allow_unsandboxed=args.allow_unsandboxed,
        sign_remote=args.sign_remote,
    )
    if live is not None:
        live.stop()
    ctx.info(
        f"pushed {len(res.pushed)} path{'s' if len(res.pushed) != 1 else ''} "
        f"({human(res.nar_bytes)} NAR, {human(res.file_bytes)} uploaded), "
        f"{len(res.present)} already in {args.cache}"
    )
    return 0


class _Bytes:
    """A rich progress line with the bytes uploaded so far (terminals only)."""

    def __init__(self) -> None:
        from rich.progress import DownloadColumn, Progress, SpinnerColumn, TransferSpeedColumn

        self.p = Progress(
            SpinnerColumn(), "pushing", DownloadColumn(), TransferSpeedColumn(), transient=True
        )
        self.task = self.p.add_task("push", total=None)
        self.p.start()

    def advance(self, n: int) -> None:
        self.p.advance(self.task, n)

    def stop(self) -> None:
        self.p.stop()


def _live(ctx: Context) -> _Bytes | None:
    return _Bytes() if not ctx.quiet and sys.stderr.isatty() else None
