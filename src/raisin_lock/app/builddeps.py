"""Build dependencies: the host packages a component needs to build, and installing them.

Builds use the host toolchain and host libraries (read-only inside the
sandbox), so a component declares the distro packages it needs: its recipe
lists them per distro *family* (``debian``, ``fedora``, ``opensuse``) and
the manifest may add more (``build-deps = [...]``). This module answers
three questions:

- which family is this host (``/etc/os-release``: ``ID`` then ``ID_LIKE``;
  ``RAISIN_OS_RELEASE=path`` reads another file, for tests and for asking
  "what would a Fedora host need?");
- which of a set of packages are missing (``dpkg-query`` on Debian,
  ``rpm -q`` on Fedora and openSUSE, counting packages an installed one
  ``Provides``: Debian 12's ``iasl`` is a name ``acpica-tools`` provides);
- which command installs them (``apt-get`` / ``dnf`` / ``zypper``, exact
  versions with ``--from-lock``).

``realize`` calls :func:`require_installed` before building so a missing
header shows up as one clear message instead of a configure failure deep in
a build log. Package-manager subprocesses live here and nowhere else.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.errors import InputError, LockError, ManifestError, RaisinError, unknown_component
from raisin_lock.lock import graph, lockfile
from raisin_lock.manifest import recipe as recipes

if TYPE_CHECKING:
    from raisin_lock.app.project import Project
    from raisin_lock.lock.lockfile import Lock
    from raisin_lock.manifest.model import Manifest

FAMILIES = ("debian", "fedora", "opensuse")
OS_RELEASE_ENV = "RAISIN_OS_RELEASE"
SKIP_CHECK_ENV = "RAISIN_SKIP_BUILDDEP_CHECK"
_OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
# ID / ID_LIKE words -> family. Checked for ID first, then each ID_LIKE word in order.
_FAMILY_OF_ID = {
    "debian": "debian",
    "ubuntu": "debian",
    "fedora": "fedora",
    "rhel": "fedora",
    "centos": "fedora",
    "rocky": "fedora",
    "almalinux": "fedora",
    "opensuse": "opensuse",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
    "suse": "opensuse",
    "sles": "opensuse",
    "sled": "opensuse",
}
_MANAGER = {"debian": "apt-get", "fedora": "dnf", "opensuse": "zypper"}
_QUERY_TOOL = {"debian": "dpkg-query", "fedora": "rpm", "opensuse": "rpm"}
NOT_INSTALLED = "not installed"  # what the lock records for a package absent at lock time


class MissingBuildDeps(RaisinError):
    """``realize`` stopped before building: build-dependency packages are not installed."""

    def __init__(self, message: str, *, missing: list[str], command: list[str], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.missing = missing
        self.command = command


# ------------------------------------------------------------------ the host


@dataclass(frozen=True)
class Distro:
    """The host's distribution as far as packages go."""

    id: str
    family: str
    pretty: str
    os_release: str

    @property
    def manager(self) -> str:
        return _MANAGER[self.family]

    @property
    def query_tool(self) -> str:
        return _QUERY_TOOL[self.family]

    def can_query(self) -> bool:
        return shutil.which(self.query_tool) is not None


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values optionally quoted with shell escapes."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        fields[key.strip()] = parts[0] if parts else ""
    return fields


def family_of(fields: Mapping[str, str]) -> str | None:
    words = [fields.get("ID", "").lower(), *fields.get("ID_LIKE", "").lower().split()]
    for word in words:
        if word in _FAMILY_OF_ID:
            return _FAMILY_OF_ID[word]
    for word in words:  # e.g. "opensuse-microos", "suse-something"
        if word.startswith(("opensuse", "sles", "suse")):
            return "opensuse"
    return None


def os_release_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    override = env.get(OS_RELEASE_ENV)
    if override:
        return Path(override)
    for candidate in _OS_RELEASE_FILES:
        if Path(candidate).exists():
            return Path(candidate)
    return Path(_OS_RELEASE_FILES[0])


def detect(environ: Mapping[str, str] | None = None) -> tuple[Distro | None, str]:
    """(the host's distro or None, a line saying why when None)."""
    path = os_release_path(environ)
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        if env.get(OS_RELEASE_ENV):
            raise InputError(
                f"cannot read {path}: {exc.strerror or exc}", key=OS_RELEASE_ENV
            ) from None
        return None, f"cannot read {path} ({exc.strerror or exc})"
    fields = parse_os_release(text)
    family = family_of(fields)
    ident = fields.get("ID", "") or "(no ID)"
    if family is None:
        like = fields.get("ID_LIKE")
        return None, f"{path}: unknown distribution ID={ident}" + (
            f" ID_LIKE={like!r}" if like else ""
        )
    pretty = (
        fields.get("PRETTY_NAME")
        or f"{fields.get('NAME', ident)} {fields.get('VERSION_ID', '')}".strip()
    )
    return Distro(id=ident, family=family, pretty=pretty, os_release=str(path)), ""


# ------------------------------------------------------------------ what is installed


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RaisinError(f"cannot run {cmd[0]}: {exc}") from exc


def _provided_names(text: str) -> list[str]:
    """Names in a Provides field: ``a (= 1.0), b:any`` -> [a, b]."""
    names = []
    for item in text.split(","):
        item = item.strip()
        if item:
            names.append(item.split()[0].split("(")[0].split(":")[0])
    return names


def _dpkg_installed(names: list[str]) -> dict[str, str]:
    """Installed version of each name that is installed (directly or as a Provides)."""
    fmt = "${Package}\t${Architecture}\t${Version}\t${db:Status-Status}\n"
    out = _run(["dpkg-query", "-W", "-f", fmt, *names])
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    found: dict[str, str] = {}
    for name in names:
        pkg, _, arch = name.partition(":")
        for row in rows:
            if (
                len(row) == 4
                and row[3] == "installed"
                and row[0] == pkg
                and (not arch or row[1] in (arch, "all"))
            ):
                found[name] = row[2]
                break
    rest = [n for n in names if n not in found and ":" not in n]
    if rest:
        every = _run(
            ["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Version}\t${Provides}\n"]
        )
        providers: dict[str, str] = {}
        for line in every.stdout.splitlines():
            row = line.split("\t")
            if len(row) == 4 and row[0] == "installed" and row[3]:
                for provided in _provided_names(row[3]):
                    providers.setdefault(provided, f"provided by {row[1]} {row[2]}")
        for name in rest:
            if name in providers:
                found[name] = providers[name]
    return found


def _rpm_installed(names: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        out = _run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\n", name])
        if out.returncode == 0 and out.stdout.strip():
            found[name] = out.stdout.split()[0]
            continue
        out = _run(["rpm", "-q", "--whatprovides", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n", name])
        if out.returncode == 0 and out.stdout.strip():
            found[name] = "provided by " + out.stdout.splitlines()[0].strip()
    return found


def installed_versions(distro: Distro, names: list[str]) -> dict[str, str]:
    """name -> installed version (or "provided by PKG VERSION"), for the installed ones only."""
    if not names:
        return {}
    if distro.query_tool == "dpkg-query":
        return _dpkg_installed(names)
    return _rpm_installed(names)


# ------------------------------------------------------------------ what is needed


@dataclass
class Need:
    """One package and the components that need it; ``version`` set only with ``--from-lock``."""

    package: str
    components: list[str] = field(default_factory=list)
    version: str | None = None
    installed: str | None = None

    def spec(self, family: str) -> str:
        if self.version is None:
            return self.package
        return (
            f"{self.package}={self.version}"
            if family == "debian"
            else f"{self.package}-{self.version}"
        )


def _select(names: list[str], known: Mapping[str, tuple[str, ...]], file: str) -> list[str]:
    for n in names:
        if n not in known:
            raise unknown_component(n, known, file=file, key="NAME")
    if not names:
        return list(known)
    wanted = set(graph.closure(known, names))
    return [n for n in known if n in wanted]


def packages_from_manifest(
    m: Manifest, names: list[str], family: str
) -> tuple[list[str], dict[str, Need]]:
    """(components covered, package -> Need): each recipe's list for ``family`` plus ``build-deps``."""

    chosen = _select(names, {n: s.deps for n, s in m.components.items()}, m.display)
    needs: dict[str, Need] = {}
    for name in chosen:
        spec = m.components[name]
        packages: list[str] = []
        if spec.recipe is not None:
            try:
                packages += recipes.load(spec.recipe).build_deps.get(family, ())
            except recipes.RecipeError as exc:
                raise m.error(f"components.{name}.recipe", str(exc)) from None
        packages += spec.build_deps
        for p in packages:
            needs.setdefault(p, Need(p)).components.append(name)
    return chosen, needs


def packages_from_lock(
    lk: Lock, names: list[str], file: str, *, pinned: bool
) -> tuple[list[str], dict[str, Need]]:
    """(components covered, package -> Need) as the lock recorded them; versions if ``pinned``."""
    chosen = _select(names, {n: c.deps for n, c in lk.components.items()}, file)
    needs: dict[str, Need] = {}
    for name in chosen:
        for pkg, version in lk.components[name].build_deps:
            need = needs.setdefault(pkg, Need(pkg))
            need.components.append(name)
            if pinned and version != NOT_INSTALLED:
                need.version = version
    return chosen, needs


def install_command(distro: Distro, needs: list[Need], *, pinned: bool = False) -> list[str]:
    specs = [n.spec(distro.family) for n in needs]
    if distro.family == "debian":
        cmd = ["apt-get", "install", "-y", *(["--allow-downgrades"] if pinned else []), *specs]
    elif distro.family == "fedora":
        cmd = ["dnf", "install", "-y", *specs]
    else:
        cmd = ["zypper", "--non-interactive", "install", *specs]
    if os.geteuid() != 0 and shutil.which("sudo"):
        cmd.insert(0, "sudo")
    return cmd


# ------------------------------------------------------------------ install-builddep


@dataclass
class Plan:
    """What ``install-builddep`` found: the host, the packages, which are missing, the command."""

    distro: Distro
    components: list[str]
    needs: dict[str, Need]
    missing: list[Need]
    command: list[str]
    queried: bool
    source: str  # "raisin.toml" or the lock's name
    notes: list[str] = field(default_factory=list)


def plan(
    project: Project,
    names: list[str],
    *,
    from_lock: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Collect the build dependencies of ``names`` (and what they depend on; all when empty)."""

    distro, why = detect(environ)
    if distro is None:
        raise RaisinError(
            f"cannot tell which package manager to use: {why}",
            hint=f"supported: Debian/Ubuntu (apt-get), Fedora/RHEL/CentOS (dnf), openSUSE/SLES (zypper); "
            f"{OS_RELEASE_ENV}=FILE reads another os-release file",
        )
    notes: list[str] = []
    if from_lock or not project.manifest_path.exists():
        if not project.lock_path.exists():
            if from_lock:
                raise LockError(
                    "no such file (--from-lock needs a lock: run `raisin lock`)",
                    file=project.lock_display,
                )
            raise ManifestError(
                "no such file (and no lock to read build dependencies from)",
                file=_shown(project.manifest_path),
            )
        lk = lockfile.read(project.lock_path, shown=project.lock_display)
        chosen, needs = packages_from_lock(lk, names, project.lock_display, pinned=from_lock)
        source = project.lock_display
        if from_lock:
            for need in needs.values():
                if need.version is None:
                    notes.append(
                        f"{need.package}: the lock records it as not installed when locked; asking for any version"
                    )
    else:
        m = project.load_manifest()
        chosen, needs = packages_from_manifest(m, names, distro.family)
        source = m.display
    queried = distro.can_query()
    if queried:
        have = installed_versions(distro, list(needs))
        for need in needs.values():
            need.installed = have.get(need.package)
        missing = [
            n
            for n in needs.values()
            if n.installed is None or (n.version is not None and n.installed != n.version)
        ]
    else:
        notes.append(
            f"{distro.query_tool} not found: cannot tell what is installed; listing every package"
        )
        missing = list(needs.values())
    command = install_command(distro, missing, pinned=from_lock) if missing else []
    return Plan(distro, chosen, needs, missing, command, queried, source, notes)


def install(p: Plan) -> list[Need]:
    """Run the package manager (its output goes to the terminal); return what is still missing."""
    if not p.command:
        return []
    if p.command[0] != "sudo" and os.geteuid() != 0:
        raise RaisinError(
            f"installing packages needs root and sudo is not available; as root run: {shlex.join(p.command)}"
        )
    try:
        rc = subprocess.run(p.command, check=False).returncode
    except OSError as exc:
        raise RaisinError(f"cannot run {p.command[0]}: {exc.strerror or exc}") from exc
    if rc != 0:
        raise RaisinError(f"{shlex.join(p.command)} exited with code {rc}; nothing more was done")
    if not p.queried:
        return []
    have = installed_versions(p.distro, [n.package for n in p.missing])
    return [n for n in p.missing if have.get(n.package) is None]


# ------------------------------------------------------------------ the check before realize


def require_installed(
    lk: Lock,
    names: list[str],
    *,
    warn: Callable[[str], None],
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`MissingBuildDeps` when a package ``names`` need (per the lock) is missing.

    ``names``: the components about to be built (not the already valid ones).
    ``project_dir``: where ``raisin install-builddep`` should run (None: don't suggest it).
    An unknown distribution (or no package database tool) skips the check with a warning.
    """
    env = os.environ if environ is None else environ
    needs: dict[str, Need] = {}
    for name in names:
        for pkg, _version in lk.components[name].build_deps:
            needs.setdefault(pkg, Need(pkg)).components.append(name)
    if not needs:
        return
    if env.get(SKIP_CHECK_ENV):
        warn(f"not checking build dependencies ({SKIP_CHECK_ENV} is set)")
        return
    distro, why = detect(env)
    if distro is None:
        warn(f"not checking build dependencies: {why}")
        return
    if not distro.can_query():
        warn(f"not checking build dependencies: {distro.query_tool} not found")
        return
    have = installed_versions(distro, list(needs))
    missing = [n for n in needs.values() if n.package not in have]
    if not missing:
        return
    command = install_command(distro, missing)
    who = sorted({c for n in missing for c in n.components}, key=names.index)
    listing = ", ".join(f"{n.package} ({', '.join(n.components)})" for n in missing)
    hint = f"install them with: {shlex.join(command)}"
    if project_dir is not None:
        raisin_cmd = ["raisin"]
        shown = _shown(project_dir)
        if shown != ".":
            raisin_cmd += ["-C", shown]
        hint = f"install them with `{shlex.join([*raisin_cmd, 'install-builddep', *who])}` (or: {shlex.join(command)})"
    raise MissingBuildDeps(
        f"missing build dependencies on this host ({distro.pretty}): {listing}",
        missing=[n.package for n in missing],
        command=command,
        hint=hint,
    )


def _shown(path: Path) -> str:
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return str(path)
    return str(rel) or "."
