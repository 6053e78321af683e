"""raisin store verify [--repair] | optimise | dump PATH | hash PATH."""

from __future__ import annotations

import argparse
import sys

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("store", help="store maintenance and NAR tools")
    s = p.add_subparsers(dest="store_cmd", metavar="SUBCOMMAND")
    s.required = True
    d = s.add_parser("dump", help="write the NAR of PATH to stdout")
    d.add_argument("path", metavar="PATH", help="any file, directory or symlink")
    d.set_defaults(run=run_dump)
    h = s.add_parser("hash", help="print the SRI NAR hash of PATH")
    h.add_argument("path", metavar="PATH", help="any file, directory or symlink")
    h.add_argument("--base32", action="store_true", help="print sha256:<nix base32> instead")
    h.set_defaults(run=run_hash)
    v = s.add_parser("verify", help="rehash every valid path; exit 1 on damage")
    v.add_argument(
        "--repair",
        action="store_true",
        help="refetch damaged sources and rebuild damaged outputs named in raisin.lock",
    )
    v.add_argument(
        "--json",
        action="store_true",
        help='print {"ok": bool, "damaged": [{"path", "kind", "expected", "actual"}], '
        '"repaired": [PATH]}; exit 1 unless ok',
    )
    v.set_defaults(run=run_verify)
    o = s.add_parser("optimise", help="hard-link identical files across store paths")
    o.set_defaults(run=run_optimise)


def _check_path(path: str) -> None:
    import os

    from raisin_lock.errors import InputError

    if not os.path.lexists(path):
        raise InputError(f"{path}: no such file or directory")


def run_dump(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.nar import dump

    _check_path(args.path)
    out = sys.stdout.buffer
    try:
        dump(args.path, out.write)
    except ValueError as exc:
        from raisin_lock.errors import InputError

        raise InputError(str(exc)) from None
    out.flush()
    return 0


def run_hash(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.nar import hash_path

    _check_path(args.path)
    try:
        h, _size = hash_path(args.path)
    except ValueError as exc:
        from raisin_lock.errors import InputError

        raise InputError(str(exc)) from None
    ctx.out(f"sha256:{h.nix32}" if args.base32 else h.sri)
    return 0


def run_verify(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.realizing import verify_store

    damaged, repaired = verify_store(ctx.project, repair=args.repair, report=ctx.info)
    ok = not damaged or len({d.path for d in repaired}) >= len({d.path for d in damaged})
    if args.json:
        root = ctx.project.store_root
        ctx.json(
            {
                "ok": ok,
                "damaged": [
                    {
                        "path": str(root / d.path.base),
                        "kind": d.kind,
                        "expected": d.expected,
                        "actual": d.actual,
                    }
                    for d in damaged
                ],
                "repaired": sorted({str(root / d.path.base) for d in repaired}),
            }
        )
        return 0 if ok else 1
    for d in damaged:
        ctx.out(f"damaged: {d}")
    if repaired:
        ctx.info(f"repaired {len(repaired)} path(s)")
    if damaged and len({d.path for d in repaired}) < len({d.path for d in damaged}):
        return 1
    ctx.info("store is consistent" if not damaged else "all damage repaired")
    return 0


def run_optimise(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.gc import optimise
    from raisin_lock.cli.cmd_gc import human

    res = optimise(ctx.project)
    if res.paths_skipped:
        ctx.info(f"skipped {res.paths_skipped} path(s) in use by another process")
    ctx.out(
        f"{res.bytes_saved} bytes saved ({human(res.bytes_saved)}), {res.files_linked} files hard-linked"
    )
    return 0
