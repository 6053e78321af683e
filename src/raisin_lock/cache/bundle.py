"""Hand-over files: a lock and its closure in one file, for machines with no shared cache.

An export is an uncompressed POSIX tar (the NARs inside are compressed
already) laid out as a binary cache, in an order that lets ``import`` stream
it without temp space::

    raisin-export          "raisin-export 1\\n": format marker and version
    raisin.lock            the lock the closure realizes
    nix-cache-info
    <digest>.narinfo       \\  one pair per path, references before referrers,
    nar/<hash>.nar.zst     /  each narinfo signed by the exporter's key

``import`` reads the members in that order and nothing else: every narinfo
must be signed by a trusted key, every NAR must match its narinfo's
FileSize and (signed) NarHash and pass the strict NAR restore, and references must
already be valid (in the store or earlier in the file). Tar metadata (names,
modes, links) is never applied to the file system: members are read as byte
streams only.

History: version 1 (this one).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from raisin_lock import atomic
from raisin_lock.cache import narinfo as ni
from raisin_lock.cache.keys import SecretKey, TrustedKeys
from raisin_lock.cache.push import pack
from raisin_lock.cache.substitute import unpack_into, verify_narinfo
from raisin_lock.errors import InputError
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.store.local import Store

MAGIC = b"raisin-export 1\n"
FORMAT_VERSION = 1


class BadBundle(InputError):
    """An export file that is not one, is too new, or is out of order."""


def _topo(store: Store, paths: set[StorePath]) -> list[StorePath]:
    infos = {sp: store.query(sp) for sp in paths}
    order: list[StorePath] = []
    seen: set[StorePath] = set()

    def visit(sp: StorePath) -> None:
        if sp in seen:
            return
        seen.add(sp)
        info = infos[sp]
        assert info is not None
        for r in sorted(info.references - {sp}):
            visit(r)
        order.append(sp)

    for sp in sorted(paths):
        visit(sp)
    return order


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    ti.mtime = 1
    tar.addfile(ti, io.BytesIO(data))


@dataclass
class ExportResult:
    paths: list[StorePath] = field(default_factory=list)
    file_bytes: int = 0


def export(
    store: Store,
    dest: Path,
    lock_text: bytes,
    roots: set[StorePath],
    key: SecretKey,
    *,
    progress: Callable[[StorePath, int], None] | None = None,
) -> ExportResult:
    """Write the export file ``dest`` (via a temp file and rename)."""
    order = _topo(store, store.closure(roots))
    result = ExportResult()
    try:
        with (
            atomic.writing(dest) as f,
            tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, "raisin-export", MAGIC)
            _add_bytes(tar, "raisin.lock", lock_text)
            _add_bytes(tar, ni.CACHE_INFO, ni.render_cache_info().encode())
            for sp in order:
                with store.tmpdir("export") as scratch:
                    info = pack(store, sp, scratch / "nar")
                    info = info.signed(key.sign(info.fingerprint()))
                    _add_bytes(tar, f"{sp.digest}.narinfo", info.render().encode())
                    ti = tar.gettarinfo(str(scratch / "nar"), arcname=info.url)
                    ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0o644, 1, 0, 0, "", ""
                    with open(scratch / "nar", "rb") as nf:
                        tar.addfile(ti, nf)
                result.paths.append(sp)
                result.file_bytes += info.file_size or 0
                if progress:
                    progress(sp, info.file_size or 0)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", file=str(dest)) from None
    return result


@dataclass
class ImportResult:
    lock_text: bytes = b""
    added: list[StorePath] = field(default_factory=list)
    present: list[StorePath] = field(default_factory=list)


def import_(
    store: Store,
    src: Path,
    trusted: TrustedKeys,
    *,
    check_sigs: bool = True,
    on_lock: Callable[[bytes], None] | None = None,
    progress: Callable[[StorePath, str], None] | None = None,
) -> ImportResult:
    """Verify and load the export file ``src`` into ``store``.

    ``on_lock`` gets the lock's bytes before any path is loaded (it may
    refuse by raising); paths already valid are skipped.
    """
    shown = str(src)
    result = ImportResult()
    try:
        f: IO[bytes] = open(src, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=shown) from None
    with f:
        try:
            tar = tarfile.open(fileobj=f, mode="r|")  # noqa: SIM115 - a stream over f, closed with it
        except tarfile.TarError as exc:
            raise BadBundle(f"not a raisin export file ({exc})", file=shown) from None
        pending: ni.NarInfo | None = None
        stage = 0  # 0: marker, 1: lock, 2: cache info, 3: narinfo/nar pairs
        try:
            for member in tar:
                name = member.name
                if not member.isfile():
                    raise BadBundle(f"unexpected member {name!r} (not a regular file)", file=shown)
                if member.size > (1 << 20) and not name.startswith("nar/"):
                    raise BadBundle(f"member {name!r} is too large", file=shown)
                stream = tar.extractfile(member)
                assert stream is not None
                if stage == 0:
                    if name != "raisin-export":
                        raise BadBundle(
                            "not a raisin export file (no raisin-export marker first)", file=shown
                        )
                    marker = stream.read()
                    if not marker.startswith(b"raisin-export "):
                        raise BadBundle("not a raisin export file (bad marker)", file=shown)
                    if marker != MAGIC:
                        raise BadBundle(
                            f"export format {marker.decode(errors='replace').split()[-1]!r} is newer than "
                            f"this raisin reads ({FORMAT_VERSION})",
                            file=shown,
                        )
                    stage = 1
                elif stage == 1:
                    if name != "raisin.lock":
                        raise BadBundle(f"expected raisin.lock, found {name!r}", file=shown)
                    result.lock_text = stream.read()
                    if on_lock is not None:
                        on_lock(result.lock_text)
                    stage = 2
                elif stage == 2:
                    if name != ni.CACHE_INFO:
                        raise BadBundle(f"expected {ni.CACHE_INFO}, found {name!r}", file=shown)
                    ni.parse_cache_info(
                        stream.read().decode(errors="replace"), source=f"{shown}: {name}"
                    )
                    stage = 3
                elif pending is None:
                    if not name.endswith(".narinfo") or "/" in name:
                        raise BadBundle(f"expected a .narinfo, found {name!r}", file=shown)
                    where = f"{shown}: {name}"
                    info = ni.parse(stream.read().decode(errors="replace"), source=where)
                    if name != f"{info.path.digest}.narinfo":
                        raise BadBundle(f"{name} describes {info.path.base}", file=shown)
                    if check_sigs:
                        verify_narinfo(info, info.path, trusted, where)
                    pending = info
                else:
                    info, pending = pending, None
                    if name != info.url:
                        raise BadBundle(
                            f"expected {info.url} after {info.path.digest}.narinfo, found {name!r}",
                            file=shown,
                        )
                    if store.is_valid(info.path):
                        result.present.append(info.path)
                        if progress:
                            progress(info.path, "present")
                        continue
                    missing = sorted(
                        r.base for r in info.references - {info.path} if not store.is_valid(r)
                    )
                    if missing:
                        raise BadBundle(
                            f"{info.path.base} refers to {missing[0]}, which is neither in "
                            "the store nor earlier in the file",
                            file=shown,
                        )
                    unpack_into(store, info, stream, where=f"{shown}: {name}")
                    result.added.append(info.path)
                    if progress:
                        progress(info.path, "added")
        except tarfile.TarError as exc:
            raise BadBundle(f"damaged export file: {exc}", file=shown) from None
        except EOFError:
            raise BadBundle("truncated export file", file=shown) from None
        if stage < 3:
            raise BadBundle("truncated export file (no cache info)", file=shown)
        if pending is not None:
            raise BadBundle(
                f"truncated export file: the NAR of {pending.path.base} is missing", file=shown
            )
    return result
