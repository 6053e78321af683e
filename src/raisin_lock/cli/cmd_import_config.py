"""raisin import-config FILE [--output raisin.toml] [--force]: a legacy Raisin config -> raisin.toml."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "import-config",
        help="turn a legacy Raisin bash config into a raisin.toml",
        description="Read a legacy Raisin config (shell variable assignments; never executed) and write a "
        "raisin.toml using the built-in recipes. The COMPONENTS environment variable overrides "
        "ENABLED_COMPONENTS, as it did in Raisin. What cannot be mapped is listed at the top of the "
        "manifest and on stderr.",
    )
    p.add_argument("file", metavar="FILE", help="the legacy Raisin config to read")
    p.add_argument(
        "--output", "-o", default=None, help="where to write (default: raisin.toml in -C DIR)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.display import display_path
    from raisin_lock.manifest.legacy import import_config

    output = Path(args.output) if args.output else ctx.project.manifest_path
    conv = import_config(
        Path(args.file),
        output,
        force=args.force,
        components_env=os.environ.get("COMPONENTS"),
        source_name=args.file,
        output_name=display_path(output),
    )
    for line in conv.unmapped:
        print(f"not mapped: {line}", file=sys.stderr)
    for line in conv.notes:
        print(f"note: {line}", file=sys.stderr)
    ctx.info(
        f"wrote {display_path(output)} ({len(conv.components)} components: {', '.join(conv.components)}); "
        "review it, then run `raisin lock`"
    )
    return 0
