"""Entry point: global flags, dispatch, error to exit-code mapping."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = [
    "init",
    "lock",
    "realize",
    "show",
    "graph",
    "diff",
    "log",
    "store",
    "install_builddep",
    "import_config",
    "profile",
    "gc",
    "test",
    "key",
    "push",
    "export",
    "import",
    "why",
    "why_depends",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"raisin: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="raisin", description="Build the Xen Project stack from pinned sources, reproducibly."
    )
    p.add_argument("-C", dest="directory", default=".", help="run as if started in DIR")
    p.add_argument(
        "--store", default=None, help="store directory (default: DIR/store, or $RAISIN_STORE)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true")
    g.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version="raisin 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"raisin_lock.cli.cmd_{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from raisin_lock.app.project import Project
    from raisin_lock.cli.context import Context
    from raisin_lock.errors import RaisinError

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"raisin: -C {args.directory}: no such directory", file=sys.stderr)
        return 2
    ctx = Context(
        project=Project.at(directory, store=args.store, lock=getattr(args, "lock", None)),
        verbose=args.verbose,
        quiet=args.quiet,
    )
    try:
        return int(args.run(args, ctx))
    except RaisinError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
