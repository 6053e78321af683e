"""The real stack: SeaBIOS and Xen from Debian 12 source packages (slow: minutes).

Run with ``pytest -m slow``. They need the network to the Debian archive
(a package registry) and the build dependencies, which the test installs
with ``raisin install-builddep -y`` when running as root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import install_builddeps, raisin

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "xen-debian"


@pytest.fixture(scope="module")
def xen_debian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("apt-get") is None:
        pytest.skip("needs a Debian/Ubuntu host (apt-get)")
    proj = tmp_path_factory.mktemp("xen-debian") / "proj"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("store", "profiles"))
    install_builddeps(proj)
    return proj


def _out(proj: Path, name: str) -> Path:
    import json

    r = raisin("show", "--json", cwd=proj)
    assert r.code == 0, r
    return Path(json.loads(r.out)["components"][name]["out"])


def test_committed_lock_is_current(xen_debian: Path) -> None:
    r = raisin("lock", "--check", cwd=xen_debian, timeout=600)
    assert r.code == 0, r


def test_seabios_builds_and_is_reproducible(xen_debian: Path) -> None:
    r = raisin("realize", "seabios", cwd=xen_debian, timeout=1800)
    assert r.code == 0, r
    bios = _out(xen_debian, "seabios") / "usr/share/seabios/bios.bin"
    assert bios.stat().st_size == 256 * 1024
    assert b"1.16.2-raisin" in bios.read_bytes()
    r = raisin("realize", "--check", "seabios", cwd=xen_debian, timeout=1800)
    assert r.code == 0, r


def test_xen_builds_with_seabios_wired_in(xen_debian: Path) -> None:
    r = raisin("realize", cwd=xen_debian, timeout=3600)
    assert r.code == 0, r
    out = _out(xen_debian, "xen")
    assert list((out / "boot").glob("xen*.gz")), sorted(p.name for p in (out / "boot").iterdir())
    assert (out / "usr/sbin/xl").exists()
    assert (out / "usr/sbin/xenstored").exists()
    # With a system SeaBIOS, libxl loads the BIOS at run time from the path
    # configure was given: the seabios output, as builds see the store.
    seabios = _out(xen_debian, "seabios")
    libxl = next((out / "usr/lib").glob("libxenlight.so.*"))
    assert f"/raisin/store/{seabios.name}/usr/share/seabios/bios.bin".encode() in libxl.read_bytes()
    assert (out / "usr/lib/xen/boot/hvmloader").exists()


def test_xen_rebuild_hypervisor_bit_identical(xen_debian: Path) -> None:
    """--check rebuilds xen (hypervisor and tools): every file bit-identical."""
    r = raisin("realize", "--check", "xen", cwd=xen_debian, timeout=3600)
    differing = [ln.strip() for ln in r.err.splitlines() if ln.startswith("  ") and "/" in ln]
    assert r.code == 0, (differing, r)


def _binary_version(package: str) -> str:
    import subprocess

    p = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package],
        capture_output=True,
        text=True,
        check=False,
    )
    versions = [
        ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines() if ln.startswith("Version:")
    ]
    if not versions:
        pytest.skip(f"the host's apt has no {package} package")
    return versions[0]


def test_debian_sources_fetched_in_parallel_into_a_fresh_store(tmp_path: Path) -> None:
    """Components with Debian sources fetch at once from an empty store: they
    share one private apt state, and its index update must not race (it did:
    "apt-get update failed: E: Failed to stat .../lists/partial/...")."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None:
        pytest.skip("needs a Debian/Ubuntu host (apt-get, dpkg-source)")
    names = ("hello", "dash", "sed")  # small source packages whose binary has the source's version
    parts = []
    for n in names:
        parts.append(
            f'[components.{n}]\nsource = {{ debian = "{n}", version = "{_binary_version(n)}" }}\n'
            f'build = ["mkdir -p $out && ls > $out/files"]\n'
        )
    (tmp_path / "raisin.toml").write_text("\n".join(parts))
    r = raisin("lock", cwd=tmp_path, timeout=900)
    assert r.code == 0, r
    shutil.rmtree(tmp_path / "store")
    r = raisin("realize", "-j", str(len(names)), cwd=tmp_path, timeout=900)
    assert r.code == 0, r
    for n in names:
        assert "debian" in _out(tmp_path, n).joinpath("files").read_text().split(), n
