"""Use cases of binary caches: keys, push, substituter setup, export and import.

Like :mod:`raisin_lock.api`, these take a :class:`~raisin_lock.api.Project`,
do the work and return values; the CLI prints.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .display import display_path
from .errors import InputError, ManifestError

if TYPE_CHECKING:
    from .api import Project
    from .cache.bundle import ExportResult, ImportResult
    from .cache.push import Progress, PushResult
    from .cache.substitute import Substituters
    from .store_path import StorePath


@dataclass
class CacheSettings:
    substituters: list[str]
    trusted_keys: list[str]


def cache_settings(project: Project | None) -> CacheSettings:
    """The manifest's ``[cache]`` table (empty without a manifest), read without pydantic."""
    if project is None or not project.manifest_path.exists():
        return CacheSettings([], [])
    shown = display_path(project.manifest_path)
    try:
        doc = tomllib.loads(project.manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        project.load_manifest()  # reports the problem with its line
        raise  # pragma: no cover - load_manifest raised
    table = doc.get("cache", {})
    if not isinstance(table, dict):
        raise ManifestError("expected a table", file=shown, key="cache")
    out: dict[str, list[str]] = {}
    for key in ("substituters", "trusted-keys"):
        v = table.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ManifestError("expected a list of strings", file=shown, key=f"cache.{key}")
        out[key] = v
    unknown = sorted(set(table) - {"substituters", "trusted-keys"})
    if unknown:
        raise ManifestError(f"unknown key {unknown[0]!r} (expected one of: substituters, trusted-keys)",
                            file=shown, key="cache")
    return CacheSettings(out["substituters"], out["trusted-keys"])


def trusted_keys(project: Project | None, extra: list[str]) -> Any:
    from .cache.keys import TrustedKeys

    settings = cache_settings(project)
    shown = display_path(project.manifest_path) if project is not None else None
    keys = TrustedKeys.parse(settings.trusted_keys, key="cache.trusted-keys", file=shown)
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
    settings = cache_settings(project)
    all_urls = [*urls, *settings.substituters]
    if not all_urls:
        return None
    from .cache.substitute import Substituters

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
    from .cache.keys import SecretKey, write_pair

    sk = SecretKey.generate(name)
    secret, public = write_pair(sk, out_dir)
    return secret, public, str(sk.public())


def _roots(project: Project, names: list[str], lock_file: Path | None = None) -> tuple[Any, set[StorePath], bytes]:
    from . import lockfile
    from .api import load_lock

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
            raise InputError(f"unknown component {n!r} (known: {', '.join(sorted(lk.components))})")
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
) -> PushResult:
    from .cache.keys import SecretKey
    from .cache.push import push as do_push
    from .cache.transport import open_cache

    key = SecretKey.load(key_file)
    cache = open_cache(cache_url)
    store, outs, _ = _roots(project, names)
    try:
        return do_push(store, cache, outs, key, progress=progress)
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
    from .cache.bundle import export as do_export
    from .cache.keys import SecretKey

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
    from .cache.bundle import import_ as do_import
    from .gc import guard, register_lock_root

    dest = lock_out or project.lock_path
    trusted = trusted_keys(project, keys)
    if check_sigs and not trusted:
        raise InputError(
            "no key is trusted: pass --trusted-key NAME:BASE64 (the exporter's public key)",
            key="--trusted-key",
        )

    def on_lock(text: bytes) -> None:
        from . import lockfile

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
            result = do_import(store, src, trusted, check_sigs=check_sigs, on_lock=on_lock, progress=progress)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
                tmp.write_bytes(result.lock_text)
                os.replace(tmp, dest)
            register_lock_root(store, dest.absolute())
        return result, dest
    finally:
        store.close()
