"""Use cases of binary caches: keys, push, substituter setup, export and import.

Like the other use cases, these take a :class:`~raisin_lock.app.project.Project`,
do the work and return values; the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raisin_lock import atomic
from raisin_lock.app.gc import guard, register_lock_root
from raisin_lock.app.project import load_lock
from raisin_lock.cache.bundle import export as do_export
from raisin_lock.cache.bundle import import_ as do_import
from raisin_lock.cache.keys import SecretKey, TrustedKeys, write_pair
from raisin_lock.cache.push import push as do_push
from raisin_lock.cache.substitute import Substituters
from raisin_lock.cache.transport import open_cache
from raisin_lock.display import display_path
from raisin_lock.errors import InputError, unknown_component
from raisin_lock.lock import lockfile
from raisin_lock.manifest.quick import top_table
from raisin_lock.store import remote_marks

if TYPE_CHECKING:
    from raisin_lock.app.project import Project
    from raisin_lock.cache.bundle import ExportResult, ImportResult
    from raisin_lock.cache.push import Progress, PushResult
    from raisin_lock.manifest.model import CacheSpec
    from raisin_lock.store_path import StorePath


def _settings(project: Project | None) -> CacheSpec | None:
    """The manifest's ``[cache]`` table, validated; None when there is none. Without one
    the manifest model (pydantic, ~0.1 s of imports) is not loaded: a realize that only
    substitutes spends about as long on everything else before its first download."""
    if project is None or top_table(project.manifest_path, "cache") == {}:
        return None
    from raisin_lock.manifest.model import read_cache_table

    return read_cache_table(project.manifest_path)


def trusted_keys(project: Project | None, extra: list[str]) -> TrustedKeys:
    settings = _settings(project)
    shown = display_path(project.manifest_path) if project is not None else None
    keys = TrustedKeys.parse(
        settings.trusted_keys if settings else (), key="cache.trusted-keys", file=shown
    )
    more = TrustedKeys.parse(extra, key="--trusted-key")
    return TrustedKeys([k for ks in (*keys.by_name.values(), *more.by_name.values()) for k in ks])


def make_substituters(
    project: Project | None,
    urls: list[str],
    keys: list[str],
    *,
    warn: Callable[[str], None],
    offline: bool = False,
) -> Substituters | None:
    """The substituters of one realize: ``--substituter`` first, then ``[cache] substituters``."""
    settings = _settings(project)
    all_urls = [*urls, *(settings.substituters if settings else ())]
    if not all_urls:
        return None

    if offline:
        remote = [u for u in all_urls if not u.startswith("file:")]
        if remote:
            warn(f"--offline: not asking {', '.join(remote)}")
        all_urls = [u for u in all_urls if u.startswith("file:")]
        if not all_urls:
            return None
    trusted = trusted_keys(project, keys)
    if not trusted:
        raise InputError(
            "substituters are set but no key is trusted: add --trusted-key NAME:BASE64 "
            "(or [cache] trusted-keys); unsigned paths are never accepted",
            key="--trusted-key",
        )
    return Substituters(all_urls, trusted, warn=warn)


def generate_key(name: str, out_dir: Path) -> tuple[Path, Path, str]:

    sk = SecretKey.generate(name)
    secret, public = write_pair(sk, out_dir)
    return secret, public, str(sk.public())


def _roots(
    project: Project, names: list[str], lock_file: Path | None = None
) -> tuple[Any, set[StorePath], bytes]:

    if lock_file is not None:
        shown = display_path(lock_file)
        lk = lockfile.read(lock_file, shown=shown)
        lockfile.check_consistent(lk, shown)
        text = lock_file.read_bytes()
    else:
        lk = load_lock(project)
        text = project.lock_path.read_bytes()
    for n in names:
        if n not in lk.components:
            raise unknown_component(n, lk.components)
    chosen = names or sorted(lk.components)
    store = project.store(create=False)
    outs = {lk.components[n].out for n in chosen}
    valid = store.valid_subset(outs)
    unbuilt = sorted(n for n in chosen if lk.components[n].out not in valid)
    if unbuilt:
        raise InputError(
            f"not built in {store.root}: {', '.join(unbuilt)}", hint="run `raisin realize` first"
        )
    return store, outs, text


def push(
    project: Project,
    cache_url: str,
    names: list[str],
    key_file: Path,
    *,
    progress: Progress | None = None,
    allow_unsandboxed: bool = False,
    sign_remote: bool = False,
) -> PushResult:

    key = SecretKey.load(key_file)
    store, outs, _ = _roots(project, names)
    remote = sorted(sp.base for sp in remote_marks.built(store.root, store.closure(outs)))
    if remote and not sign_remote:
        store.close()
        raise InputError(
            f"refusing to sign {len(remote)} path(s) built by a remote executor "
            f"(not by this machine): {', '.join(remote[:3])}",
            hint="sign them anyway with --sign-remote",
        )
    cache = open_cache(cache_url)
    try:
        return do_push(
            store, cache, outs, key, progress=progress, allow_unsandboxed=allow_unsandboxed
        )
    finally:
        cache.close()
        store.close()


def export(
    project: Project,
    dest: Path,
    names: list[str],
    key_file: Path,
    *,
    progress: Callable[[StorePath, int], None] | None = None,
) -> ExportResult:

    key = SecretKey.load(key_file)
    store, outs, lock_text = _roots(project, names)
    try:
        return do_export(store, dest, lock_text, outs, key, progress=progress)
    finally:
        store.close()


def import_(
    project: Project,
    src: Path,
    *,
    keys: list[str],
    lock_out: Path | None = None,
    check_sigs: bool = True,
    progress: Callable[[StorePath, str], None] | None = None,
) -> tuple[ImportResult, Path]:
    """Load an export into the store; write its lock to ``lock_out`` (default the project's)."""

    dest = lock_out or project.lock_path
    trusted = trusted_keys(project, keys)
    if check_sigs and not trusted:
        raise InputError(
            "no key is trusted: pass --trusted-key NAME:BASE64 (the exporter's public key)",
            key="--trusted-key",
        )

    def on_lock(text: bytes) -> None:

        lockfile.loads(text.decode(errors="replace"), shown=f"{display_path(src)}: raisin.lock")
        if dest.exists() and dest.read_bytes() != text:
            raise InputError(
                "exists and differs from the exported lock; not overwriting it",
                file=display_path(dest),
                hint="give --lock-out PATH to write the imported lock elsewhere",
            )

    store = project.store()
    try:
        store.cleanup()
        with guard(store):
            result = do_import(
                store, src, trusted, check_sigs=check_sigs, on_lock=on_lock, progress=progress
            )
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(dest, result.lock_text)
            register_lock_root(store, dest.absolute())
        return result, dest
    finally:
        store.close()
