"""The whole Xen stack from Debian 12 source packages (very slow: an hour or more on 2 cores).

``examples/xen-stack-debian``: SeaBIOS, OVMF, Xen, qemu-xen, PV-GRUB2,
libvirt (libxl driver) and a small kernel. Run with ``pytest -m stack``.
They need the network to the Debian archive (a package registry) and the
build dependencies, which the test installs with ``raisin install-builddep
-y`` when running as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import install_builddeps, raisin

pytestmark = [pytest.mark.stack, pytest.mark.timeout(6 * 3600)]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "xen-stack-debian"
COMPONENTS = ["seabios", "ovmf", "xen", "qemu-xen", "grub", "libvirt", "linux", "qemu-tcg"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("apt-get") is None:
        pytest.skip("needs a Debian/Ubuntu host (apt-get)")
    proj = tmp_path_factory.mktemp("xen-stack-debian") / "proj"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("store", "profiles"))
    install_builddeps(proj)
    return proj


@pytest.fixture(scope="module")
def outs(stack: Path) -> dict[str, Path]:
    """Realize the whole stack once; the output path of every component."""
    r = raisin("realize", cwd=stack, timeout=5 * 3600)
    assert r.code == 0, r
    r = raisin("show", "--json", cwd=stack)
    assert r.code == 0, r
    comps = json.loads(r.out)["components"]
    assert sorted(comps) == sorted(COMPONENTS)
    assert all(c["built"] for c in comps.values()), comps
    return {name: Path(c["out"]) for name, c in comps.items()}


def test_committed_lock_is_current(stack: Path) -> None:
    r = raisin("lock", "--check", cwd=stack, timeout=1800)
    assert r.code == 0, r


def test_xen_has_seabios_ovmf_and_qemu_xen_wired_in(outs: dict[str, Path]) -> None:
    xen = outs["xen"]
    libxl = next((xen / "usr/lib").glob("libxenlight.so.*")).read_bytes()
    # libxl loads the firmware at run time from the paths configure was
    # given: the seabios and ovmf outputs, as builds see the store.
    bios = f"/raisin/store/{outs['seabios'].name}/usr/share/seabios/bios.bin"
    ovmf = f"/raisin/store/{outs['ovmf'].name}/usr/share/ovmf/OVMF.fd"
    assert bios.encode() in libxl
    assert ovmf.encode() in libxl
    assert b"/usr/lib/xen/bin/qemu-system-i386" in libxl
    assert (xen / "usr/lib/xen/boot/hvmloader").is_file()
    assert (xen / "usr/sbin/xl").is_file()


def test_ovmf_is_where_libxl_looks_for_it(outs: dict[str, Path]) -> None:
    fd = outs["ovmf"] / "usr/share/ovmf/OVMF.fd"
    assert fd.stat().st_size in (1 << 20, 2 << 20, 4 << 20), fd.stat().st_size
    assert b"_FVH" in fd.read_bytes()  # a firmware volume header


def _run(argv: list[str], libs: list[Path]) -> str:
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(str(p) for p in libs))
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_qemu_xen_is_the_device_model(outs: dict[str, Path]) -> None:
    q = outs["qemu-xen"]
    dm = q / "usr/lib/xen/bin/qemu-system-i386"
    assert dm.is_file() and dm.stat().st_mode & 0o111
    # linked against the xen output's libraries (found through its .pc files); Xen is its only accelerator
    accels = _run([str(dm), "-accel", "help"], [outs["xen"] / "usr/lib"]).split()
    assert accels[-1:] == ["xen"], accels
    assert (q / "usr/share/qemu-xen/qemu/keymaps/en-us").is_file()  # wanted even with vnc=0
    assert (q / "usr/share/qemu-xen/qemu/linuxboot_dma.bin").is_file()  # for kernel= direct boot


def test_qemu_tcg_is_an_emulator_with_the_cr8_fix(stack: Path, outs: dict[str, Path]) -> None:
    """The emulator the OVMF guest test runs Xen in: TCG only, x86_64, patched."""
    q = outs["qemu-tcg"] / "usr/bin/qemu-system-x86_64"
    accels = _run([str(q), "-accel", "help"], []).split()
    assert accels[-1:] == ["tcg"], accels
    r = raisin("log", "qemu-tcg", cwd=stack)
    assert r.code == 0, r
    assert "raisin: CR8 write takes the BQL" in r.out, r.out[-2000:]


def test_pv_grub_images(outs: dict[str, Path]) -> None:
    boot = outs["grub"] / "usr/lib/xen/boot"
    for name in ("grub-x86_64-xen", "grub-i386-xen_pvh"):
        image = boot / name
        assert image.is_file(), sorted(p.name for p in boot.iterdir())
        assert image.stat().st_size > 100_000
        assert b"configfile /boot/grub/grub.cfg" in image.read_bytes()  # the memdisk's grub.cfg


def test_libvirt_with_the_libxl_driver(outs: dict[str, Path]) -> None:
    lv = outs["libvirt"]
    drivers = list(lv.glob("usr/lib/*/libvirt/connection-driver/libvirt_driver_libxl.so"))
    assert drivers, sorted(str(p.relative_to(lv)) for p in lv.glob("usr/lib/**/*.so"))
    libvirtd = _run(
        [str(lv / "usr/sbin/libvirtd"), "--version"],
        [drivers[0].parents[2], outs["xen"] / "usr/lib"],
    )
    assert libvirtd.split()[-1] == "9.0.0", libvirtd
    others = {p.name for p in lv.glob("usr/lib/*/libvirt/connection-driver/*.so")} - {
        "libvirt_driver_libxl.so"
    }
    assert not {n for n in others if any(h in n for h in ("qemu", "lxc", "vbox", "ch", "bhyve"))}, (
        others
    )


def test_a_small_xen_kernel(outs: dict[str, Path]) -> None:
    boot = outs["linux"] / "boot"
    kernels = list(boot.glob("vmlinuz-*"))
    assert len(kernels) == 1, sorted(p.name for p in boot.iterdir())
    krel = kernels[0].name.removeprefix("vmlinuz-")
    assert krel.startswith("6.1.")
    config = (boot / f"config-{krel}").read_text().splitlines()
    for opt in (
        "64BIT",
        "XEN",
        "XEN_PV",
        "XEN_DOM0",
        "XEN_PVH",
        "XEN_PVHVM_GUEST",
        "XEN_BLKDEV_FRONTEND",
        "XEN_BLKDEV_BACKEND",
        "XEN_NETDEV_FRONTEND",
        "XEN_NETDEV_BACKEND",
        "HVC_XEN",
        "VIRTIO_BLK",
        "EXT4_FS",
        "DEVTMPFS",
        "BLK_DEV_INITRD",
    ):
        assert f"CONFIG_{opt}=y" in config, opt


@pytest.mark.parametrize("name", COMPONENTS)
def test_rebuild_is_bit_identical(stack: Path, outs: dict[str, Path], name: str) -> None:
    r = raisin("realize", "--check", name, cwd=stack, timeout=3 * 3600)
    assert r.code == 0, r
