"""Debian source packages: ``source = { debian = "xen", version = "4.17.5+72-g01140da4e8-1" }``.

Fetched with apt into raisin's own apt state under ``<store>/.raisin/apt/``
(so the user never edits ``/etc/apt``): the host's ``deb`` entries are turned
into ``deb-src`` entries (same mirrors, same suites, same keyrings), ``apt-get
update`` fills a private lists directory, ``apt-get source --download-only``
fetches the ``.dsc`` and its files (apt checks them against the signed
``Sources`` index), ``dpkg-source -x`` checks the ``.dsc`` checksums and
unpacks with Debian's patches applied. The tree is then hashed like any other
source; the ``.dsc``'s SHA-256 is recorded too, and SOURCE_DATE_EPOCH is the
top ``debian/changelog`` entry's date.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

from raisin_lock.errors import HashMismatch, SourceError
from raisin_lock.hashing import Hash
from raisin_lock.lock.pins import DEFAULT_DATE, LockedSource, make_label
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

APT_DIRS = ("lists/partial", "cache/archives/partial", "etc")
_UPDATE_MAX_AGE = 6 * 3600


def _host_sources() -> list[tuple[str, str, list[str], str | None]]:
    """(uri, suite, components, signed_by) of every enabled host ``deb`` entry."""
    entries: list[tuple[str, str, list[str], str | None]] = []
    etc = Path("/etc/apt")
    files = [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*.list"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if m:
                opts = m.group(1) or ""
            if m:
                sb = re.search(r"signed-by=(\S+?)[\s\]]", opts)
                entries.append(
                    (m.group(2), m.group(3), m.group(4).split(), sb.group(1) if sb else None)
                )
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        try:
            text = f.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if (
                "deb" not in fields.get("types", "").split()
                or fields.get("enabled", "yes").lower() == "no"
            ):
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    entries.append(
                        (
                            uri,
                            suite,
                            fields.get("components", "main").split(),
                            fields.get("signed-by"),
                        )
                    )
    return entries


def apt_root(ctx: FetchContext) -> Path:
    return ctx.store.root / ".raisin" / "apt"


@contextlib.contextmanager
def _apt_locked(ctx: FetchContext) -> Iterator[Path]:
    """The private apt state, held exclusively: components fetched in parallel
    (and other raisin processes on the same store) share it, and apt's own
    locking is off (Debug::NoLocking, so no root-owned /var/lib/apt lock is
    needed); two ``apt-get update`` runs on one lists directory break each
    other ("Failed to stat .../lists/partial/...")."""
    root = apt_root(ctx)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".raisin-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield root
    finally:
        os.close(fd)


def _apt_opts(root: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::SourceList={root / 'etc' / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/nonexistent",
        "-o",
        f"Dir::State::Lists={root / 'lists'}",
        "-o",
        f"Dir::Cache={root / 'cache'}",
        "-o",
        "APT::Sandbox::User=root",
        "-o",
        "Acquire::Retries=3",
        "-o",
        "Debug::NoLocking=1",
        "-q",
    ]


def _prepare(ctx: FetchContext) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None:
        raise SourceError(
            "debian sources need apt-get and dpkg-source (apt-get install dpkg-dev)",
            file=ctx.file,
            key=ctx.key,
        )
    root = apt_root(ctx)
    for d in APT_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    lines = []
    for uri, suite, comps, signed_by in _host_sources():
        opt = f"[signed-by={signed_by}] " if signed_by else ""
        lines.append(f"deb-src {opt}{uri} {suite} {' '.join(comps)}")
    if not lines:
        raise SourceError(
            "no Debian/Ubuntu apt sources found in /etc/apt to derive deb-src entries from",
            file=ctx.file,
            key=ctx.key,
        )
    text = (
        "# written by raisin from the host's deb entries\n" + "\n".join(sorted(set(lines))) + "\n"
    )
    listing = root / "etc" / "sources.list"
    stale = not listing.exists() or listing.read_text() != text
    if stale:
        listing.write_text(text)
    stamp = root / "lists" / ".raisin-updated"
    fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < _UPDATE_MAX_AGE
    if stale or not fresh:
        if ctx.offline and not stale and stamp.exists():
            return root
        if ctx.offline:
            raise SourceError(
                "needs the network to read the Debian source indexes",
                file=ctx.file,
                key=ctx.key,
                hint="run without --offline",
            )
        p = subprocess.run(
            ["apt-get", *_apt_opts(root), "update"],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
        if p.returncode != 0:
            raise SourceError(
                f"apt-get update failed: {_last(p.stderr)}", file=ctx.file, key=ctx.key
            )
        stamp.touch()
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}


def _last(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def available_versions(root: Path, name: str) -> list[str]:
    p = subprocess.run(
        ["apt-cache", *_apt_opts(root), "showsrc", "--only-source", name],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    return sorted(set(re.findall(r"^Version: (\S+)$", p.stdout, re.MULTILINE)))


def _download(name: str, version: str, ctx: FetchContext, into: Path) -> Path:
    with _apt_locked(ctx):
        return _download_locked(name, version, ctx, into)


def _download_locked(name: str, version: str, ctx: FetchContext, into: Path) -> Path:
    root = _prepare(ctx)
    p = subprocess.run(
        [
            "apt-get",
            *_apt_opts(root),
            "source",
            "--download-only",
            "--only-source",
            f"{name}={version}",
        ],
        cwd=into,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    if p.returncode != 0:
        versions = available_versions(root, name)
        have = (
            f"available: {', '.join(versions)}"
            if versions
            else "no such source package in the configured suites"
        )
        raise SourceError(
            f"Debian source package {name} {version} is not available ({have})",
            file=ctx.file,
            key=ctx.key,
        )
    dscs = list(into.glob("*.dsc"))
    if len(dscs) != 1:
        raise SourceError(
            f"apt-get source fetched {len(dscs)} .dsc files for {name} {version}",
            file=ctx.file,
            key=ctx.key,
        )
    return dscs[0]


def _unpack(dsc: Path, dest: Path, ctx: FetchContext) -> int:
    p = subprocess.run(
        ["dpkg-source", "--require-strong-checksums", "-x", dsc.name, str(dest)],
        cwd=dsc.parent,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    if p.returncode != 0:
        raise SourceError(
            f"dpkg-source -x {dsc.name} failed: {_last(p.stderr or p.stdout)}",
            file=ctx.file,
            key=ctx.key,
        )
    return changelog_date(dest)


def changelog_date(tree: Path) -> int:
    """Date of the top debian/changelog entry (its `` -- Name <mail>  DATE`` trailer)."""
    try:
        with open(tree / "debian" / "changelog", encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^ -- .*?>  (.+)$", line.rstrip("\n"))
                if m:
                    return int(parsedate_to_datetime(m.group(1)).timestamp())
    except (OSError, ValueError, TypeError):
        pass

    return DEFAULT_DATE


def _fetch(
    name: str, version: str, ctx: FetchContext, tmp: Path, expected_dsc: Hash | None
) -> tuple[Path, Hash, int]:
    dl = tmp / "download"
    dl.mkdir()
    dsc = _download(name, version, ctx, dl)
    dsc_hash = Hash(hashlib.sha256(dsc.read_bytes()).digest())
    if expected_dsc is not None and dsc_hash != expected_dsc:
        raise HashMismatch(
            f"{dsc.name}: expected {expected_dsc.sri}, downloaded {dsc_hash.sri}",
            file=ctx.file,
            key=ctx.key,
        )
    tree = tmp / "tree"
    date = _unpack(dsc, tree, ctx)
    return tree, dsc_hash, date


def resolve(spec, ctx: FetchContext) -> LockedSource:  # type: ignore[no-untyped-def]
    name, version = spec.debian, spec.version
    label = make_label(f"{name}-debian")
    with ctx.store.tmpdir("debian-src") as tmp:
        tree, dsc_hash, date = _fetch(name, version, ctx, tmp, None)
        nar_hash = hash_path(tree)[0]
        ctx.store.add_tree(tree, f"{label}-source", expected=nar_hash)
    upstream = re.sub(r"^\d+:", "", version).rsplit("-", 1)[0]
    upstream = re.split(r"[+~]dfsg|\+ds", upstream)[0]
    return LockedSource(
        kind="debian",
        nar_hash=nar_hash,
        date=date,
        label=label,
        file_hash=dsc_hash,
        debian=name,
        debian_version=version,
        version_hint=upstream,
    )


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.debian and src.debian_version
    scratch = dest.with_name(dest.name + ".download")
    scratch.mkdir()
    try:
        tree, _dsc, _date = _fetch(src.debian, src.debian_version, ctx, scratch, src.file_hash)
        os.rename(tree, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
