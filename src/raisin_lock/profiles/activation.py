"""Activation: put a generation into a root, journaled, and take it out again.

Switching a profile's root from generation A to B first undoes exactly A's
journal (removing only what raisin created and nobody changed since), then
applies B, recording every change *before* making it (see
:mod:`raisin_lock.journal` for the format and the guards that make that
safe). If applying B fails half-way, B's partial journal is undone and A is
applied again, so the root is back at A.

What applying a generation does, in order:

1. **Files.** Every entry of the generation's merged view gets a place in
   the root: directories are created, files are symlinked to the component
   output that provides them -- except under ``etc/``, ``boot/`` and the
   systemd unit directories (``lib/systemd/``, ``usr/lib/systemd/``), whose
   files are *copied*: boot loaders and admins need real files, and
   ``systemctl --root`` resolves unit files inside the root, where a link
   into the store does not resolve. A foreign entry in the way is moved
   aside as ``NAME.raisin-orig`` and put back on undo -- but under ``etc/``
   dpkg's conffile rule applies instead: a file the admin changed since
   raisin shipped it is left alone and the new version written beside it as
   ``NAME.raisin-new`` (with a warning), unless raisin's version did not
   change. Directories in the root that are symlinks (``lib -> usr/lib``)
   are followed, confined to the root.
   Then ``raisin/store`` in the root becomes a link to the store, so the
   store paths outputs refer to (at the fixed path builds saw) resolve.
2. **Generated files** from the components' typed actions
   (:mod:`raisin_lock.host_actions`): the ld.so configuration, GRUB
   snippets, bridge configuration -- all under ``etc/``, so the same rules.
3. **Commands**: ``systemctl [--root=DIR] enable/disable`` (the links it
   makes or removes are journaled, so undo restores exactly them), and when
   the root is ``/`` ``daemon-reload`` and start/stop; ``ldconfig -X [-r
   DIR]``; the boot-menu generator when the root is ``/``.

``plan`` simulates all of this on an overlay of the root and writes nothing
(``--dry-run`` prints it; a real switch uses it to fail early, before any
change, on conflicts or bad actions).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raisin_lock.errors import InputError, RaisinError
from raisin_lock.profiles import host_actions as host
from raisin_lock.profiles.generation import GenerationInfo, MergedEntry, read_info
from raisin_lock.profiles.journal import Journal
from raisin_lock.profiles.root_view import RootView, sha_file
from raisin_lock.store_path import VIRTUAL_STORE, StorePath

if TYPE_CHECKING:
    from raisin_lock.store.local import Store

Report = Callable[[str], None]
COPY_PREFIXES = ("etc/", "boot/", "lib/systemd/", "usr/lib/systemd/")


def is_copied(rel: str) -> bool:
    return rel.startswith(COPY_PREFIXES)


def _quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------- what to activate


@dataclass
class Target:
    """A generation to activate: its number, store path and merged view."""

    profile: str
    generation: int
    store_path: StorePath | None  # None: not built yet (dry-run of a new generation)
    info: GenerationInfo
    entries: dict[str, tuple[str, Path]]  # rel -> (kind, host path in a component output)


def target_from_store(store: Store, profile: str, number: int, sp: StorePath) -> Target:
    """Read a built generation: its files/ tree of links into the component outputs."""
    top = store.host_path(sp) / "files"
    entries: dict[str, tuple[str, Path]] = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            if p.is_symlink():
                entries[rel] = ("link", Path(os.path.normpath(p.parent / os.readlink(p))))
            else:
                entries[rel] = ("dir", p)
    resolved: dict[str, tuple[str, Path]] = {}
    for rel, (kind, src) in sorted(entries.items()):
        if kind == "link":
            kind = "symlink" if src.is_symlink() else "file"
        resolved[rel] = (kind, src)
    return Target(profile, number, sp, read_info(store, sp), resolved)


def target_from_view(
    profile: str, number: int, info: GenerationInfo, view: dict[str, MergedEntry]
) -> Target:
    return Target(profile, number, None, info, {r: (e.kind, e.source) for r, e in view.items()})


# ---------------------------------------------------------------- planning


@dataclass
class Op:
    entry: dict[str, Any]
    src: Path | bytes | None = None
    line: str = ""


@dataclass
class Plan:
    root: Path
    undo_lines: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    actions: list[Op] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            *self.undo_lines,
            *(o.line for o in self.ops if o.line),
            *(o.line for o in self.actions),
        ]


def _free_name(view: RootView, rel: str, suffix: str) -> str:
    cand = rel + suffix
    n = 1
    while view.kind(cand) is not None:
        cand = f"{rel}{suffix}.{n}"
        n += 1
    return cand


def _file_source(kind: str, src: Path) -> tuple[str, int]:
    """(sha256, mode) of a file in a component output."""
    mode = 0o755 if os.stat(src).st_mode & stat.S_IXUSR else 0o644
    return sha_file(src), mode


def plan_apply(
    view: RootView, target: Target, prev_shipped: dict[str, str], store_root: Path
) -> tuple[list[Op], list[Op], list[str]]:
    """File ops and actions to apply ``target`` to ``view`` (a dry overlay, updated)."""
    root = view.root
    ops: list[Op] = []
    warnings: list[str] = []

    def divert(rel: str) -> None:
        to = _free_name(view, rel, ".raisin-orig")
        ops.append(Op({"op": "divert", "path": rel, "to": to}, line=f"move aside {rel} -> {to}"))
        view.rename(rel, to)

    def ensure_dir(rel: str) -> None:
        p = view.physical(rel)
        k = view.kind(p)
        if k == "dir":
            return
        if k == "symlink":
            try:
                if view.kind(view.physical(p + "/.")) == "dir":
                    return
            except RaisinError:
                pass
        if k is not None:
            divert(p)
        ops.append(Op({"op": "mkdir", "path": p}, line=f"mkdir   {p}"))
        view.mkdir(p)

    def place_file(rel: str, src: Path | bytes, sha: str, mode: int, what: str) -> None:
        """``sha`` is the sha256 of a file, or ``link:TARGET`` for a copied symlink."""
        p = view.physical(rel)
        k = view.kind(p)
        if k not in (None, "dir") and p.startswith("etc/"):
            cur, prev = view.content_id(p), prev_shipped.get(p)
            if cur == sha:
                ops.append(Op({"op": "keep", "path": p, "shipped": sha, "new": None}))
                return
            if prev is None or cur != prev:  # not raisin's unmodified version
                if prev == sha:
                    line = f"keep    {p} (changed by the admin; raisin's version is unchanged)"
                    ops.append(
                        Op({"op": "keep", "path": p, "shipped": sha, "new": None}, line=line)
                    )
                    return
                new = p + ".raisin-new"
                line = f"keep    {p} (changed since raisin shipped it; new version in {new})"
                ops.append(Op({"op": "keep", "path": p, "shipped": sha, "new": new}, line=line))
                warnings.append(
                    f"{root / p} was changed since raisin wrote it: left alone; the new version is {root / new}"
                )
                if view.kind(new) == "dir":
                    divert(new)
                p, mode = new, mode & 0o644  # never executable (grub.d runs executables)
        elif k is not None:
            if k != "dir" and view.content_id(p) == sha:
                return  # already exactly this; not ours, so left alone on undo
            divert(p)
        if sha.startswith("link:"):
            ops.append(
                Op(
                    {"op": "link", "path": p, "target": sha[5:], "copied": True},
                    line=f"{what} {p} -> {sha[5:]}",
                )
            )
            view.symlink(p, sha[5:])
        else:
            ops.append(
                Op({"op": "file", "path": p, "sha256": sha, "mode": mode}, src, f"{what} {p}")
            )
            view.write(p, b"", mode, sha)

    def place_link(rel: str, target: str) -> None:
        p = view.physical(rel)
        k = view.kind(p)
        if k == "symlink" and view.readlink(p) == target:
            return
        if k is not None:
            divert(p)
        ops.append(Op({"op": "link", "path": p, "target": target}, line=f"link    {p} -> {target}"))
        view.symlink(p, target)

    for rel, (kind, src) in target.entries.items():
        if kind == "dir":
            ensure_dir(rel)
        elif is_copied(rel):
            if kind == "symlink":
                place_file(rel, src, "link:" + os.readlink(src), 0, "copy   ")
            else:
                sha, mode = _file_source(kind, src)
                place_file(rel, src, sha, mode, "copy   ")
        else:
            place_link(rel, str(src))

    # Outputs refer to one another at the path builds saw them (libxl's SeaBIOS
    # path, RPATHs...): make /raisin/store resolve in the root, to this store.
    virtual = VIRTUAL_STORE.lstrip("/")
    if os.path.realpath(root / virtual) != os.path.realpath(store_root):
        ensure_dir(virtual.rsplit("/", 1)[0])
        place_link(virtual, str(store_root))

    generated, actions = _plan_actions(target, root, store_root)
    for g in generated:
        parts = g.rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in target.entries:
                ensure_dir(d)
        place_file(g.rel, g.data, hashlib.sha256(g.data).hexdigest(), g.mode, f"write   ({g.why})")
    return ops, actions, warnings


def _plan_actions(
    target: Target, root: Path, store_root: Path
) -> tuple[list[host.GeneratedFile], list[Op]]:
    info = target.info
    comps = [info.components[n] for n in sorted(info.components)]
    generated: list[host.GeneratedFile] = []
    actions: list[Op] = []
    at_slash = str(root) == "/"
    units = list(dict.fromkeys(u for c in comps for u in c.activate.units))
    disable = list(dict.fromkeys(u for c in comps for u in c.activate.disable_units))
    ld = [c for c in comps if c.activate.ldconfig]
    if ld:
        dirs = [d for c in ld for d in host.ld_dirs(c.activate, store_root / c.out.base)]
        generated.append(host.ld_conf(target.profile, dirs))
    for c in comps:
        b = c.activate.boot
        if b is None:
            continue
        for key, rel in (("hypervisor", b.hypervisor), ("kernel", b.kernel), ("initrd", b.initrd)):
            if rel is not None and rel not in target.entries and not (root / rel).exists():
                raise InputError(
                    f"{c.name}: activate.boot.{key} {rel!r} is neither in generation {target.generation} nor in {root}"
                )
        generated.append(host.grub_snippet(target.profile, target.generation, c.name, c.version, b))
    for c in comps:
        if c.activate.bridge is not None:
            generated.extend(host.bridge_files(target.profile, c.activate.bridge, root))
    has_units_files = any(
        r.startswith(("lib/systemd/", "usr/lib/systemd/")) for r in target.entries
    )
    if at_slash and (units or disable or has_units_files):
        actions.append(Op({"op": "refresh", "what": "systemd"}, line="systemctl daemon-reload"))
    if units:
        actions.append(
            Op(
                {"op": "systemd", "verb": "enable", "units": units},
                line=" ".join(host.systemctl_argv(root, "enable", *units)),
            )
        )
        if at_slash:
            argv = ["systemctl", "start", *units]
            actions.append(
                Op(
                    {"op": "run", "argv": argv, "undo": ["systemctl", "stop", *reversed(units)]},
                    line=" ".join(argv),
                )
            )
    if disable:
        if at_slash:
            argv = ["systemctl", "stop", *disable]
            actions.append(
                Op(
                    {"op": "run", "argv": argv, "undo": ["systemctl", "start", *disable]},
                    line=" ".join(argv),
                )
            )
        actions.append(
            Op(
                {"op": "systemd", "verb": "disable", "units": disable},
                line=" ".join(host.systemctl_argv(root, "disable", *disable)),
            )
        )
    if ld:
        actions.append(
            Op({"op": "refresh", "what": "ldconfig"}, line=" ".join(host.ldconfig_argv(root)))
        )
    if at_slash and any(c.activate.boot for c in comps):
        menu = host.bootloader_argv()
        if menu:
            actions.append(
                Op({"op": "refresh", "what": "bootloader", "argv": menu}, line=" ".join(menu))
            )
    return generated, actions


# ---------------------------------------------------------------- undo


def undo(
    journal: Journal,
    view: RootView,
    lines: list[str] | None = None,
    warnings: list[str] | None = None,
) -> None:
    """Undo ``journal``'s entries, newest first, each only if its guard holds.

    With a dry ``view`` nothing is written: ``lines`` gets what would be
    done. Command failures during a real undo become warnings (undo goes on).
    """
    lines = lines if lines is not None else []
    warnings = warnings if warnings is not None else []
    root = view.root
    refresh: dict[str, dict[str, Any]] = {}
    results = {i: e for i, e in enumerate(journal.entries) if e["op"] == "systemd-result"}
    for i in range(len(journal.entries) - 1, -1, -1):
        e = journal.entries[i]
        op = e["op"]
        p = e.get("path", "")
        if op == "file":
            if view.kind(p) == "file" and view.content_id(p) == e["sha256"]:
                lines.append(f"remove  {p}")
                view.remove(p)
            elif view.kind(p) is not None:
                warnings.append(f"{root / p} was changed since raisin wrote it: left in place")
        elif op == "link":
            if view.kind(p) == "symlink" and view.readlink(p) == e["target"]:
                lines.append(f"unlink  {p}")
                view.remove(p)
            elif view.kind(p) is not None:
                warnings.append(f"{root / p} was changed since raisin linked it: left in place")
        elif op == "mkdir":
            if view.is_empty_dir(p):
                lines.append(f"rmdir   {p}")
                view.remove(p)
        elif op == "divert":
            if view.kind(p) is None and view.kind(e["to"]) is not None:
                lines.append(f"restore {e['to']} -> {p}")
                view.rename(e["to"], p)
        elif op == "systemd":
            res = next((r for j, r in results.items() if j > i), None)
            if res is not None:
                created, removed = res["created"], res["removed"]
            elif view.dry:
                created, removed = [], []
            else:
                created, removed = host.unit_changes(e["before"], host.snapshot_units(root))
            for path, target in sorted(created, key=lambda c: str(c[0]), reverse=True):
                if target is None:
                    if view.is_empty_dir(path):
                        view.remove(path)
                elif view.kind(path) == "symlink" and view.readlink(path) == target:
                    view.remove(path)
            for path, target in removed:
                if view.kind(path) is None:
                    view.symlink(path, target)
            lines.append(f"undo    systemctl {e['verb']} {' '.join(e['units'])}")
        elif op == "run" and e.get("undo"):
            lines.append(" ".join(e["undo"]))
            if not view.dry:
                try:
                    host.run(e["undo"], "undo")
                except RaisinError as exc:
                    warnings.append(str(exc))
        elif op == "refresh":
            refresh[e["what"]] = e
    for what, e in refresh.items():
        if what == "ldconfig":
            existed = set(e.get("existed", host.LD_CACHE_FILES))
            gone = [c for c in host.LD_CACHE_FILES if c not in existed and view.kind(c) == "file"]
            if len(existed) == 0 or gone:
                for c in gone:
                    lines.append(f"remove  {c}")
                    view.remove(c)
                continue
            argv = host.ldconfig_argv(root)
        elif what == "systemd":
            argv = ["systemctl", "daemon-reload"]
        else:
            argv = e.get("argv") or host.bootloader_argv() or []
        if not argv:
            continue
        lines.append(" ".join(argv))
        if not view.dry:
            try:
                host.run(argv, "undo")
            except RaisinError as exc:
                warnings.append(str(exc))


# ---------------------------------------------------------------- applying


def plan(
    store_root: Path,
    root: Path,
    old: Journal | None,
    new: Target | None,
    prev_shipped: dict[str, str],
) -> Plan:
    """Simulate undoing ``old`` (in its own root) and applying ``new`` in ``root``."""
    result = Plan(root)
    view = RootView(root, dry=True)
    if old is not None:
        old_view = view if old.root == root else RootView(old.root, dry=True)
        undo(old, old_view, result.undo_lines, result.warnings)
        if old.root != root:
            result.undo_lines = [f"{line}   (in {old.root})" for line in result.undo_lines]
    if new is not None:
        result.ops, result.actions, w = plan_apply(view, new, prev_shipped, store_root)
        result.warnings += w
    return result


def _perform(view: RootView, op: Op) -> None:
    e = op.entry
    kind = e["op"]
    if kind == "mkdir":
        view.mkdir(e["path"])
    elif kind == "link":
        view.symlink(e["path"], e["target"])
    elif kind == "file":
        assert op.src is not None
        view.write(e["path"], op.src, e["mode"], e["sha256"])
    elif kind == "divert":
        view.rename(e["path"], e["to"])


def _run_action(view: RootView, journal: Journal, op: Op) -> None:
    e = dict(op.entry)
    root = view.root
    kind = e["op"]
    if kind == "systemd":
        e["before"] = host.snapshot_units(root)
        journal.record(e)
        try:
            host.run(
                host.systemctl_argv(root, e["verb"], "--", *e["units"]), f"systemctl {e['verb']}"
            )
        finally:
            created, removed = host.unit_changes(e["before"], host.snapshot_units(root))
            journal.record({"op": "systemd-result", "created": created, "removed": removed})
    elif kind == "run":
        journal.record(e)
        host.run(e["argv"], e["argv"][0])
    elif kind == "refresh":
        if e["what"] == "ldconfig":
            e["existed"] = [c for c in host.LD_CACHE_FILES if (root / c).exists()]
            journal.record(e)
            host.run(host.ldconfig_argv(root), "ldconfig")
        elif e["what"] == "systemd":
            journal.record(e)
            host.run(["systemctl", "daemon-reload"], "systemctl daemon-reload")
        else:
            journal.record(e)
            host.run(e["argv"], "boot menu")


def apply(
    store_root: Path,
    journal_path: Path,
    target: Target,
    root: Path,
    prev_shipped: dict[str, str],
) -> tuple[Journal, list[str]]:
    """Apply ``target`` to ``root`` (nothing of another generation may be in it).

    On any failure the partial journal is undone and discarded before the
    exception propagates. Returns the complete journal and warnings.
    """
    assert target.store_path is not None
    probe = RootView(root, dry=True)
    ops, actions, warnings = plan_apply(probe, target, prev_shipped, store_root)
    journal = Journal.begin(
        journal_path,
        profile=target.profile,
        generation=target.generation,
        store_path=target.store_path.base,
        store=str(store_root),
        root=str(root),
    )
    real = RootView(root, dry=False)
    try:
        root.mkdir(parents=True, exist_ok=True)
        journal.record(*(o.entry for o in ops))
        for o in ops:
            _perform(real, o)
        for a in actions:
            _run_action(real, journal, a)
        journal.finish()
    except BaseException as exc:
        undo_warnings: list[str] = []
        try:
            undo(journal, RootView(root, dry=False), None, undo_warnings)
            journal.discard()
        except BaseException as inner:  # the root is in an unknown state: keep the journal
            raise RaisinError(
                f"activation failed ({exc}) and undoing it failed too ({inner})",
                file=str(journal.path),
                hint="the journal is kept; run the command again to retry the undo",
            ) from inner
        if isinstance(exc, OSError):
            raise RaisinError(f"activation failed: {exc}", file=str(root)) from exc
        raise
    return journal, warnings
