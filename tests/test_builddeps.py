"""install-builddep and the build-dependency check before realize, on the real package databases.

This machine is Debian 12: apt and dpkg answer for real. Fedora and openSUSE
are read from fixture os-release files (RAISIN_OS_RELEASE); without rpm on the
host every package counts as missing, so the whole family list is printed.
Nothing here installs a package: every install path is a dry run, a declined
prompt, or a run where nothing is missing.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RAISIN, raisin

from raisin_lock.manifest import recipe as recipes

FIXTURES = Path(__file__).parent / "fixtures" / "os-release"
NO_SUCH = "raisin-no-such-package"
STACK = ["seabios", "ovmf", "xen", "qemu-xen", "qemu-traditional", "grub", "libvirt", "linux"]
pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian host")


def _stack_recipes() -> list[str]:
    """The Xen-stack recipes this raisin has (the lead adds them one by one)."""
    have = recipes.available()
    return [r for r in STACK if r in have] or ["autotools"]


def _env(os_release: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAISIN_OS_RELEASE", "RAISIN_SKIP_BUILDDEP_CHECK")
    }
    if os_release:
        env["RAISIN_OS_RELEASE"] = str(FIXTURES / os_release)
    env.update(extra)
    return env


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: int = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """The real CLI with stdin closed (never a terminal, so a prompt can never hang a test)."""
    return subprocess.run(
        [RAISIN, *args],
        cwd=cwd,
        env=env or _env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _manifest(tmp: Path, components: dict[str, str]) -> Path:
    (tmp / "src").mkdir(exist_ok=True)
    (tmp / "src" / "README").write_text("x\n")
    (tmp / "raisin.toml").write_text(
        "".join(f"[components.{n}]\n{body}\n" for n, body in components.items())
    )
    return tmp


def _stack_manifest(tmp: Path, extra: str = "") -> Path:
    body = {r: f'source = {{ path = "src" }}\nrecipe = "{r}"\n' for r in _stack_recipes()}
    first = next(iter(body))
    body[first] += extra
    return _manifest(tmp, body)


def _dpkg_installed(names: list[str]) -> set[str]:
    """Oracle: names dpkg says are installed, or that an installed package Provides."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Provides}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    have: set[str] = set()
    for line in out.splitlines():
        status, pkg, provides = (line.split("\t") + ["", ""])[:3]
        if status == "installed":
            have.add(pkg)
            have.update(
                p.strip().split(" ")[0].split(":")[0] for p in provides.split(",") if p.strip()
            )
    return {n for n in names if n in have}


def _listed(out: str) -> list[str]:
    """Package specs in the "missing" listing of install-builddep."""
    return [line.split()[0] for line in out.splitlines() if line.startswith("  ")]


def _command(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("would run: "))
    words = line[len("would run: ") :].split()
    return words[1:] if words[0] == "sudo" else words


# ------------------------------------------------------------------ Debian (this host)


def test_dry_run_on_debian_lists_exactly_the_missing_apt_packages(tmp_path: Path) -> None:
    proj = _stack_manifest(tmp_path, extra=f'build-deps = ["{NO_SUCH}", "build-essential"]\n')
    wanted: list[str] = []
    for r in _stack_recipes():
        wanted += recipes.load(r).build_deps["debian"]
    wanted = list(dict.fromkeys([*wanted, NO_SUCH, "build-essential"]))
    expected_missing = [p for p in wanted if p not in _dpkg_installed(wanted)]

    r = _run("install-builddep", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert "debian family, apt-get" in r.stderr
    assert sorted(_listed(r.stdout)) == sorted(expected_missing)
    cmd = _command(r.stdout)
    assert cmd[:3] == ["apt-get", "install", "-y"]
    assert sorted(cmd[3:]) == sorted(expected_missing)
    assert "build-essential" not in cmd  # installed here
    # the component that needs it is named next to each package
    assert re.search(rf"^  {NO_SUCH}\s+{_stack_recipes()[0]}$", r.stdout, re.MULTILINE)


def test_virtual_package_provided_by_an_installed_one_counts_as_installed(tmp_path: Path) -> None:
    # Debian 12 has no package "iasl": acpica-tools Provides it. apt-get installs
    # it by that name, so once acpica-tools is in, iasl is not missing.
    if "acpica-tools" not in _dpkg_installed(["acpica-tools"]):
        pytest.skip("acpica-tools is not installed here")
    proj = _manifest(
        tmp_path, {"a": 'source = { path = "src" }\nbuild = ["true"]\nbuild-deps = ["iasl"]\n'}
    )
    r = _run("install-builddep", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert "all build dependencies are installed" in r.stderr


def test_names_select_components_and_what_they_depend_on(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {
            "lib": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}-lib"]\n',
            "app": f'source = {{ path = "src" }}\nbuild = ["true"]\ndeps = ["lib"]\nbuild-deps = ["{NO_SUCH}-app"]\n',
            "other": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}-other"]\n',
        },
    )
    r = _run("install-builddep", "app", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert sorted(_listed(r.stdout)) == [f"{NO_SUCH}-app", f"{NO_SUCH}-lib"]


def test_unknown_component_is_bad_input(tmp_path: Path) -> None:
    proj = _manifest(tmp_path, {"a": 'source = { path = "src" }\nbuild = ["true"]\n'})
    r = _run("install-builddep", "nosuch", "--dry-run", cwd=proj)
    assert r.returncode == 2
    assert (
        "raisin.toml" in r.stderr
        and "unknown component 'nosuch'" in r.stderr
        and "known: a" in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_unknown_recipe_names_the_key(tmp_path: Path) -> None:
    proj = _manifest(tmp_path, {"a": 'source = { path = "src" }\nrecipe = "no-such-recipe"\n'})
    r = _run("install-builddep", "--dry-run", cwd=proj)
    assert r.returncode == 2
    assert "components.a.recipe" in r.stderr and "unknown recipe" in r.stderr


# ------------------------------------------------------------------ other distributions (fixtures)


@pytest.mark.parametrize(
    ("fixture", "family", "command"),
    [
        ("fedora", "fedora", ["dnf", "install", "-y"]),
        ("centos-stream", "fedora", ["dnf", "install", "-y"]),
        ("opensuse-leap", "opensuse", ["zypper", "--non-interactive", "install"]),
    ],
)
def test_rpm_families_from_fixture_os_release(
    tmp_path: Path, fixture: str, family: str, command: list[str]
) -> None:
    proj = _stack_manifest(tmp_path, extra=f'build-deps = ["{NO_SUCH}"]\n')
    wanted: list[str] = []
    for r in _stack_recipes():
        wanted += recipes.load(r).build_deps[family]
    wanted = list(dict.fromkeys([*wanted, NO_SUCH]))

    r = _run("install-builddep", "--dry-run", cwd=proj, env=_env(fixture))
    assert r.returncode == 0, r
    assert f"{family} family, {command[0]}" in r.stderr
    cmd = _command(r.stdout)
    assert cmd[: len(command)] == command
    if shutil.which("rpm") is None:
        assert "rpm not found" in r.stderr
        assert sorted(cmd[len(command) :]) == sorted(wanted)  # every package, each once
    assert "build-essential" not in cmd and "libc6-dev-i386" not in cmd  # Debian names stay out


def test_ubuntu_is_debian_family(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {"a": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}"]\n'},
    )
    r = _run("install-builddep", "--dry-run", cwd=proj, env=_env("ubuntu"))
    assert r.returncode == 0, r
    assert "Ubuntu 24.04.1 LTS (debian family, apt-get)" in r.stderr
    assert _command(r.stdout) == ["apt-get", "install", "-y", NO_SUCH]


def test_unknown_distribution_says_so(tmp_path: Path) -> None:
    proj = _manifest(tmp_path, {"a": 'source = { path = "src" }\nbuild = ["true"]\n'})
    r = _run("install-builddep", "--dry-run", cwd=proj, env=_env("arch"))
    assert r.returncode == 1
    assert "unknown distribution ID=arch" in r.stderr and "RAISIN_OS_RELEASE" in r.stderr
    missing = _run(
        "install-builddep", cwd=proj, env=_env(None, RAISIN_OS_RELEASE=str(tmp_path / "nope"))
    )
    assert (
        missing.returncode == 2
        and "RAISIN_OS_RELEASE" in missing.stderr
        and "nope" in missing.stderr
    )


# ------------------------------------------------------------------ installing (never for real)


def test_prompt_without_a_terminal_installs_nothing(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {"a": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}"]\n'},
    )
    r = _run("install-builddep", cwd=proj)  # stdin closed: a prompt that waited would hang here
    assert r.returncode == 1
    assert NO_SUCH in r.stdout
    assert "not installing: no terminal to ask on" in r.stderr and "-y" in r.stderr
    assert "running:" not in r.stderr and "Reading package lists" not in r.stdout + r.stderr


def test_prompt_answered_no_on_a_terminal_installs_nothing(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {"a": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}"]\n'},
    )
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(
            [RAISIN, "install-builddep"],
            cwd=proj,
            env=_env(),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        assert p.stderr is not None
        deadline = time.monotonic() + 60
        err = b""
        while b"[y/N]" not in err and time.monotonic() < deadline and p.poll() is None:
            ready, _, _ = select.select([p.stderr], [], [], 1)
            if ready:
                err += os.read(p.stderr.fileno(), 4096)
        assert b"[y/N]" in err, err
        os.write(master, b"n\n")
        _out, rest = p.communicate(timeout=60)
    finally:
        os.close(master)
    assert p.returncode == 1
    assert f"run `apt-get install -y {NO_SUCH}`? [y/N]" in err.decode()
    assert b"not installing" in rest and b"running:" not in rest


def test_yes_with_nothing_missing_runs_no_package_manager(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {"a": 'source = { path = "src" }\nbuild = ["true"]\nbuild-deps = ["build-essential"]\n'},
    )
    r = _run("install-builddep", "-y", cwd=proj)
    assert r.returncode == 0, r
    assert "all build dependencies are installed" in r.stderr and "running:" not in r.stderr


# ------------------------------------------------------------------ --from-lock


def test_from_lock_asks_for_the_locked_versions(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {
            "a": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["build-essential", "{NO_SUCH}"]\n'
        },
    )
    assert raisin("lock", cwd=proj).code == 0
    lock = (proj / "raisin.lock").read_text()
    version = re.search(r'build-essential = "([^"]+)"', lock)
    assert version and version.group(1) != "not installed"

    r = _run("install-builddep", "--from-lock", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert _listed(r.stdout) == [NO_SUCH]  # build-essential is installed at the locked version
    assert f"{NO_SUCH}: the lock records it as not installed" in r.stderr

    # a lock made elsewhere, with another version: ask for exactly that one
    (proj / "raisin.lock").write_text(lock.replace(version.group(1), "12.9+raisin1"))
    r = _run("install-builddep", "--from-lock", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert _command(r.stdout) == [
        "apt-get",
        "install",
        "-y",
        "--allow-downgrades",
        "build-essential=12.9+raisin1",
        NO_SUCH,
    ]
    assert f"installed: {version.group(1)}" in r.stdout
    r = _run("install-builddep", "--from-lock", "--dry-run", cwd=proj, env=_env("fedora"))
    assert "build-essential-12.9+raisin1" in _command(r.stdout)


def test_from_lock_without_a_lock_is_bad_input(tmp_path: Path) -> None:
    proj = _manifest(tmp_path, {"a": 'source = { path = "src" }\nbuild = ["true"]\n'})
    r = _run("install-builddep", "--from-lock", "--dry-run", cwd=proj)
    assert r.returncode == 2 and "raisin.lock" in r.stderr and "raisin lock" in r.stderr


def test_lock_alone_is_enough(tmp_path: Path) -> None:
    proj = _manifest(
        tmp_path,
        {"a": f'source = {{ path = "src" }}\nbuild = ["true"]\nbuild-deps = ["{NO_SUCH}"]\n'},
    )
    assert raisin("lock", cwd=proj).code == 0
    (proj / "raisin.toml").unlink()
    r = _run("install-builddep", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    assert "from raisin.lock" in r.stderr and _listed(r.stdout) == [NO_SUCH]


# ------------------------------------------------------------------ realize checks first


def _two(tmp_path: Path) -> Path:
    return _manifest(
        tmp_path,
        {
            "base": (
                'source = { path = "src" }\nbuild = ["mkdir -p $out && echo base > $out/base"]\n'
                f'build-deps = ["{NO_SUCH}"]\n'
            ),
            "top": 'source = { path = "src" }\ndeps = ["base"]\nbuild = ["mkdir -p $out && cp $base/base $out/top"]\n',
        },
    )


def test_realize_stops_on_a_missing_build_dependency(tmp_path: Path) -> None:
    proj = _two(tmp_path)
    r = _run("realize", cwd=proj)
    assert r.returncode == 1, r
    assert (
        f"missing build dependencies on this host (Debian GNU/Linux 12 (bookworm)): {NO_SUCH} (base)"
        in r.stderr
    )
    assert "raisin install-builddep base" in r.stderr
    assert f"apt-get install -y {NO_SUCH}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((proj / "store").glob("*-base-*")) and not list(
        (proj / "store").glob("*-top-*")
    )
    # from elsewhere, the suggested command carries -C
    r = _run("-C", proj.name, "realize", cwd=proj.parent)
    assert r.returncode == 1 and f"raisin -C {proj.name} install-builddep base" in r.stderr


def test_realize_checks_only_what_it_will_build(tmp_path: Path) -> None:
    proj = _two(tmp_path)
    first = _run("realize", "base", cwd=proj, env=_env(None, RAISIN_SKIP_BUILDDEP_CHECK="1"))
    assert first.returncode == 0, first
    assert "not checking build dependencies (RAISIN_SKIP_BUILDDEP_CHECK is set)" in first.stderr
    # base is valid now: building top needs none of base's packages
    r = _run("realize", cwd=proj)
    assert r.returncode == 0, r
    assert "missing build dependencies" not in r.stderr
    assert (next((proj / "store").glob("*-top-*")) / "top").read_text() == "base\n"


def test_realize_on_an_unknown_distribution_warns_and_builds(tmp_path: Path) -> None:
    proj = _two(tmp_path)
    r = _run("realize", cwd=proj, env=_env("arch"))
    assert r.returncode == 0, r
    assert "warning: not checking build dependencies" in r.stderr and "ID=arch" in r.stderr


# ------------------------------------------------------------------ the real lists (slow)


@pytest.mark.slow
def test_every_debian_package_of_every_recipe_exists_in_apt(tmp_path: Path) -> None:
    if shutil.which("apt-cache") is None:
        pytest.skip("needs apt")
    names = recipes.available()
    proj = _manifest(tmp_path, {r: f'source = {{ path = "src" }}\nrecipe = "{r}"\n' for r in names})
    r = _run("install-builddep", "--dry-run", cwd=proj)
    assert r.returncode == 0, r
    everything = sorted({p for n in names for p in recipes.load(n).build_deps["debian"]})
    bad = []
    for pkg in everything:
        show = subprocess.run(["apt-cache", "show", pkg], capture_output=True, text=True)
        if show.returncode == 0 and "Package:" in show.stdout:
            continue
        # a purely virtual name (e.g. iasl -> acpica-tools) installs when exactly one package provides it
        showpkg = subprocess.run(
            ["apt-cache", "showpkg", pkg], capture_output=True, text=True
        ).stdout
        tail = showpkg.split("Reverse Provides:", 1)[1] if "Reverse Provides:" in showpkg else ""
        providers = {line.split()[0] for line in tail.splitlines() if line.strip()}
        if len(providers) != 1:
            bad.append(pkg)
    assert not bad, f"not installable from apt on this host: {bad}"
    missing = _listed(r.stdout)
    if missing:
        sim = subprocess.run(
            ["apt-get", "install", "-s", "-y", *missing], capture_output=True, text=True
        )
        assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]
