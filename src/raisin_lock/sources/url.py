"""Tarball sources: downloaded with httpx, checked, unpacked safely.

The archive's own SHA-256 (``hash``) is checked when given and always
recorded; the unpacked tree (a single top-level directory stripped, as
Nix's fetchTarball does) is NAR-hashed like every other source. Unpacking
uses tarfile's ``data`` filter: no absolute names, no ``..``, no links
leaving the directory, no devices. SOURCE_DATE_EPOCH is the newest member's
mtime, a property of the pinned archive bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from pathlib import Path

from raisin_lock.errors import HashMismatch, SourceError, UnsafeArchive
from raisin_lock.hashing import Hash
from raisin_lock.lock.pins import DEFAULT_DATE, LockedSource, make_label
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

_VERSION_RE = re.compile(r"-(\d[A-Za-z0-9+._~\-]*?)\.(?:tar(?:\.\w+)?|tgz|tbz2|txz)$")


def _download(url: str, dest: Path, ctx: FetchContext) -> Hash:
    h = hashlib.sha256()
    if url.startswith("file://"):
        try:
            with open(url[len("file://") :], "rb") as f, open(dest, "wb") as out:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
        except OSError as exc:
            raise SourceError(
                f"cannot read {url}: {exc.strerror}", file=ctx.file, key=ctx.key
            ) from None
        return Hash(h.digest())
    if ctx.offline:
        raise SourceError(
            f"needs the network to download {url}",
            file=ctx.file,
            key=ctx.key,
            hint="run without --offline",
        )
    import httpx

    try:
        with httpx.stream(
            "GET", url, follow_redirects=True, timeout=httpx.Timeout(30.0, connect=10.0)
        ) as r:
            if r.status_code != 200:
                raise SourceError(
                    f"cannot download {url}: HTTP {r.status_code}", file=ctx.file, key=ctx.key
                )
            with open(dest, "wb") as out:
                for chunk in r.iter_bytes(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot download {url}: {exc}", file=ctx.file, key=ctx.key) from None
    return Hash(h.digest())


def unpack(archive: Path, dest: Path, ctx: FetchContext) -> int:
    """Unpack into ``dest`` (created); strip one top-level dir; return newest mtime."""
    staging = dest.with_name(dest.name + ".unpack")
    staging.mkdir()
    newest = 0
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                newest = max(newest, int(member.mtime))
                try:
                    tarfile.data_filter(member, str(staging))
                except tarfile.FilterError as exc:
                    raise UnsafeArchive(
                        f"refusing archive member: {exc}", file=ctx.file, key=ctx.key
                    ) from None
            tar.extractall(staging, filter="data")
    except tarfile.TarError as exc:
        raise SourceError(
            f"cannot unpack {archive.name}: {exc}", file=ctx.file, key=ctx.key
        ) from None
    entries = os.listdir(staging)
    if (
        len(entries) == 1
        and (staging / entries[0]).is_dir()
        and not (staging / entries[0]).is_symlink()
    ):
        os.rename(staging / entries[0], dest)
        staging.rmdir()
    else:
        os.rename(staging, dest)
    return newest or DEFAULT_DATE


def _fetch_tree(
    url: str, ctx: FetchContext, tmp: Path, expected_file: Hash | None
) -> tuple[Path, Hash, int]:
    archive = tmp / "archive"
    file_hash = _download(url, archive, ctx)
    if expected_file is not None and file_hash != expected_file:
        raise HashMismatch(
            f"{url}: expected {expected_file.sri}, downloaded {file_hash.sri}",
            file=ctx.file,
            key=ctx.key,
        )
    tree = tmp / "tree"
    date = unpack(archive, tree, ctx)
    return tree, file_hash, date


def resolve(spec, ctx: FetchContext) -> LockedSource:  # type: ignore[no-untyped-def]
    expected = Hash.parse(spec.hash) if spec.hash else None
    label = make_label(spec.url)
    with ctx.store.tmpdir("url-src") as tmp:
        tree, file_hash, date = _fetch_tree(spec.url, ctx, tmp, expected)
        nar_hash = hash_path(tree)[0]
        ctx.store.add_tree(tree, f"{label}-source", expected=nar_hash)
    m = _VERSION_RE.search(spec.url.rsplit("/", 1)[-1])
    return LockedSource(
        kind="url",
        nar_hash=nar_hash,
        date=date,
        label=label,
        url=spec.url,
        file_hash=file_hash,
        version_hint=m.group(1) if m else file_hash.hex[:7],
    )


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.url
    scratch = dest.with_name(dest.name + ".download")
    scratch.mkdir()
    try:
        tree, _fh, _date = _fetch_tree(src.url, ctx, scratch, src.file_hash)
        os.rename(tree, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
