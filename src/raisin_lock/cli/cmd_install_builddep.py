"""raisin install-builddep [NAME...] [--dry-run] [-y] [--from-lock]."""

from __future__ import annotations

import argparse
import shlex
import sys

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "install-builddep",
        help="install the distro packages the components need to build",
        description="Find the build-dependency packages of NAME (and what it depends on; default: every "
        "component) that are not installed, and install them with apt-get, dnf or zypper. "
        "The distribution comes from /etc/os-release (RAISIN_OS_RELEASE=FILE reads another).",
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="components (default: all in raisin.toml)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be installed; install nothing"
    )
    p.add_argument("-y", "--yes", action="store_true", help="install without asking")
    p.add_argument(
        "--from-lock",
        action="store_true",
        help="ask for exactly the versions recorded in raisin.lock",
    )
    p.set_defaults(run=run)


def _ask(question: str) -> bool | None:
    """True/False from the terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, EOFError):
        return False
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.builddeps import install, plan
    from raisin_lock.errors import RaisinError

    p = plan(ctx.project, args.names, from_lock=args.from_lock)
    family = p.distro.family
    ctx.info(
        f"{p.distro.pretty} ({family} family, {p.distro.manager}): {len(p.needs)} build "
        f"dependenc{'y' if len(p.needs) == 1 else 'ies'} for {', '.join(p.components) or 'no components'} "
        f"(from {p.source})"
    )
    for note in p.notes:
        ctx.warn(note)
    if not p.missing:
        ctx.info("all build dependencies are installed")
        return 0
    width = max(len(n.spec(family)) for n in p.missing)
    ctx.out(f"missing ({len(p.missing)} of {len(p.needs)}):")
    for n in p.missing:
        extra = f"; installed: {n.installed}" if n.installed else ""
        ctx.out(f"  {n.spec(family):<{width}}  {', '.join(n.components)}{extra}")
    line = shlex.join(p.command)
    if args.dry_run:
        ctx.out(f"would run: {line}")
        return 0
    if not args.yes:
        answer = _ask(f"run `{line}`? [y/N] ")
        if answer is None:
            ctx.info(
                "not installing: no terminal to ask on (stdin is not a tty); re-run with -y to install without asking"
            )
            return 1
        if not answer:
            ctx.info("not installing")
            return 1
    ctx.info(f"running: {line}")
    still = install(p)
    if still:
        raise RaisinError(
            f"{p.distro.manager} succeeded but these are still not installed: "
            + ", ".join(n.package for n in still)
        )
    ctx.info(f"installed {len(p.missing)} package{'s' if len(p.missing) != 1 else ''}")
    return 0
