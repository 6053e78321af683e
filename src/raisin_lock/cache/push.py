"""Push: store paths and their closure into a cache, signed.

For each path of the closure that the cache does not hold yet
(``<digest>.narinfo`` absent): the NAR is streamed from the store through the
compressor into a temp file under the store's ``tmp/`` (hashing the NAR and
the compressed bytes on the way, so memory stays bounded whatever the size),
the NAR hash is checked against the store's record (a damaged path is never
pushed), the file is uploaded as ``nar/<filehash>.nar.zst`` (skipped if
there), and only then the signed narinfo. A reader therefore never finds a
narinfo whose NAR is missing. ``nix-cache-info`` is written when absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from raisin_lock import nar
from raisin_lock.cache import narinfo as ni
from raisin_lock.cache.compression import compressor
from raisin_lock.cache.keys import SecretKey
from raisin_lock.cache.transport import Transport
from raisin_lock.errors import DamageFound, InputError, RaisinError
from raisin_lock.hashing import Hash
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from pathlib import Path

    from raisin_lock.store.local import Store

Progress = Callable[[StorePath, str, int, int], None]  # path, state, nar bytes, file bytes


@dataclass
class PushResult:
    pushed: list[StorePath] = field(default_factory=list)
    present: list[StorePath] = field(default_factory=list)
    nar_bytes: int = 0
    file_bytes: int = 0


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def pack(store: Store, sp: StorePath, dest: Path, *, compression: str = "zstd") -> ni.NarInfo:
    """Write ``sp``'s compressed NAR to ``dest``; return its (unsigned) narinfo."""
    info = store.query(sp)
    if info is None:
        raise RaisinError(f"{sp.base} is not a valid store path", file=str(store.root))
    nar_hash = hashlib.sha256()
    with open(dest, "wb") as raw:
        hw = _HashingWriter(raw)
        comp = compressor(compression, hw)  # type: ignore[arg-type]

        def write(chunk: bytes) -> None:
            nar_hash.update(chunk)
            comp.write(chunk)

        try:
            nar_size = nar.dump(store.host_path(sp), write)
        except (OSError, ValueError) as exc:
            raise DamageFound(
                f"cannot read {sp.base}: {exc}",
                file=str(store.root),
                hint="run `raisin store verify --repair`",
            ) from None
        comp.close()
    got = Hash(nar_hash.digest())
    if got != info.nar_hash or nar_size != info.nar_size:
        raise DamageFound(
            f"{sp.base} is damaged (NAR hash {got.sri}, recorded {info.nar_hash.sri}); not pushing it",
            file=str(store.root),
            hint="run `raisin store verify --repair`",
        )
    file_hash = Hash(hw.hash.digest())
    deriver = None
    if info.deriver:
        try:
            deriver = ni.deriver_name(info.deriver, sp.name)
        except ValueError:
            deriver = None
    return ni.NarInfo(
        path=sp,
        url=f"nar/{file_hash.nix32}.nar{ni.COMPRESSIONS[compression]}",
        compression=compression,
        file_hash=file_hash,
        file_size=hw.size,
        nar_hash=info.nar_hash,
        nar_size=info.nar_size,
        references=info.references,
        deriver=deriver,
        ca=f"fixed:r:sha256:{info.nar_hash.nix32}" if info.ca == "source" else None,
    )


def ensure_cache_info(cache: Transport) -> None:
    text = cache.get(ni.CACHE_INFO)
    if text is None:
        cache.put_bytes(ni.CACHE_INFO, ni.render_cache_info().encode(), "text/x-nix-cache-info")
    else:
        ni.parse_cache_info(text.decode(errors="replace"), source=cache.where(ni.CACHE_INFO))


def push(
    store: Store,
    cache: Transport,
    roots: Iterable[StorePath],
    key: SecretKey,
    *,
    progress: Progress | None = None,
    compression: str = "zstd",
    allow_unsandboxed: bool = False,
) -> PushResult:
    """Push the closure of ``roots`` (all valid) to ``cache``, signed with ``key``.

    A path built with ``--sandbox none`` is refused (before anything is
    uploaded) unless ``allow_unsandboxed``: signing it would vouch for a
    build that could have read anything on the host."""
    closure = sorted(store.closure(roots))
    unsandboxed = sorted(p.base for p in store.unsandboxed_subset(closure))
    if unsandboxed and not allow_unsandboxed:
        raise InputError(
            f"not pushing: built without the sandbox (--sandbox none): {', '.join(unsandboxed)}",
            hint="rebuild them with `raisin realize` (sandboxed), "
            "or push them anyway with --allow-unsandboxed",
        )
    ensure_cache_info(cache)
    result = PushResult()
    for sp in closure:
        if cache.exists(f"{sp.digest}.narinfo"):
            result.present.append(sp)
            if progress:
                progress(sp, "present", 0, 0)
            continue
        with store.tmpdir("push") as tmp:
            info = pack(store, sp, tmp / "nar", compression=compression)
            info = info.signed(key.sign(info.fingerprint()))
            if not cache.exists(info.url):
                cache.put_file(info.url, tmp / "nar", "application/x-nix-nar")
            cache.put_bytes(f"{sp.digest}.narinfo", info.render().encode(), "text/x-nix-narinfo")
        result.pushed.append(sp)
        result.nar_bytes += info.nar_size
        result.file_bytes += info.file_size or 0
        if progress:
            progress(sp, "pushed", info.nar_size, info.file_size or 0)
    return result
