"""Entry point: global flags, dispatch, error to exit-code mapping."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raisin_lock.errors import RaisinError

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
    "completion",
    "bisect",
    "develop",
    "worker",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"raisin: error: {message}", file=sys.stderr)
        sys.exit(2)


def _global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-C, --store, -q, -v: on the top parser, and again on every subcommand.

    On a subcommand each default is SUPPRESS, so a flag given after the
    subcommand overrides the one before it only when it is actually given.
    """

    def default(value: object) -> dict[str, Any]:
        return {"default": value if top else argparse.SUPPRESS}

    p.add_argument(
        "-C",
        dest="directory",
        metavar="DIR",
        help="run as if started in DIR (default: the current directory)",
        **default("."),
    )
    p.add_argument(
        "--store",
        metavar="DIR",
        help="store directory (default: $RAISIN_STORE, else DIR/store)",
        **default(None),
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-q", "--quiet", action="store_true", help="print only results and errors", **default(False)
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="more detail; tracebacks on errors (repeatable)",
        **default(0),
    )


def _add_globals_everywhere(p: argparse.ArgumentParser) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if not any(a.dest == "directory" for a in child._actions):
                    _global_options(child, top=False)
                _add_globals_everywhere(child)


def _command_in(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (skipping global options), or None (help, or not one)."""
    names = {n.replace("_", "-") for n in COMMANDS}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return None
        if arg in ("-C", "--store"):
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version"):
                return None
            i += 1
            continue
        if arg == "completion":  # its scripts are generated from the whole parser
            return None
        return arg.replace("-", "_") if arg in names else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` one subcommand registered: building all of them
    (30-odd parsers, each with the global options) is a good part of a no-op's start-up."""
    p = _Parser(
        prog="raisin", description="Build the Xen Project stack from pinned sources, reproducibly."
    )
    _global_options(p, top=True)
    p.add_argument(
        "--version", action="version", version="raisin 0.1.0", help="print the version and exit"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in [only] if only else COMMANDS:
        importlib.import_module(f"raisin_lock.cli.cmd_{name}").register(sub)
    _add_globals_everywhere(p)
    return p


def _locate_in_manifest(exc: RaisinError, manifest: Path) -> None:
    """Give an error about a key of raisin.toml its line: ``raisin.toml:12: components.x.source``."""
    if exc.line is not None or not exc.key or not exc.file:
        return
    try:
        if Path(exc.file).resolve() != manifest.resolve():
            return
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    from raisin_lock.manifest.model import locate

    exc.line = locate(text, exc.key)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
    # Everything after the first `--` is a command line for the command to run
    # (`raisin bisect ... -- make test`), never parsed as raisin's options.
    after: list[str] | None = None
    if "--" in argv:
        at = argv.index("--")
        argv, after = argv[:at], argv[at + 1 :]
    args = parser.parse_args(argv)
    if after is not None:
        if not hasattr(args, "after_dashes"):
            parser.error(f"{args.command} takes no command after --")
        args.after_dashes = after
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
        _locate_in_manifest(exc, ctx.project.manifest_path)
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
