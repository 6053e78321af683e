"""raisin key generate NAME [--out DIR]: an Ed25519 signing key pair in Nix's format."""

from __future__ import annotations

import argparse
from pathlib import Path

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("key", help="signing keys for binary caches")
    ks = p.add_subparsers(dest="key_command", metavar="SUBCOMMAND")
    ks.required = True
    g = ks.add_parser("generate", help="write DIR/NAME.secret (0600) and DIR/NAME.public")
    g.add_argument("name", metavar="NAME", help="key name, e.g. cache.example.org-1")
    g.add_argument(
        "--out", default=".", metavar="DIR", help="where to write the files (default: .)"
    )
    g.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.caches import generate_key

    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    secret, public, text = generate_key(args.name, out)
    ctx.info(f"secret key: {secret} (keep it private)")
    ctx.info(f"public key: {public}")
    ctx.out(text)
    return 0
