"""raisin init [--template NAME]: write a commented starter raisin.toml."""

from __future__ import annotations

import argparse

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", help="write a starter raisin.toml")
    p.add_argument(
        "--template",
        default=None,
        metavar="NAME",
        help="starter (default: one C program in hello/, written too) or xen (the whole stack)",
    )
    p.add_argument(
        "--xen",
        default=None,
        metavar="REF",
        help="the Xen to pin (implies --template xen): RELEASE-X.Y.Z, stable-X.Y, master, "
        "staging or a 40-hex commit; 4.5 or newer (default: RELEASE-4.21.0)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.init import init_manifest

    path = init_manifest(ctx.project, args.template, args.xen)
    ctx.info(f"wrote {path}; edit it, then run `raisin lock`")
    return 0
