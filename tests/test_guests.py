"""Guest tests (issue 17): the shell library the recipes' boot tests share,
the guest tests the xen recipe declares, and, marked slow/stack, real boots.

The fast tests drive the library through the real CLI with real tools
(cpio, gzip, mke2fs, debugfs); a multi-call "busybox" that runs its
arguments stands in for the static busybox, and a fake ``qemu-system-x86_64``
that prints its arguments shows the one QEMU command line. The slow tests
boot examples/xen-debian (Xen, a PV dom0, PV and PVH guests) under QEMU's
software emulation; the stack tests need the whole stack realized (qemu-xen,
OVMF, PV-GRUB2, libvirt).
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import install_builddeps, raisin

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "xen-debian"

# a multi-call binary whose applets are the host's tools ("busybox cpio -o" runs cpio -o)
FAKE_BUSYBOX = '#!/bin/sh\nexec "$@"\n'
FAKE_QEMU = '#!/bin/sh\necho "qemu args: $*"\n'


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("pass", "FAIL", "ERROR", "skip"):
            rows[parts[0]] = parts
    return rows


def _lib_project(tmp_path: Path, tests: str) -> Path:
    proj = tmp_path / "proj"
    (proj / "bb" / "bin").mkdir(parents=True)
    bb = proj / "bb" / "bin" / "busybox"
    bb.write_text(FAKE_BUSYBOX)
    bb.chmod(0o755)
    (proj / "raisin.toml").write_text(
        f"""
[components.bb]
source = {{ path = "bb" }}
version = "1.0"
build = ["mkdir -p $out && cp -a bin $out/"]
{tests}
"""
    )
    return proj


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs")
def test_library_makes_an_initramfs_and_a_disk_image_without_root(tmp_path: Path) -> None:
    proj = _lib_project(
        tmp_path,
        """
[tests.lib]
needs = ["bb"]
run = [
  ". $RAISIN_TEST_LIB/guest.sh",
  "busybox=$bb",
  "mkdir -p data/sub && printf 'DISK-%s\\n' MARK > data/sub/marker",
  "rt_disk disk.img data 4",
  "debugfs -R 'cat /sub/marker' disk.img",
  "rt_guest_initramfs initrd.gz script.sh",
  "zcat initrd.gz | cpio -it 2>/dev/null | sed 's/^/in initrd: /'",
  "mkdir -p guest-g && cp initrd.gz guest-g/ && mkdir -p d0 && printf 'DOM0' > d0/dom0-marker && rt_initramfs d0 dom0.cpio.gz",
  "dom0_boots_dir=$PWD rt_add_guest g",
  "cat dom0.cpio.gz overlay-g.cpio.gz | cmp - dom0-g.cpio.gz && echo CONCATENATED",
  "mkdir x && cd x && zcat ../overlay-g.cpio.gz | cpio -id 2>/dev/null && ls guest/g etc/raisin-test && cat etc/raisin-test/50-g.sh",
]
expect = [
  "DISK-MARK",
  "in initrd: bin/busybox",
  "in initrd: etc/guest.sh",
  "in initrd: init",
  "CONCATENATED",
  "50-g.sh",
  "initrd.gz",
  "rt_xl_guest g 77",
]
timeout = 77

[tests.lib.files]
"script.sh" = "echo hello"
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 0, r
    assert _rows(r.out)["lib"][1] == "pass", r.out


def test_library_boots_xen_with_one_qemu_command_line(tmp_path: Path) -> None:
    proj = _lib_project(
        tmp_path,
        """
[tests.qemu]
run = [
  "mkdir -p fake && cp qemu fake/qemu-system-x86_64 && chmod +x fake/qemu-system-x86_64 && PATH=$PWD/fake:$PATH",
  ". $RAISIN_TEST_LIB/guest.sh",
  "rt_boot dom0.cpio.gz",
  "rt_cpu npt && dom0_boots_dir=/d0 rt_boot g.cpio.gz",
  "rt_cpu shadow && RT_XEN_ARGS=guest_loglvl=all rt_boot g.cpio.gz",
  "rt_cpu vmx || echo rc=$?",
  "cp qemu other-emulator && chmod +x other-emulator && rt_cpu pv && RT_QEMU=$PWD/other-emulator RT_QEMU_DATA=/q/data:/q/bios rt_boot h.cpio.gz",
]
expect = [
  "qemu args: -nodefaults -display none -monitor none -serial stdio -no-reboot -m 1024 -kernel ./xen -append console=com1 dom0_mem=512M,max:512M -initrd ./vmlinuz console=hvc0,dom0.cpio.gz",
  "qemu args: -nodefaults -display none -monitor none -serial stdio -no-reboot -cpu qemu64,+svm,+npt -m 1024 -kernel /d0/xen",
  "-cpu qemu64,+svm -m 1024 -kernel ./xen -append console=com1 dom0_mem=512M,max:512M guest_loglvl=all -initrd",
  "raisin: rt_cpu: expected npt, shadow or pv, found vmx",
  "rc=1",
  "qemu args: -L /q/data -L /q/bios -nodefaults -display none -monitor none -serial stdio -no-reboot -m 1024 -kernel ./xen",
]
timeout = 30

[tests.qemu.files]
"qemu" = '''#!/bin/sh
echo "qemu args: $*"
'''
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 0, r


def _xen_project(tmp_path: Path, extra: str = "") -> Path:
    """A stack with xen and seabios built by their recipes (never built here: tests only listed or skipped)."""
    proj = tmp_path / "stack"
    for name in ("xen", "seabios"):
        (proj / name).mkdir(parents=True)
        (proj / name / "README").write_text(f"not really {name}\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.seabios]
source = {{ path = "seabios" }}
version = "1.16.2"
recipe = "seabios"

[components.xen]
source = {{ path = "xen" }}
version = "4.17.5"
recipe = "xen"
deps = ["seabios"]
{extra}
"""
    )
    return proj


GUEST_TESTS = (
    "busybox-pv",
    "busybox-pvh",
    "busybox-hvm",
    "busybox-hvm-shadow",
    "xl-save-restore",
    "pvgrub-pv",
    "ovmf-hvm",
    "libvirt-xen",
)


def test_list_says_what_each_guest_test_checks(tmp_path: Path) -> None:
    proj = _xen_project(tmp_path)
    r = raisin("test", "--list", cwd=proj)
    assert r.code == 0, r
    lines = r.out.splitlines()
    names = [ln.split()[0] for ln in lines if ln and not ln[0].isspace()]
    for t in ("xen-boots", "dom0-boots", *GUEST_TESTS):
        assert t in names, r.out
    text = " ".join(r.out.split())
    assert "A PVH guest (hardware virtualisation, no device model)" in text
    assert "the realized qemu-xen is the device model" in text
    # a stack without qemu-xen: the HVM tests say why they will not run, by name
    hvm = next(ln for ln in lines if ln.startswith("busybox-hvm "))
    assert (
        "[skip: needs a component built with the 'qemu-xen' recipe, which this stack does not have]"
        in hvm
    ), hvm
    for name, missing in (
        ("busybox-hvm-shadow", "'qemu-xen'"),
        ("pvgrub-pv", "'grub'"),
        ("ovmf-hvm", "'ovmf' recipe, a component built with the 'qemu-xen'"),
        ("libvirt-xen", "'libvirt'"),
    ):
        line = next(ln for ln in lines if ln.startswith(name + " "))
        assert f"[skip: needs a component built with the {missing} recipe" in line, line
    for name in ("busybox-pvh", "xl-save-restore"):
        line = next(ln for ln in lines if ln.startswith(name + " "))
        assert "[skip" not in line or "not installed" in line, line
    pvh = next(ln for ln in lines if ln.startswith("busybox-pvh "))
    assert "after dom0-boots" in pvh and "needs xen;" in pvh, pvh


def test_stack_without_qemu_xen_skips_busybox_hvm_by_name_never_passes(tmp_path: Path) -> None:
    proj = _xen_project(tmp_path, '[tests.xen-boots]\nskip = "not booting a fake xen"\n')
    junit = tmp_path / "junit.xml"
    r = raisin("test", "busybox-hvm", "busybox-pvh", "--junit", str(junit), cwd=proj)
    assert r.code == 0, r
    rows = _rows(r.out)
    assert {n: row[1] for n, row in rows.items()} == {
        "xen-boots": "skip",
        "dom0-boots": "skip",
        "busybox-pvh": "skip",
        "busybox-hvm": "skip",
    }, r.out
    assert "0 passed, 4 skipped" in r.out
    assert re.search(r"busybox-hvm\s+skip\s+-\s+needs a component built with the 'qemu-xen'", r.out)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"xen-boots", "dom0-boots", "busybox-pvh", "busybox-hvm"}
    skipped = cases["busybox-hvm"].find("skipped")
    assert skipped is not None and "qemu-xen" in skipped.get("message", "")
    assert cases["busybox-hvm"].get("classname") == "raisin.recipe.xen"
    # nothing was built for tests that did not run
    assert not any((proj / "store").glob("*-xen-4.17.5"))


# ---------------------------------------------------------------- slow: real guests


def _copy_example(tmp_path: Path) -> Path:
    proj = tmp_path / "xen-debian"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("store", "profiles"))
    return proj


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_pv_and_pvh_guests_boot_on_the_realized_xen(tmp_path: Path) -> None:
    """busybox-pv, busybox-pvh, xl-save-restore on examples/xen-debian (builds Xen first when the store is empty)."""
    if shutil.which("qemu-system-x86_64") is None or shutil.which("apt-get") is None:
        pytest.skip("needs qemu-system-x86 and apt-get")
    proj = _copy_example(tmp_path)
    store = os.environ.get("RAISIN_TEST_GUEST_STORE")  # reuse a realized examples/xen-debian store
    args = ("--store", store) if store else ()
    if not store:
        install_builddeps(proj)
    junit = tmp_path / "junit.xml"
    r = raisin(
        *args,
        "test",
        "-j",
        "2",
        "busybox-pv",
        "busybox-pvh",
        "xl-save-restore",
        "--junit",
        str(junit),
        cwd=proj,
        timeout=5400,
    )
    assert r.code == 0, r
    rows = _rows(r.out)
    assert {n: row[1] for n, row in rows.items()} == {
        "xen-boots": "pass",
        "dom0-boots": "pass",
        "busybox-pv": "pass",
        "busybox-pvh": "pass",
        "xl-save-restore": "pass",
    }, r.out
    times = {
        c.get("name"): float(c.get("time", "0")) for c in ET.parse(junit).getroot().iter("testcase")
    }
    print("per-test seconds:", times)
    logs = Path(store or proj / "store") / ".raisin" / "test-logs"
    pvh = (logs / "busybox-pvh.log").read_text()
    assert "HVM: SVM enabled" in pvh
    assert re.search(r"guest: RAISIN-GUEST-OK: \S+ on xen PVH", pvh)
    saved = (logs / "xl-save-restore.log").read_text()
    assert re.search(r"RAISIN-SAVE-RESTORE-OK: saved at \d+, counting on at \d+", saved)


# ---------------------------------------------------------------- stack: every component

STACK_GUESTS = ("busybox-hvm", "busybox-hvm-shadow", "ovmf-hvm", "pvgrub-pv", "libvirt-xen")


@pytest.mark.stack
@pytest.mark.timeout(7200)
def test_every_guest_boots_on_the_whole_stack(tmp_path: Path) -> None:
    """`raisin test` on a realized whole-stack project: every guest test passes.

    RAISIN_TEST_STACK names the project directory (its raisin.toml, raisin.lock
    and store/, e.g. examples/xen-stack-debian after `raisin realize`); the
    tests run on a copy of its manifest and lock against that store (which
    receives the test logs and inputs)."""
    stack = os.environ.get("RAISIN_TEST_STACK")
    if not stack:
        pytest.skip("set RAISIN_TEST_STACK to a realized whole-stack project directory")
    proj = tmp_path / "stack"
    proj.mkdir()
    for f in ("raisin.toml", "raisin.lock"):
        shutil.copy(Path(stack) / f, proj / f)
    junit = tmp_path / "junit.xml"
    r = raisin(
        "--store",
        str(Path(stack) / "store"),
        "test",
        "-j",
        "1",
        "--junit",
        str(junit),
        *STACK_GUESTS,
        cwd=proj,
        timeout=7200,
    )
    rows = _rows(r.out)
    times = {
        c.get("name"): float(c.get("time", "0")) for c in ET.parse(junit).getroot().iter("testcase")
    }
    print("per-test seconds:", times)
    assert {n: rows[n][1] for n in STACK_GUESTS} == {n: "pass" for n in STACK_GUESTS}, r
    assert r.code == 0, r


# ------------------------------------------------- stack: each broken path turns red

# raisin.toml additions that break one component's path, each extending the
# recipe's test of that name (key by key), and what its failure must show.
BROKEN = {
    # another platform build of the same EDK II release: Debian's binary
    # ovmf package (OvmfPkgX64.dsc, the QEMU platform), at the store path
    # libxl loads OVMF from, instead of the realized OvmfXen build
    "ovmf-hvm": (
        """
[tests.ovmf-hvm]
inputs.otherfw = { debian-binary = "ovmf", keep = ["usr/share/ovmf/OVMF.fd"] }
run = [
  ". $RAISIN_TEST_LIB/guest.sh",
  "rt_cpu npt",
  "g=guest-ovmf-hvm && mkdir -p $g esp && cp guest.cfg $g/",
  "cp $dom0_boots_dir/vmlinuz esp/vmlinuz.efi && cp startup.nsh esp/",
  "rt_guest_initramfs esp/initrd.gz",
  "rt_fat_disk $g/esp.img esp 48",
  "rt_dm_overlay overlay-ovmf-hvm",
  "install -D -m 644 $otherfw/usr/share/ovmf/OVMF.fd overlay-ovmf-hvm/raisin/store/$(basename $ovmf)/usr/share/ovmf/OVMF.fd",
  "rt_add_guest ovmf-hvm",
  "RT_QEMU=$qemu_tcg/usr/bin/qemu-system-x86_64 RT_QEMU_DATA=/usr/share/qemu:/usr/share/seabios RT_XEN_ARGS=guest_loglvl=all rt_boot dom0-ovmf-hvm.cpio.gz",
]
""",
        r"guest: .*DMI not present or invalid",
    ),
    # Debian's own QEMU (qemu-system-x86, built with Xen support) where libxl
    # starts the device model: a later initramfs overlay replaces the realized
    # qemu-xen binary
    "busybox-hvm": (
        """
[tests.busybox-hvm]
run = [
  ". $RAISIN_TEST_LIB/guest.sh",
  "rt_cpu npt",
  "sh mkhvm.sh busybox-hvm",
  "f=$(readlink -f /usr/bin/qemu-system-i386) && rt_copy_bin other $f $(dirname $f)",
  "mkdir -p other/usr/lib/xen/bin && mv other/qemu-system-i386 other/usr/lib/xen/bin/",
  "rt_initramfs other other.cpio.gz && cat dom0-busybox-hvm.cpio.gz other.cpio.gz > dom0-other-dm.cpio.gz",
  "RT_XEN_ARGS=guest_loglvl=all rt_boot dom0-other-dm.cpio.gz",
]
""",
        # it may not even start as Xen's device model there (measured: libxl
        # gave up on it, "xl create failed"); if it does, dom0's SHA-256
        # check fails the test
        (
            r"RAISIN-DOM0-FAILED: busybox-hvm: device model /usr/lib/xen/bin/qemu-system-i386"
            r" is not the realized qemu-xen|raisin-dom0: xl create failed: busybox-hvm"
        ),
    ),
    # a grub.cfg on the guest's disk that names a kernel the disk lacks
    "pvgrub-pv": (
        """
[tests.pvgrub-pv.files]
"grub.cfg" = '''
set timeout=0
menuentry "raisin busybox" {
  linux /boot/no-such-vmlinuz console=hvc0 raisin.booted-by=pv-grub2
  initrd /boot/initrd.gz
}
'''
""",
        r"error: file .*/boot/no-such-vmlinuz.* not found",
    ),
}


@pytest.mark.stack
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_component_path_turns_its_test_red(tmp_path: Path, name: str) -> None:
    """Each guest test fails, with the console tail, when its component's path
    is broken (RAISIN_TEST_STACK as for the test above)."""
    stack = os.environ.get("RAISIN_TEST_STACK")
    if not stack:
        pytest.skip("set RAISIN_TEST_STACK to a realized whole-stack project directory")
    if name == "busybox-hvm" and not Path("/usr/bin/qemu-system-i386").exists():
        pytest.skip("needs Debian's qemu-system-i386 (qemu-system-x86) as the other device model")
    proj = tmp_path / "stack"
    proj.mkdir()
    shutil.copy(Path(stack) / "raisin.lock", proj / "raisin.lock")
    extra, shown = BROKEN[name]
    (proj / "raisin.toml").write_text((Path(stack) / "raisin.toml").read_text() + extra)
    r = raisin("--store", str(Path(stack) / "store"), "test", name, cwd=proj, timeout=3500)
    rows = _rows(r.out)
    assert rows[name][1] == "FAIL", r
    assert r.code == 1, r
    assert re.search(shown, r.out + r.err), r  # the console tail shows why


def test_a_manifest_replaces_one_file_of_a_recipe_test(tmp_path: Path) -> None:
    """`[tests.NAME.files]` in raisin.toml replaces the files it names and
    keeps the recipe's others (as `inputs` does): the red-path stack tests
    give pvgrub-pv a broken grub.cfg this way."""
    from raisin_lock.app.project import Project
    from raisin_lock.app.testing import load

    proj = _xen_project(
        tmp_path,
        """
[tests.busybox-pv.files]
"extra.sh" = "echo extra"
[tests.busybox-pv]
timeout = 99
""",
    )
    _lk, cases = load(Project.at(proj))
    case = cases["busybox-pv"]
    assert case.files["extra.sh"] == "echo extra"
    assert 'type = "pv"' in case.files["guest.cfg"]  # the recipe's file, kept
    assert case.timeout == 99
    assert case.run and case.run[0].startswith(". $RAISIN_TEST_LIB/guest.sh")
