"""Binary inputs of tests: Debian packages as pinned, content-addressed store paths.

A boot test needs things raisin does not build — a dom0 kernel, a static
busybox. They come from the distribution, pinned like any source:

    inputs.kernel = { debian-binary = "linux-image-amd64", version = "6.1.192-2",
                      hash = "sha256-...", keep = ["boot/vmlinuz-*"] }

``apt-get download NAME=VERSION`` fetches the ``.deb`` (apt checks it
against the signed index) and, for a metapackage such as
``linux-image-amd64``, the packages it depends on with an exact ``(= V)``
version — that is how Debian's kernel metapackages name the real image.
``dpkg-deb -x`` unpacks them all into one tree, ``keep`` globs (matching a
directory keeps all below it) trim it, and the tree enters the store named by
its NAR hash, as ``<digest>-<package>-<version>-deb``. ``hash`` pins that NAR
hash: a pinned input found in the store is used without apt or network.
Without ``version`` the host's apt candidate is used, and raisin says what to
write to pin it. A small index under ``<store>/.raisin/test-inputs/`` maps
package and version to the store path, so an unpinned input is fetched once.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.errors import HashMismatch, InputError
from raisin_lock.hashing import Hash
from raisin_lock.nar import hash_path
from raisin_lock.store_path import StorePath, sanitize_name

if TYPE_CHECKING:
    from raisin_lock.manifest.model import TestInputSpec
    from raisin_lock.store.local import Store


class InputUnavailable(Exception):
    """The host cannot provide this input at all (no apt): the test is skipped."""


@dataclass(frozen=True)
class ResolvedInput:
    package: str
    version: str
    path: StorePath
    nar_hash: Hash
    packages: tuple[str, ...]  # every package unpacked, "name=version"
    pinned: bool  # version and hash both given

    def describe(self) -> str:
        extra = [p for p in self.packages if not p.startswith(f"{self.package}=")]
        more = f" (+ {', '.join(extra)})" if extra else ""
        return f"{self.package} {self.version}{more} {self.nar_hash.sri}"

    def pin(self, keep: tuple[str, ...]) -> str:
        keep_s = f", keep = [{', '.join(_q(k) for k in keep)}]" if keep else ""
        return f"{{ debian-binary = {_q(self.package)}, version = {_q(self.version)}, hash = {_q(self.nar_hash.sri)}{keep_s} }}"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}


def _apt_opts() -> list[str]:
    # Downloading into a directory apt's sandbox user cannot write is fine as root.
    return ["-q", "-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else ["-q"]


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, env=_env(), timeout=1800, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"{args[0]} failed: {exc}") from exc


def _last(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("W:")]
    return lines[-1] if lines else "no output"


def candidate(package: str) -> str:
    """The version apt would install here."""
    p = _run(["apt-cache", "policy", package])
    m = re.search(r"^\s*Candidate:\s*(\S+)", p.stdout, re.MULTILINE)
    if not m or m.group(1) == "(none)":
        raise InputError(
            f"Debian package {package} is not available from this host's apt sources",
            hint="check the name, or run `apt-get update`",
        )
    return m.group(1)


def _exact_depends(package: str, version: str) -> list[tuple[str, str]]:
    p = _run(["apt-cache", "show", f"{package}={version}"])
    if p.returncode != 0:
        raise InputError(f"Debian package {package} {version} is not available ({_last(p.stderr)})")
    stanza = p.stdout.split("\n\n", 1)[0]
    m = re.search(r"^Depends:\s*(.*)$", stanza, re.MULTILINE)
    deps = []
    for alt in m.group(1).split(",") if m else ():
        d = re.fullmatch(r"\s*([a-z0-9][a-z0-9+.\-]*)(?::\w+)?\s*\(=\s*([^)\s]+)\)\s*", alt)
        if d:
            deps.append((d.group(1), d.group(2)))
    return deps


def _index(store: Store, package: str, version: str, keep: tuple[str, ...]) -> Path:
    import hashlib

    suffix = hashlib.sha256("\0".join(keep).encode()).hexdigest()[:12] if keep else "all"
    return store.root / ".raisin" / "test-inputs" / sanitize_name(f"{package}={version}={suffix}")


def _trim(tree: Path, keep: tuple[str, ...]) -> None:
    """Remove everything no ``keep`` glob matches (nor lies under or above a match)."""
    kept: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            if any(fnmatch.fnmatchcase(rel, g) for g in keep):
                kept.add(rel)
    keep_dirs = {str(Path(k).parent) for k in kept}
    for k in list(keep_dirs):
        parts = Path(k).parts
        keep_dirs.update(str(Path(*parts[:i])) for i in range(1, len(parts)))

    def keep_path(rel: str) -> bool:
        return rel in kept or rel in keep_dirs or any(rel.startswith(k + "/") for k in kept)

    for dirpath, dirnames, filenames in os.walk(tree, topdown=True):
        for name in list(dirnames):
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            if not keep_path(rel):
                shutil.rmtree(os.path.join(dirpath, name))
                dirnames.remove(name)
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            if not keep_path(rel):
                os.unlink(os.path.join(dirpath, name))


def resolve(spec: TestInputSpec, store: Store, *, offline: bool = False) -> ResolvedInput:
    """The input as a valid store path: from the store if pinned and present, else fetched."""
    package = spec.debian_binary
    name = sanitize_name(f"{package}-{spec.version}-deb") if spec.version else None
    if spec.hash is not None and name is not None:
        sp = StorePath.make("source", Hash.parse(spec.hash), name)
        if store.is_valid(sp):
            return ResolvedInput(
                package,
                spec.version or "",
                sp,
                Hash.parse(spec.hash),
                (f"{package}={spec.version}",),
                True,
            )
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise InputUnavailable(f"needs apt-get and dpkg-deb to fetch the Debian package {package}")
    version = spec.version or candidate(package)
    name = sanitize_name(f"{package}-{version}-deb")
    index = _index(store, package, version, spec.keep)
    if index.exists():
        lines = index.read_text().split("\n")
        try:
            sp = StorePath.parse(lines[0])
            known = Hash.parse(lines[1])
        except (ValueError, IndexError):
            sp = None  # type: ignore[assignment]
        if sp is not None and store.is_valid(sp):
            if spec.hash is not None and known != Hash.parse(spec.hash):
                raise HashMismatch(
                    f"Debian package {package} {version} unpacked to {known.sri}, not the pinned {spec.hash}"
                )
            return ResolvedInput(
                package,
                version,
                sp,
                known,
                tuple(lines[2:]),
                spec.hash is not None and spec.version is not None,
            )
    if offline:
        raise InputError(
            f"needs the network to download the Debian package {package} {version}",
            hint="run without --offline",
        )
    with store.tmpdir("test-input") as tmp:
        debs = tmp / "debs"
        debs.mkdir()
        wanted = [(package, version)]
        fetched: list[str] = []
        while wanted:
            pkg, ver = wanted.pop(0)
            if f"{pkg}={ver}" in fetched:
                continue
            p = _run(["apt-get", *_apt_opts(), "download", f"{pkg}={ver}"], cwd=debs)
            if p.returncode != 0:
                raise InputError(f"apt-get download {pkg}={ver} failed: {_last(p.stderr)}")
            fetched.append(f"{pkg}={ver}")
            wanted.extend(_exact_depends(pkg, ver))
        tree = tmp / "tree"
        tree.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            p = _run(["dpkg-deb", "-x", str(deb), str(tree)])
            if p.returncode != 0:
                raise InputError(f"dpkg-deb -x {deb.name} failed: {_last(p.stderr)}")
        if spec.keep:
            _trim(tree, spec.keep)
        if spec.hash is not None:
            found = hash_path(tree)[0]
            if found != Hash.parse(spec.hash):
                raise HashMismatch(
                    f"Debian package {package} {version} unpacked to {found.sri}, not the pinned {spec.hash}"
                )
        info = store.add_tree(tree, name)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp_index = index.with_name(index.name + f".tmp{os.getpid()}")
    tmp_index.write_text("\n".join([info.path.base, info.nar_hash.sri, *fetched]))
    os.replace(tmp_index, index)
    return ResolvedInput(
        package,
        version,
        info.path,
        info.nar_hash,
        tuple(fetched),
        spec.hash is not None and spec.version is not None,
    )
