"""Profiles, generations and journaled activation into a temporary root, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import raisin

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
HAS_SYSTEMCTL = shutil.which("systemctl") is not None
UNIT = """[Unit]
Description=raisin test unit
[Service]
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
"""
CONF = """
[components.conf]
source = { path = "src/conf" }
version = "1.0"
build = [
  "install -Dm644 hello.conf $out/etc/hello.conf",
  "install -Dm644 xen-test.gz $out/boot/xen-test.gz",
  "install -Dm644 raisin-test.service $out/usr/lib/systemd/system/raisin-test.service",
  "cc -shared -fPIC -o libraisintest.so.1 lib.c",
  "install -Dm755 libraisintest.so.1 $out/usr/lib/libraisintest.so.1",
]
"""
PROFILE = '\n[profiles.default]\ncomponents = ["hello", "conf"]\n'
GEN2_ACTIVATE = """
[components.conf.activate]
units = ["raisin-test.service"]
ldconfig = true
boot = { hypervisor = "boot/xen-test.gz", xen-options = "dom0_mem=1024M" }
bridge = { name = "xenbr0", interface = "eth0" }
"""


def _manifest(proj: Path, *, activate: str = "") -> None:
    text = (DEMO / "raisin.toml").read_text()
    text = text[: text.index("[profiles.default]")]
    (proj / "raisin.toml").write_text(text + CONF + activate + PROFILE)


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    conf = dst / "src" / "conf"
    conf.mkdir()
    (conf / "hello.conf").write_text("greeting = v1\n")
    (conf / "xen-test.gz").write_bytes(b"not really xen\n")
    (conf / "raisin-test.service").write_text(UNIT)
    (conf / "lib.c").write_text("int raisin_test(void) { return 42; }\n")
    _manifest(dst)
    return dst


def walk(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: dirs, symlinks (target), files (content, executable)."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.read_bytes(), bool(st.st_mode & 0o100))
    return out


def snapshot(*tops: Path) -> dict[str, tuple]:
    """walk() plus mtimes and modes of everything, for "nothing changed" checks."""
    out = {}
    for top in tops:
        for dirpath, dirs, files in os.walk(top):
            for name in [".", *dirs, *files]:
                p = Path(dirpath) / name
                st = p.lstat()
                data = (
                    p.read_bytes()
                    if stat.S_ISREG(st.st_mode)
                    else os.readlink(p)
                    if stat.S_ISLNK(st.st_mode)
                    else ""
                )
                out[str(p)] = (st.st_mode, st.st_mtime_ns, st.st_size, data)
    return out


COPIED = ("etc/", "boot/", "lib/systemd/", "usr/lib/systemd/")


def expected_from_generation(proj: Path, gen: int) -> dict[str, tuple]:
    """What activating generation ``gen`` puts into an empty root (files phase only)."""
    link = proj / "profiles" / f"default-{gen}-link"
    files = Path(os.readlink(link)) / "files"
    out: dict[str, tuple] = {}
    for rel, entry in walk(files).items():
        if entry[0] == "dir":
            out[rel] = entry
            continue
        src = Path(os.path.normpath((files / rel).parent / entry[1]))
        if rel.startswith(COPIED):
            out[rel] = ("file", src.read_bytes(), bool(src.stat().st_mode & 0o100))
        else:
            out[rel] = ("link", str(src))
    # /raisin/store resolves in the root: outputs refer to each other there
    out["raisin"] = ("dir",)
    out["raisin/store"] = ("link", str(proj / "store"))
    return out


def _switch(proj: Path, root: Path, *extra: str):
    r = raisin("profile", "switch", "default", "--root", str(root), "-y", *extra, cwd=proj)
    assert r.code == 0, r
    return r


def _journal(proj: Path) -> list[dict]:
    path = proj / "profiles" / ".raisin" / "default" / "journal"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.skipif(
    not HAS_SYSTEMCTL, reason="systemctl is not installed: unit enabling cannot be checked"
)
def test_switch_change_pin_rollback_deactivate(proj: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    admin_ldconf = b"include /etc/ld.so.conf.d/*.conf\n"
    (root / "etc" / "ld.so.conf").write_bytes(admin_ldconf)
    before_all = walk(root)

    # generation 1: files only
    _switch(proj, root)
    gen1 = expected_from_generation(proj, 1)
    assert walk(root) == {**before_all, **gen1}
    out = subprocess.run(
        [str(root / "usr/bin/hello"), "raisin"], capture_output=True, text=True, check=True
    ).stdout
    assert out == "Hello, raisin!\nBuilt by raisin from pinned sources.\n"
    assert (root / "etc/hello.conf").read_text() == "greeting = v1\n" and not (
        root / "etc/hello.conf"
    ).is_symlink()
    assert (root / "boot/xen-test.gz").is_file() and not (root / "boot/xen-test.gz").is_symlink()

    # the admin edits a configuration file raisin wrote
    (root / "etc/hello.conf").write_text("greeting = mine\n")

    # generation 2: a changed pin, a changed etc file, and actions
    (proj / "src/motd/motd.txt").write_text("Second release.\n")
    (proj / "src/conf/hello.conf").write_text("greeting = v2\n")
    _manifest(proj, activate=GEN2_ACTIVATE)
    r = _switch(proj, root)
    assert "hello.conf was changed since raisin wrote it" in r.err
    out = subprocess.run(
        [str(root / "usr/bin/hello")], capture_output=True, text=True, check=True
    ).stdout
    assert out == "Hello, Xen!\nSecond release.\n"
    gen2 = expected_from_generation(proj, 2)
    got = walk(root)
    assert got["etc/hello.conf"][1] == b"greeting = mine\n"  # the admin's edit survives
    assert got["etc/hello.conf.raisin-new"] == ("file", b"greeting = v2\n", False)
    wants = "etc/systemd/system/multi-user.target.wants/raisin-test.service"
    assert got[wants] == ("link", "/usr/lib/systemd/system/raisin-test.service")
    assert got["etc/ld.so.conf.d/raisin-default.conf"][1].endswith(b"/usr/lib\n")
    snippet = got["etc/grub.d/21_raisin-default-conf"]
    assert (
        snippet[0] == "file"
        and snippet[2]
        and b"multiboot2" in snippet[1]
        and b"dom0_mem=1024M" in snippet[1]
    )
    assert got["etc/ld.so.cache"][0] == "file"
    generated = {
        "etc/hello.conf.raisin-new",
        "etc/ld.so.conf.d",
        "etc/ld.so.conf.d/raisin-default.conf",
        "etc/grub.d",
        "etc/grub.d/21_raisin-default-conf",
        "etc/ld.so.cache",
        "etc/systemd",
        "etc/systemd/system",
        "etc/systemd/system/multi-user.target.wants",
        wants,
        "etc/network",
        "etc/network/interfaces.d",
        "etc/network/interfaces.d/raisin-xenbr0",
    }
    assert b"bridge_ports eth0" in got["etc/network/interfaces.d/raisin-xenbr0"][1]
    assert set(got) == set(before_all) | set(gen2) | generated
    for rel, entry in gen2.items():
        if rel != "etc/hello.conf":
            assert got[rel] == entry, rel

    # every change is in the journal, in order, complete
    j = _journal(proj)
    assert j[0]["journal"] == 1 and j[0]["generation"] == 2 and j[-1] == {"op": "complete"}
    ops = [e["op"] for e in j[1:-1]]
    assert (
        ops.count("keep") >= 1 and "systemd" in ops and "systemd-result" in ops and "refresh" in ops
    )

    # roll back: exactly generation 1 again (the admin's file stays; raisin's v1 beside it)
    r = raisin("profile", "rollback", "default", "-y", cwd=proj)
    assert r.code == 0, r
    got = walk(root)
    assert wants not in got and "etc/systemd" not in got and "etc/ld.so.cache" not in got
    assert got["etc/hello.conf"][1] == b"greeting = mine\n"
    assert got.pop("etc/hello.conf.raisin-new") == ("file", b"greeting = v1\n", False)
    exp = {**before_all, **gen1}
    exp["etc/hello.conf"] = ("file", b"greeting = mine\n", False)
    assert got == exp
    out = subprocess.run(
        [str(root / "usr/bin/hello")], capture_output=True, text=True, check=True
    ).stdout
    assert out == "Hello, Xen!\nBuilt by raisin from pinned sources.\n"

    r = raisin("profile", "generations", "default", cwd=proj)
    assert (
        r.code == 0 and "*    1" in r.out and f"active in {root}" in r.out and "hello 1.2" in r.out
    ), r
    r = raisin("profile", "diff", "default", "1", "2", cwd=proj)
    assert r.code == 0 and "~ hello 1.2" in r.out and "rebuilt" in r.out, r

    # deactivate: nothing of raisin's is left; only what was there and the admin's file
    r = raisin("profile", "deactivate", "default", "-y", cwd=proj)
    assert r.code == 0, r
    assert walk(root) == {**before_all, "etc/hello.conf": ("file", b"greeting = mine\n", False)}
    assert not (proj / "profiles/.raisin/default/journal").exists()
    assert raisin("store", "verify", cwd=proj).code == 0


def test_dry_run_writes_nothing_anywhere(proj: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    # before anything exists: no store, no lock, no profiles are created
    assert raisin("lock", cwd=proj).code == 0
    snap = snapshot(tmp_path)
    r = raisin("profile", "switch", "default", "--root", str(root), "--dry-run", cwd=proj)
    assert r.code == 0 and "would build first" in r.out, r
    assert snapshot(tmp_path) == snap and not root.exists()

    _switch(proj, root)
    (proj / "src/motd/motd.txt").write_text("Changed.\n")
    _manifest(proj, activate=GEN2_ACTIVATE)
    assert raisin("realize", cwd=proj).code == 0
    snap = snapshot(tmp_path)
    for args in (
        ("profile", "switch", "default", "--dry-run"),
        ("profile", "rollback", "default", "--dry-run"),
        ("profile", "deactivate", "default", "--dry-run"),
        ("profile", "delete-generations", "default", "--keep", "1", "--dry-run"),
        ("gc", "--dry-run"),
        ("profile", "list"),
        ("profile", "generations", "default"),
    ):
        r = raisin(*args, cwd=proj)
        if args[1] == "rollback":  # one generation only: nothing to go back to (bad input)
            assert (r.code, r.err) == (2, "error: profile 'default' has no generation before 1\n")
        else:
            assert r.code == 0, r  # a dry run is 0 (CONTRACT: exit codes)
        assert snapshot(tmp_path) == snap, args
    r = raisin("profile", "switch", "default", "--dry-run", cwd=proj)
    assert "link    usr/bin/hello" in r.out and "unlink  usr/bin/hello" in r.out, r
    assert "raisin-test.service" in r.out and "ldconfig -X -r" in r.out, r


@pytest.mark.skipif(
    not HAS_SYSTEMCTL,
    reason="systemctl is not installed: the injected failure is a unit that does not exist",
)
def test_failure_mid_activation_restores_previous_generation(proj: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _manifest(
        proj, activate='\n[components.conf.activate]\nldconfig = true\nld-paths = ["usr/lib"]\n'
    )
    (root / "etc").mkdir()
    _switch(proj, root)
    (root / "etc/hello.conf").write_text("admin\n")
    before = walk(root)
    journal_before = _journal(proj)
    links_before = sorted(os.listdir(proj / "profiles"))

    # generation 2 links and copies its files, then systemctl fails on a unit nobody provides
    (proj / "src/motd/motd.txt").write_text("Broken release.\n")
    (proj / "src/conf/hello.conf").write_text("greeting = v3\n")
    _manifest(
        proj, activate='\n[components.conf.activate]\nunits = ["raisin-no-such-unit.service"]\n'
    )
    r = raisin("profile", "switch", "default", "--root", str(root), "-y", cwd=proj)
    assert r.code == 1, r
    assert "back at generation 1" in r.err and "raisin-no-such-unit.service" in r.err, r
    after = walk(root)
    assert after == before
    assert sorted(os.listdir(proj / "profiles")) == links_before
    assert os.readlink(proj / "profiles/default") == "default-1-link"
    j = _journal(proj)
    assert j[0]["generation"] == 1 and j[-1] == {"op": "complete"}

    # the same changes as before, except that the admin's etc/hello.conf is now kept, not owned
    def others(entries: list[dict]) -> list[dict]:
        return [e for e in entries if e.get("path") != "etc/hello.conf"]

    assert others(j[1:]) == others(journal_before[1:])
    kept = [e for e in j[1:] if e.get("path") == "etc/hello.conf"]
    assert [e["op"] for e in kept] == ["keep"] and kept[0]["new"] is None
    out = subprocess.run(
        [str(root / "usr/bin/hello")], capture_output=True, text=True, check=True
    ).stdout
    assert "Built by raisin" in out


def test_conflicting_components_and_priority(proj: Path, tmp_path: Path) -> None:
    (proj / "src/dup").mkdir()
    (proj / "src/dup/motd.txt").write_text("other\n")
    text = (proj / "raisin.toml").read_text().replace(PROFILE, "")
    text += '\n[components.dup]\nsource = { path = "src/dup" }\nversion = "1"\n'
    text += 'build = ["install -Dm644 motd.txt $out/usr/share/motd/motd.txt"]\n'
    (proj / "raisin.toml").write_text(text + '\n[profiles.default]\ncomponents = ["motd", "dup"]\n')
    root = tmp_path / "root"
    r = raisin("profile", "switch", "default", "--root", str(root), "-y", cwd=proj)
    assert r.code == 2 and "dup and motd both provide usr/share/motd/motd.txt" in r.err, r
    assert not root.exists() and not (proj / "profiles/default").exists()
    text += "\n[components.dup.activate]\npriority = 1\n"
    (proj / "raisin.toml").write_text(text + '\n[profiles.default]\ncomponents = ["motd", "dup"]\n')
    _switch(proj, root)
    assert (root / "usr/share/motd/motd.txt").read_text() == "other\n"


def test_bad_activation_table_names_the_key(proj: Path) -> None:
    _manifest(proj, activate='\n[components.conf.activate]\nunits = ["not a unit"]\n')
    r = raisin("lock", cwd=proj)
    assert (
        r.code == 2
        and "components.conf.activate.units" in r.err
        and "not a systemd unit name" in r.err
    ), r
    _manifest(proj, activate='\n[components.conf.activate.boot]\nkernel = "boot/vmlinuz"\n')
    r = raisin("lock", cwd=proj)
    assert r.code == 2 and "components.conf.activate.boot.hypervisor" in r.err, r


def test_activation_is_carried_in_the_lock(proj: Path, tmp_path: Path) -> None:
    _manifest(proj, activate=GEN2_ACTIVATE)
    assert raisin("lock", cwd=proj).code == 0
    text = (proj / "raisin.lock").read_text()
    assert "[components.conf.activate]" in text and 'units = ["raisin-test.service"]' in text
    # a lock alone (no raisin.toml) activates, actions included
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(proj / "raisin.lock", alone / "raisin.lock")
    shutil.copytree(proj / "src", alone / "src")
    root = tmp_path / "root"
    r = raisin(
        "profile",
        "switch",
        "default",
        "--lock",
        str(alone / "raisin.lock"),
        "--root",
        str(root),
        "--dry-run",
        cwd=alone,
    )
    assert r.code == 0, r
    r = raisin(
        "profile",
        "switch",
        "default",
        "--lock",
        str(alone / "raisin.lock"),
        "--root",
        str(root),
        "-y",
        cwd=alone,
    )
    if HAS_SYSTEMCTL:
        assert r.code == 0, r
        assert (
            root / "etc/systemd/system/multi-user.target.wants/raisin-test.service"
        ).is_symlink()
        assert (root / "usr/bin/hello").is_symlink() and (
            root / "usr/share/motd/motd.txt"
        ).is_symlink()


def test_delete_generations_keeps_current(proj: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _switch(proj, root)
    for i in range(2):
        (proj / "src/motd/motd.txt").write_text(f"release {i}\n")
        _switch(proj, root)
    r = raisin("profile", "delete-generations", "default", "3", cwd=proj)
    assert r.code == 2 and "current or active" in r.err, r
    r = raisin("profile", "delete-generations", "default", "--keep", "1", cwd=proj)
    assert r.code == 0 and "deleted generations 1, 2" in r.out, r
    r = raisin("profile", "generations", "default", cwd=proj)
    assert r.out.count("\n") == 1 and "*    3" in r.out, r
    r = raisin("profile", "rollback", "default", "-y", cwd=proj)
    assert r.code == 2 and "no generation before 3" in r.err, r


def test_recipe_actions_merge_with_the_components(proj: Path) -> None:
    text = (proj / "raisin.toml").read_text()
    text += (
        '\n[components.virt]\nsource = { path = "src/conf" }\nversion = "9.0"\nrecipe = "libvirt"\n'
    )
    (proj / "raisin.toml").write_text(text)
    assert raisin("lock", cwd=proj).code == 0
    lock = (proj / "raisin.lock").read_text()
    assert '[components.virt.activate]\nunits = ["libvirtd.service"]\n' in lock
    (proj / "raisin.toml").write_text(
        text + "\n[components.virt.activate]\nldconfig = true\nunits = []\n"
    )
    assert raisin("lock", cwd=proj).code == 0
    lock = (proj / "raisin.lock").read_text()
    assert "[components.virt.activate]\nldconfig = true\n\n" in lock or lock.endswith(
        "[components.virt.activate]\nldconfig = true\n"
    )


def test_interrupted_activation_is_undone_and_redone(proj: Path, tmp_path: Path) -> None:
    """What kill -9 half-way through an activation leaves: a journal without its end, part of the changes."""
    root = tmp_path / "root"
    _switch(proj, root)
    expected = walk(root)
    journal = proj / "profiles/.raisin/default/journal"
    lines = journal.read_text().splitlines()
    assert lines[-1] == '{"op": "complete"}'
    journal.write_text("\n".join(lines[:-1]) + '\n{"op": "link", "pa')  # torn last write
    (root / "usr/bin/hello").unlink()  # that change had not been made yet
    r = raisin("profile", "switch", "default", "-y", cwd=proj)
    assert r.code == 0 and "was interrupted" in r.err, r
    assert walk(root) == expected
    assert _journal(proj)[-1] == {"op": "complete"}
