"""Fetch steps: the one part of a build that may use the network, pinned by what it leaves.

Some upstream trees are not complete in git: QEMU ≥ 8.1 downloads its meson
subprojects at configure time, GRUB's ``./bootstrap`` clones gnulib. A build
sandbox has no network, so such a component declares ``fetch`` steps (or its
recipe does). They run before the build, in the same sandbox as a build but
with the host's network, on a writable copy of the pinned source; the tree
they leave is the component's build input instead of the bare source.

What makes this safe is Nix's fixed-output idea: the lock records the NAR
hash of that tree (``fetch-hash``), and every run checks it. The first
``raisin lock`` runs the steps and pins what they left (trust on first use,
as for a tarball without ``hash``, and said so), or takes the hash the
manifest gives; a later ``realize`` reuses the store path named by that hash
(offline), or runs the steps again and refuses a different result, naming
the component. The fetched tree is a store path
``<digest>-NAME-fetched`` like a source, shared by every derivation that
uses it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from raisin_lock.build import sandbox
from raisin_lock.build.sandbox import BuildSpec, SandboxMode
from raisin_lock.errors import BuildError, HashMismatch, SourceError
from raisin_lock.hashing import Hash
from raisin_lock.lock.pins import fetched_store_path
from raisin_lock.nar import hash_path
from raisin_lock.store.local import Store
from raisin_lock.store_path import VIRTUAL_STORE, StorePath


def fetch(
    store: Store,
    name: str,
    steps: tuple[str, ...],
    source: StorePath,
    date: int,
    expected: Hash | None,
    *,
    mode: SandboxMode,
    offline: bool = False,
    file: str | None = None,
) -> tuple[StorePath, Hash]:
    """The fetched tree of component ``name`` in the store, and its NAR hash.

    ``source`` must be valid in ``store``. With ``expected``, a valid path
    of that hash is reused without running anything; otherwise the steps run
    and must leave exactly that hash (:class:`HashMismatch`).
    """
    key = f"components.{name}.fetch"
    if expected is not None:
        sp = fetched_store_path(expected, name)
        if store.is_valid(sp):
            return sp, expected
    if offline:
        raise SourceError(
            f"{name}'s fetch steps need the network, and --offline was given",
            file=file,
            key=key,
            hint="run once without --offline (or get the fetched tree from a cache)",
        )
    with store.tmpdir(f"fetch-{name}") as tmp:
        build_dir = tmp / "build"
        log = tmp / "fetch.log"
        spec = BuildSpec(
            name=f"{name} (fetch)",
            steps=steps,
            env={},
            out=f"{VIRTUAL_STORE}/{'0' * 32}-{name}-fetch",  # unused: the result is the work tree
            out_host=str(tmp / "out"),
            src=source.virtual,
            src_host=str(store.host_path(source)),
            inputs={},
            dep_vars={},
            build_dir_host=str(build_dir),
            log_path=str(log),
            source_date_epoch=date,
            jobs=1,
            sandbox=mode,
            network=True,
        )
        result = sandbox.run(spec)
        if not result.ok:
            kept = _keep_log(store, name, log)
            raise BuildError(
                f"{name}: fetch steps failed (exit status {result.exit_code}); log: {kept}",
                key=key,
            )
        tree = build_dir / "src"
        try:
            actual = hash_path(tree)[0]
        except (OSError, ValueError) as exc:
            raise BuildError(f"{name}: cannot read what the fetch steps left: {exc}") from exc
        if expected is not None and actual != expected:
            raise HashMismatch(
                f"{name}: the fetch steps left {actual.sri}, the lock expects {expected.sri} "
                "(upstream serves something else now)",
                file=file,
                key=f"components.{name}.fetch-hash",
                hint=f"if the change is expected: raisin lock --update {name}",
            )
        sp = fetched_store_path(actual, name)
        store.add_tree(tree, sp.name, expected=actual)
    return sp, actual


def _keep_log(store: Store, name: str, log: Path) -> Path:
    """Copy a failed fetch's log next to the build logs (the temp dir goes away)."""
    dest = store.root / ".raisin" / "logs" / f"fetch-{name}.log"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, dest)
    except OSError:
        return log
    return dest
