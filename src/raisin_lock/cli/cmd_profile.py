"""raisin profile list | switch | rollback | generations | diff | delete-generations | deactivate."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from raisin_lock.cli.context import Context

PLAN_PREVIEW = 25


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "profile", help="profiles: generations, switch, rollback, activation onto a root"
    )
    s = p.add_subparsers(dest="profile_cmd", metavar="SUBCOMMAND")
    s.required = True

    lst = s.add_parser("list", help="profiles, their current generation and root")
    lst.add_argument(
        "--json",
        action="store_true",
        help='print {"profiles": {NAME: {"current": GEN|null, "generations": N, '
        '"active": GEN|null, "root": DIR|null, "declared": bool}}}',
    )
    lst.set_defaults(run=run_list)

    sw = s.add_parser("switch", help="build the profile, make a new generation, activate it")
    sw.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    sw.add_argument(
        "--root", default=None, help="activate into DIR (default: the remembered root, else /)"
    )
    sw.add_argument("--dry-run", action="store_true", help="print the plan; write nothing anywhere")
    sw.add_argument("-y", "--yes", action="store_true", help="do not ask before changing the root")
    sw.add_argument(
        "--lock", dest="lock_file", default=None, help="build and activate from this lock alone"
    )
    sw.add_argument(
        "-j", "--jobs", type=int, default=None, help="build jobs at once (default: cores)"
    )
    sw.add_argument(
        "--offline", action="store_true", help="fetch nothing: use only what is already local"
    )
    sw.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "none"],
        default="auto",
        help="auto: bubblewrap when it works, else none; bwrap: require it; none: no sandbox",
    )
    sw.set_defaults(run=run_switch)

    rb = s.add_parser("rollback", help="go back to the previous (or --to GEN) generation")
    rb.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    rb.add_argument(
        "--to",
        type=int,
        default=None,
        metavar="GEN",
        help="the generation to go back to (default: the one before the current)",
    )
    rb.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    rb.add_argument("-y", "--yes", action="store_true", help="do not ask before changing the root")
    rb.set_defaults(run=run_rollback)

    de = s.add_parser("deactivate", help="undo the profile's activation in its root")
    de.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    de.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    de.add_argument("-y", "--yes", action="store_true", help="do not ask before changing the root")
    de.set_defaults(run=run_deactivate)

    g = s.add_parser("generations", help="list a profile's generations")
    g.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    g.add_argument(
        "--json",
        action="store_true",
        help='print {"profile": NAME, "generations": [{"number", "date" (UTC, ISO 8601), '
        '"current": bool, "active_in": DIR|null, "components": {NAME: VERSION}}]}',
    )
    g.set_defaults(run=run_generations)

    d = s.add_parser("diff", help="components added, removed, changed between generations")
    d.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    d.add_argument(
        "gens",
        nargs="*",
        type=int,
        metavar="GEN",
        help="two generations to compare (default: the previous and the current)",
    )
    d.set_defaults(run=run_diff)

    dg = s.add_parser("delete-generations", help="delete old generations (never the current one)")
    dg.add_argument("name", metavar="NAME", help="the profile ([profiles.NAME] in raisin.toml)")
    dg.add_argument("gens", nargs="*", type=int, metavar="GEN", help="generation numbers to delete")
    dg.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="DAYS",
        help="delete generations older than DAYS days",
    )
    dg.add_argument("--keep", type=int, default=None, metavar="N", help="keep the N newest")
    dg.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    dg.set_defaults(run=run_delete)


def _changes(t: Any) -> list[str]:
    out = []
    for name, old, new in t.components:
        if old is None:
            out.append(f"  + {name} {new}")
        elif new is None:
            out.append(f"  - {name} {old}")
        else:
            out.append(f"  ~ {name} {old} -> {new}")
    return out


def _headline(t: Any) -> str:
    if t.new_generation is None:
        return f"profile {t.profile}: deactivate generation {t.old_generation} in {t.old_root}"
    new = f"generation {t.new_generation}" + (" (new)" if t.new_is_new else "")
    old = f"generation {t.old_generation}" if t.old_generation is not None else "nothing active"
    where = f" in {t.root}" + (
        f" (was {t.old_root})" if t.old_root and t.old_root != t.root else ""
    )
    return f"profile {t.profile}: {old} -> {new}{where}"


def _show_plan(ctx: Context, t: Any, *, full: bool, stream: Any) -> None:
    print(_headline(t), file=stream)
    for line in _changes(t):
        print(line, file=stream)
    for n in t.notes:
        print(f"note: {n}", file=stream)
    if t.unbuilt:
        print(
            f"would build first: {', '.join(t.unbuilt)} (their files are not listed)", file=stream
        )
    if t.plan is None:
        return
    lines = t.plan.lines()
    shown = lines if full or ctx.verbose else lines[:PLAN_PREVIEW]
    for line in shown:
        print(f"  {line}", file=stream)
    if len(shown) < len(lines):
        print(
            f"  ... and {len(lines) - len(shown)} more (-v or --dry-run lists them all)",
            file=stream,
        )
    for w in t.plan.warnings:
        print(f"warning: {w}", file=stream)


def _confirm(ctx: Context, args: argparse.Namespace) -> Any:
    from raisin_lock.errors import InputError

    def ask(t: Any) -> bool:
        if not ctx.quiet or not args.yes:
            _show_plan(ctx, t, full=False, stream=sys.stderr)
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise InputError(
                f"this changes {t.root or t.old_root}; confirm with -y (no terminal to ask on)",
                key="-y",
            )
        print(f"Change {t.root or t.old_root}? [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return ask


def _finish(ctx: Context, t: Any, args: argparse.Namespace) -> int:
    if args.dry_run:
        if t.nothing_to_do:
            ctx.out(_headline(t))
            ctx.out(f"nothing to do: generation {t.new_generation} is already active in {t.root}")
            return 0
        _show_plan(ctx, t, full=True, stream=sys.stdout)
        ctx.info("dry run: nothing was changed")
        return 0
    for n in t.notes if t.plan is None else []:
        ctx.info(n)
    for w in t.warnings:
        ctx.warn(w)
    if t.nothing_to_do:
        ctx.info(
            f"generation {t.new_generation} of {t.profile} is already active in {t.root}"
            if t.new_generation
            else " ".join(t.notes)
        )
    elif t.new_generation is None:
        ctx.info(f"profile {t.profile} deactivated in {t.old_root}")
    elif t.root is not None:
        ctx.info(f"generation {t.new_generation} of {t.profile} is active in {t.root}")
    return 0


def _run_transition(fn: Any, ctx: Context, args: argparse.Namespace, **kw: Any) -> int:
    from raisin_lock.app.profiles import Cancelled

    try:
        t = fn(
            ctx.project,
            args.name,
            dry_run=args.dry_run,
            confirm=_confirm(ctx, args),
            report=ctx.info,
            **kw,
        )
    except Cancelled:
        ctx.info("cancelled; nothing was changed")
        return 1
    return _finish(ctx, t, args)


def run_switch(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.profiles import switch
    from raisin_lock.cli.progress import make_events

    return _run_transition(
        switch,
        ctx,
        args,
        root=Path(args.root) if args.root else None,
        lock_file=Path(args.lock_file).absolute() if args.lock_file else None,
        jobs=args.jobs,
        offline=args.offline,
        sandbox=args.sandbox,
        events=None if args.dry_run else make_events(ctx.quiet),
    )


def run_rollback(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.profiles import rollback

    return _run_transition(rollback, ctx, args, to=args.to)


def run_deactivate(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.profiles import deactivate

    return _run_transition(deactivate, ctx, args)


def _date(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.generations import list_profiles

    rows = list_profiles(ctx.project)
    if args.json:
        ctx.json(
            {
                "profiles": {
                    r.name: {
                        "current": r.current,
                        "generations": r.count,
                        "active": r.active,
                        "root": r.root,
                        "declared": r.declared,
                    }
                    for r in rows
                }
            }
        )
        return 0
    if not rows:
        ctx.info(
            "no profiles (declare [profiles.NAME] in raisin.toml, then `raisin profile switch NAME`)"
        )
    for r in rows:
        if r.current is None:
            ctx.out(f"{r.name}  (no generations)")
            continue
        where = (
            f"  active in {r.root} (generation {r.active})"
            if r.active is not None
            else "  not active"
        )
        ctx.out(f"{r.name}  generation {r.current} of {r.count}{where}")
    return 0


def run_generations(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.generations import generations

    gens = generations(ctx.project, args.name)
    if args.json:
        ctx.json(
            {
                "profile": args.name,
                "generations": [
                    {
                        "number": g.number,
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(g.date)),
                        "current": g.current,
                        "active_in": g.active_in,
                        "components": g.components,
                    }
                    for g in gens
                ],
            }
        )
        return 0
    for g in gens:
        comps = ", ".join(f"{n} {v}" for n, v in g.components.items()) or "(not in this store)"
        marks = [
            m
            for m in (
                "current" if g.current else "",
                f"active in {g.active_in}" if g.active_in else "",
            )
            if m
        ]
        ctx.out(
            f"{'*' if g.current else ' '} {g.number:>4}  {_date(g.date)}  {comps}"
            + (f"   ({', '.join(marks)})" if marks else "")
        )
    return 0


def run_diff(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.generations import diff
    from raisin_lock.errors import InputError

    if len(args.gens) not in (0, 2):
        raise InputError("give two generations, or none (previous and current)")
    a, b, changes = diff(ctx.project, args.name, *(args.gens or []))
    ctx.out(f"generation {a} -> {b}")
    for name, old, new in changes:
        if old is None:
            ctx.out(f"  + {name} {new}")
        elif new is None:
            ctx.out(f"  - {name} {old}")
        else:
            ctx.out(f"  ~ {name} {old} -> {new}")
    if not changes:
        ctx.out("  (same components)")
    return 0


def run_delete(args: argparse.Namespace, ctx: Context) -> int:
    from raisin_lock.app.generations import delete_generations
    from raisin_lock.errors import InputError

    if not args.gens and args.older_than is None and args.keep is None:
        raise InputError("say which: GEN..., --older-than DAYS or --keep N")
    gone = delete_generations(
        ctx.project,
        args.name,
        numbers=args.gens,
        older_than_days=args.older_than,
        keep=args.keep,
        dry_run=args.dry_run,
    )
    verb = "would delete" if args.dry_run else "deleted"
    if gone:
        ctx.out(f"{verb} generation{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))}")
    else:
        ctx.info("no generation to delete")
    if gone and not args.dry_run:
        ctx.info("run `raisin gc` to free their store paths")
    return 0
