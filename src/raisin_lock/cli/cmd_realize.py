"""raisin realize [NAME...] [-j N] [--keep-going] [--check] [--lock FILE] [--sandbox MODE] [--offline]
[--substituter URL...] [--trusted-key KEY...] [--no-fallback] [--toolchain-mismatch warn|error]
[--remote grpc://HOST:PORT[/INSTANCE] [--fallback]]."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from raisin_lock.cli import options
from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("realize", help="build the locked components into the store")
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="components to build (default: all in the lock)"
    )
    p.add_argument(
        "-j", "--jobs", type=int, default=None, help="builds and make jobs at once (default: cores)"
    )
    p.add_argument(
        "--keep-going", action="store_true", help="finish independent builds after a failure"
    )
    p.add_argument(
        "--check", action="store_true", help="rebuild valid paths and compare (reproducibility)"
    )
    p.add_argument(
        "-K",
        "--keep-failed",
        action="store_true",
        help="keep a failed build's directory (and, with --check, a differing second output) "
        "under store/.raisin/kept/ and print where",
    )
    p.add_argument(
        "--incremental",
        choices=["auto", "on", "off"],
        default="auto",
        help="start from the component's previous build tree with only the changed files new, "
        "and compile through ccache (store/.raisin/checkpoints, store/.raisin/ccache): auto for "
        "path sources, on for every build, off for none; --check never does (it compares)",
    )
    fresh = p.add_mutually_exclusive_group()
    fresh.add_argument(
        "--locked",
        action="store_true",
        help="fail (exit 1) instead of updating raisin.lock when raisin.toml or a path source "
        "changed; the toolchain check defaults to error",
    )
    fresh.add_argument(
        "--frozen",
        action="store_true",
        help="build from raisin.lock as it is, without looking at raisin.toml or path sources",
    )
    p.add_argument("--lock", dest="lock_file", default=None, help="build from this lock alone")
    options.sandbox(p)
    options.offline(p)
    p.add_argument(
        "--substituter",
        action="append",
        default=[],
        metavar="URL",
        help="binary cache to ask before building (repeatable; also [cache] substituters)",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="NAME:BASE64",
        help="public key whose signatures are accepted (repeatable; also [cache] trusted-keys)",
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail instead of building when a substitution fails",
    )
    p.add_argument(
        "--remote",
        default=None,
        metavar="grpc://HOST:PORT[/INSTANCE]",
        help="build on a REAPI v2 remote execution service (grpcs:// for TLS; bearer token "
        "from $RAISIN_REMOTE_TOKEN; also [remote] url)",
    )
    p.add_argument(
        "--fallback",
        action="store_true",
        help="with --remote: build locally when the remote does not answer",
    )
    p.add_argument(
        "--toolchain-mismatch",
        choices=["warn", "error"],
        default=None,
        help="when the host's compiler, binutils, libc or make differ from the lock's "
        "[toolchain] record (the outputs keep the lock's paths either way): "
        "refuse to build (error; the default with --lock FILE or --locked) or build with a "
        "warning (warn; the default otherwise)",
    )
    p.set_defaults(run=run)


def _tail(path: Path | None, n: int = 25) -> list[str]:
    if path is None or not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        lines = f.read().decode(errors="replace").splitlines()
    return lines[-n:]


def _interrupt_on_sigterm() -> None:
    """SIGTERM does what Ctrl-C does: kill the builds, clean up, exit 130 ("interrupted").

    Without this Python dies at once on SIGTERM, leaving the builds' temp
    directories behind (and, with ``--sandbox none``, the builds running)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.planning import plan

    _interrupt_on_sigterm()
    from raisin_lock.errors import InputError

    if args.jobs is not None and args.jobs < 0:
        raise InputError("-j must be 0 (substitute only) or more", key="-j")
    lock_file = Path(args.lock_file) if args.lock_file else None
    p = plan(
        ctx.project,
        args.names,
        lock_file=lock_file,
        offline=args.offline,
        report=ctx.info,
        sandbox=args.sandbox,
        mode="locked" if args.locked else "frozen" if args.frozen else "lock",
    )
    if p.up_to_date and not args.check:
        ctx.info("nothing to build")
        return 0
    from raisin_lock.app.realizing import realize
    from raisin_lock.cli.progress import make_events

    events = make_events(ctx.quiet)
    res = realize(
        ctx.project,
        args.names,
        jobs=args.jobs,
        keep_going=args.keep_going,
        keep_failed=args.keep_failed,
        incremental=args.incremental,
        check=args.check,
        sandbox=args.sandbox,
        offline=args.offline,
        lock_file=lock_file,
        events=events,
        report=ctx.info,
        substituters=args.substituter,
        trusted_keys=args.trusted_key,
        fallback=not args.no_fallback,
        plan=p,
        toolchain_mismatch=args.toolchain_mismatch or ("error" if args.locked else None),
        remote=args.remote,
        remote_fallback=args.fallback,
    )
    for f in res.failed:
        ctx.info(f"error: {f.name}: build failed: {f.reason}")
        tail = _tail(f.log)
        if tail:
            ctx.info(f"--- last {len(tail)} lines of {f.log} ---")
            for line in tail:
                ctx.info(f"  {line}")
            ctx.info(f"--- full log: {f.log}  (raisin log {f.name})")
    if res.cancelled:
        names = ", ".join(sorted(c.name for c in res.cancelled))
        ctx.info(f"cancelled (another build failed; --keep-going lets them finish): {names}")
    if res.skipped:
        ctx.info(f"not built (a dependency failed): {', '.join(sorted(res.skipped))}")
    if res.not_started:
        names = ", ".join(sorted(res.not_started))
        ctx.info(f"not started (the realize stopped at the first failure): {names}")
    for name, files in sorted(res.not_reproducible.items()):
        ctx.info(f"error: {name}: rebuild is not bit-identical; differing files:")
        for fpath in files[:50]:
            ctx.info(f"  {fpath}")
        if name in res.check_summary:
            ctx.info(res.check_summary[name])
    if not res.ok:
        return 1
    if args.check:
        ctx.info("all rebuilds bit-identical")
    elif res.substituted:
        ctx.info(
            f"substituted {len(res.substituted)}, built {len(res.built)}, {len(res.already_valid)} already valid"
        )
    elif res.built:
        ctx.info(f"built {len(res.built)}, {len(res.already_valid)} already valid")
    else:
        ctx.info("nothing to build")
    for name in res.checkpointed:
        ctx.info(f"incremental, {name}: started from its previous build tree")
    for name, (hits, misses) in sorted(res.compiler_cache.items()):
        ctx.info(f"compiler cache, {name}: {hits} hits, {misses} misses")
    return 0
