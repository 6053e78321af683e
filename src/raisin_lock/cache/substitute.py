"""Substitution: fetch a store path from a cache instead of building it.

:class:`Substituters` asks its caches in order for ``<digest>.narinfo``. A
path is *offered* only when the narinfo parses, names the path asked for,
and carries a valid signature by a trusted key over Nix's fingerprint; every
other answer becomes a reason ("not in the cache", "signed by untrusted key
X", "unreachable: ...") that realize prints when it falls back to building.

Fetching (:meth:`Substituters.fetch`) first substitutes the references the
store lacks (a narinfo's references form the runtime closure), then streams
the compressed NAR: download -> FileSize counter -> decompressor -> the
store's strict NAR restore into ``tmp/`` (invariant 4: canonical NARs only,
nothing escapes the directory, ``NarSize`` bounds it) -> NAR hash check ->
the rest of the download drained and its size checked -> one registration.
Any failure leaves nothing registered and nothing outside the store's
``tmp/``. Nothing is ever held in memory beyond a few MiB buffers.

What is trusted is the signature, and it covers the NarHash and NarSize
(Nix's fingerprint), not the compressed file: a narinfo's ``FileHash`` is
unsigned, so whoever can change the file can change it too. Checking it
would add no trust, only a second SHA-256 pass over every byte, which on 2
cores was a quarter of the CPU a substitution takes (Nix does not check it
either). So the compressed bytes are counted (``FileSize``, and the bound
on what is read), not hashed; corruption anywhere shows up as a
decompression error or a NarHash mismatch.

A cache that cannot be reached is marked dead for the rest of the run (one
warning, no per-path timeouts).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from raisin_lock.cache import narinfo as ni
from raisin_lock.cache.compression import decompressor
from raisin_lock.cache.keys import TrustedKeys
from raisin_lock.cache.transport import (
    CacheDenied,
    CacheError,
    CacheUnreachable,
    Transport,
    open_cache,
)
from raisin_lock.errors import HashMismatch, InputError, RaisinError, UnsafeArchive
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.store.local import Store
    from raisin_lock.store.path_info import PathInfo


class SubstituteFailed(RaisinError):
    """No cache could provide a path; ``trust`` is True when an answer was refused
    for a trust or integrity reason (bad signature, hash mismatch, unsafe NAR)."""

    def __init__(self, message: str, *, trust: bool = False) -> None:
        super().__init__(message)
        self.trust = trust
        if trust:
            self.exit_code = 2


class Untrusted(InputError):
    """A narinfo not signed by any trusted key."""


@dataclass(frozen=True)
class Offer:
    cache: Transport
    info: ni.NarInfo
    key: str  # the trusted key that signed it


class _Counter:
    """Counts the compressed bytes on their way to the decompressor, refusing more than ``limit``."""

    def __init__(self, raw: Any, limit: int, where: str) -> None:
        self.raw = raw
        self.where = where
        self.size = 0
        self.limit = limit

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self.raw.read(n if n is not None and n >= 0 else 1 << 20)
        except RaisinError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx timeouts and resets, OSError: not the data's fault
            raise CacheUnreachable(
                f"{self.where}: download failed: {type(exc).__name__}: {exc}"
            ) from None
        self.size += len(data)
        if self.size > self.limit:
            raise UnsafeArchive(
                f"download larger than the {self.limit} bytes the narinfo announced"
            )
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _Prefetch:
    """Download, count and decompress in a thread; ``read(n)`` hands out NAR bytes.

    The restore (hashing and writing files) runs in the caller's thread, so
    the two halves of a substitution use two cores. At most ``depth`` chunks
    of about 1 MiB wait between them, which bounds memory.
    """

    def __init__(self, counter: _Counter, kind: str, where: str, depth: int = 4) -> None:
        self.counter = counter
        self.kind = kind
        self.where = where
        self.q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._chunk = b""
        self._off = 0
        self._eof = False
        self.nar_bytes = 0  # decompressed bytes handed over
        self.thread = threading.Thread(target=self._run, name="raisin-download", daemon=True)
        self.thread.start()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            dec = decompressor(self.kind, self.counter)  # type: ignore[arg-type]
            while not self._stop.is_set():
                try:
                    data = dec.read(1 << 20)
                except RaisinError:
                    raise
                except Exception as exc:  # noqa: BLE001 - zstd/lzma/bz2 errors: corrupt or truncated data
                    raise UnsafeArchive(f"{self.where}: corrupt compressed NAR: {exc}") from None
                if not data:
                    break
                self.nar_bytes += len(data)
                if not self._put(data):
                    return
            self.counter.drain()  # so that FileSize counts every byte of the file
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, re-raised there
            self._put(exc)

    def read(self, n: int) -> bytes | memoryview:
        if self._off >= len(self._chunk):
            if self._eof:
                return b""
            item = self.q.get()
            if item is None:
                self._eof = True
                return b""
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._chunk, self._off = item, 0
        if self._off == 0 and n >= len(self._chunk):
            whole, self._chunk = self._chunk, b""
            return whole
        out: bytes | memoryview
        if n >= 1 << 16:  # file contents: a view, not a copy (tokens are read in small pieces)
            out = memoryview(self._chunk)[self._off : self._off + n]
        else:
            out = self._chunk[self._off : self._off + n]
        self._off += len(out)
        return out

    def close(self) -> None:
        self._stop.set()
        self.thread.join(
            timeout=5
        )  # a thread still blocked in a read ends at its timeout; it writes nothing


def verify_narinfo(info: ni.NarInfo, sp: StorePath, trusted: TrustedKeys, where: str) -> str:
    """The trusted key name that signed ``info`` for ``sp``; Untrusted/BadNarInfo otherwise."""
    if info.path != sp:
        raise ni.BadNarInfo(f"{where}: describes {info.path.base}, not {sp.base}")
    if not info.sigs:
        raise Untrusted(f"{where}: not signed")
    name = trusted.check(info.fingerprint(), info.sigs)
    if name is None:
        signers = ", ".join(sorted({s.partition(":")[0] for s in info.sigs}))
        trust = ", ".join(trusted.names()) or "none"
        raise Untrusted(
            f"{where}: no valid signature by a trusted key (signed by {signers}; trusted: {trust})"
        )
    if (
        info.ca
        and info.ca.startswith("fixed:r:sha256:")
        and StorePath.make("source", info.nar_hash, sp.name) != sp
    ):
        raise ni.BadNarInfo(f"{where}: content address does not match the path name")
    return name


def unpack_into(
    store: Store,
    info: ni.NarInfo,
    raw: Any,
    *,
    where: str,
    deriver: str | None = None,
) -> PathInfo:
    """Verify and add one downloaded (compressed) NAR ``raw`` as ``info.path``."""
    slack = 1 << 20
    limit = info.file_size if info.file_size is not None else info.nar_size * 2 + slack
    counter = _Counter(raw, limit, where)
    pipe = _Prefetch(counter, info.compression, where)

    def check_file() -> None:
        if pipe.read(1):
            raise UnsafeArchive(f"{where}: data after the end of the NAR")
        pipe.thread.join()
        if pipe.nar_bytes != info.nar_size:
            raise HashMismatch(
                f"{where}: NarSize {info.nar_size} but the NAR has {pipe.nar_bytes} bytes"
            )
        if info.file_size is not None and counter.size != info.file_size:
            raise HashMismatch(
                f"{where}: download is {counter.size} bytes, the narinfo says {info.file_size}"
            )

    ca = "source" if info.ca and info.ca.startswith("fixed:r:sha256:") else None
    try:
        got = store.add_nar(
            # views come only from reads of >= 64 KiB, which restore makes for
            # file contents alone (hashed and written, never compared)
            cast("Callable[[int], bytes]", pipe.read),
            info.path,
            expected=info.nar_hash,
            references=info.references,
            deriver=deriver,
            ca=ca,
            max_size=info.nar_size,
            before_register=check_file,
            rehash=False,
        )
    except HashMismatch as exc:
        raise HashMismatch(f"{where}: {exc.message}") from None
    except UnsafeArchive as exc:
        raise UnsafeArchive(
            exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
        ) from None
    finally:
        pipe.close()
    return got


class Substituters:
    """The caches one realize (or import) asks, in order, and what they answered."""

    def __init__(
        self,
        urls: Iterable[str],
        trusted: TrustedKeys,
        *,
        warn: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.caches = [open_cache(u, key="--substituter") for u in dict.fromkeys(urls)]
        self.trusted = trusted
        self.warn = warn
        self._dead: dict[str, str] = {}
        self._info_checked: set[str] = set()
        self._lock = threading.Lock()
        self._info_locks = {c.url: threading.Lock() for c in self.caches}  # see _cache_ok
        self._answers: dict[StorePath, tuple[Offer | None, list[str]]] = {}
        self._refused: set[StorePath] = set()  # a cache answered, but untrusted or malformed
        self._denied: set[str] = set()  # caches that refused our credentials

    def __bool__(self) -> bool:
        return bool(self.caches)

    def close(self) -> None:
        for c in self.caches:
            c.close()

    def _mark_dead(self, cache: Transport, why: str) -> None:
        with self._lock:
            if cache.url in self._dead:
                return
            self._dead[cache.url] = why
        self.warn(f"{why}; not asking it again in this run")

    def _cache_ok(self, cache: Transport) -> str | None:
        """None if ``cache`` is a binary cache; else why not. Its nix-cache-info is fetched once:
        the parallel lookups wait for the first one's check."""
        with self._info_locks[cache.url]:
            if cache.url in self._dead:
                return self._dead[cache.url]
            if cache.url in self._info_checked:
                return None
            try:
                text = cache.get(ni.CACHE_INFO)
                if text is None:
                    raise CacheError(
                        f"cache {cache.url} has no {ni.CACHE_INFO}: not a binary cache"
                    )
                ni.parse_cache_info(
                    text.decode(errors="replace"), source=cache.where(ni.CACHE_INFO)
                )
            except (CacheError, ni.BadNarInfo) as exc:
                if isinstance(exc, CacheDenied):
                    self._denied.add(cache.url)
                self._mark_dead(cache, exc.message)
                return exc.message
            self._info_checked.add(cache.url)
            return None

    def query(self, sp: StorePath) -> tuple[Offer | None, list[str]]:
        """The first trusted offer for ``sp`` and the reasons the other caches gave."""
        with self._lock:
            if sp in self._answers:
                return self._answers[sp]
        reasons: list[str] = []
        offer = None
        for cache in self.caches:
            dead = self._cache_ok(cache)
            if dead:
                reasons.append(dead)
                if cache.url in self._denied:  # refused credentials: bad input, as a bad key is
                    with self._lock:
                        self._refused.add(sp)
                continue
            where = cache.where(f"{sp.digest}.narinfo")
            try:
                text = cache.get(f"{sp.digest}.narinfo")
                if text is None:
                    reasons.append(f"{cache.url}: not in the cache")
                    continue
                info = ni.parse(text.decode(errors="replace"), source=where)
                key = verify_narinfo(info, sp, self.trusted, where)
            except CacheUnreachable as exc:
                self._mark_dead(cache, exc.message)
                reasons.append(exc.message)
                continue
            except CacheDenied as exc:
                reasons.append(exc.message)
                with self._lock:
                    self._refused.add(sp)
                continue
            except CacheError as exc:
                reasons.append(exc.message)
                continue
            except InputError as exc:  # bad narinfo, bad or missing signature
                reasons.append(exc.message)
                with self._lock:
                    self._refused.add(sp)
                continue
            offer = Offer(cache, info, key)
            break
        with self._lock:
            self._answers[sp] = (offer, reasons)
        return offer, reasons

    def refused(self, sp: StorePath) -> bool:
        """Whether a cache's answer for ``sp`` was refused (signature, format), not just absent."""
        with self._lock:
            return sp in self._refused

    def fetch(
        self, store: Store, sp: StorePath, *, deriver: str | None = None, _depth: int = 0
    ) -> PathInfo:
        """Substitute ``sp`` (and the references the store lacks); SubstituteFailed if no cache can."""
        existing = store.query(sp)
        if existing is not None:
            return existing
        if _depth > 256:
            raise SubstituteFailed(f"{sp.base}: references nest too deeply")
        offer, reasons = self.query(sp)
        if offer is None:
            raise SubstituteFailed(
                f"{sp.base}: " + ("; ".join(reasons) or "no substituter"), trust=self.refused(sp)
            )
        for ref in sorted(offer.info.references - {sp}):
            if not store.is_valid(ref):
                self.fetch(store, ref, _depth=_depth + 1)
        where = offer.cache.where(offer.info.url)
        try:
            with offer.cache.open(offer.info.url) as raw:
                return unpack_into(store, offer.info, raw, where=where, deriver=deriver)
        except (HashMismatch, UnsafeArchive) as exc:
            raise SubstituteFailed(exc.message, trust=True) from None
        except CacheUnreachable as exc:
            self._mark_dead(offer.cache, exc.message)
            raise SubstituteFailed(f"{sp.base}: {exc.message}") from None
        except CacheError as exc:
            raise SubstituteFailed(f"{sp.base}: {exc.message}") from None
