"""The store: registration, references, locks, cleanup, verify, crash safety.

Everything is real: SQLite files, flock between real processes, files with
real modes, processes killed with SIGKILL.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import raisin

from raisin_lock import nar
from raisin_lock.errors import BuildError, HashMismatch, RaisinError
from raisin_lock.hashing import Hash
from raisin_lock.store import Damage, PathInfo, Store
from raisin_lock.store_path import StorePath

PY = sys.executable


def out_path(name: str) -> StorePath:
    return StorePath.make("output", hashlib.sha256(name.encode()).hexdigest(), name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.close()


def build(
    store: Store,
    sp: StorePath,
    populate: Callable[[Path], None],
    candidates: tuple[StorePath, ...] | list[StorePath] = (),
) -> PathInfo:
    with store.lock(sp):
        host = store.prepare_build(sp)
        populate(host)
        return store.register(sp, candidates=candidates)


def simple(text: str) -> Callable[[Path], None]:
    def populate(host: Path) -> None:
        host.mkdir()
        (host / "file").write_text(text)

    return populate


def listing(root: Path) -> set[str]:
    return {n for n in os.listdir(root) if n != ".raisin"}


# ---- opening --------------------------------------------------------------


def test_missing_store_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    root = tmp_path / "nope"
    s = Store(root)
    sp = out_path("x")
    assert not s.is_valid(sp)
    assert s.query(sp) is None
    assert s.valid_subset([sp]) == set()
    assert s.all_valid() == []
    assert s.verify() == []
    assert s.derivation_output("abc") is None
    s.close()
    assert not root.exists()


def test_create_false_refuses_missing_store_for_writes(tmp_path: Path) -> None:
    s = Store(tmp_path / "nope", create=False)
    with pytest.raises(RaisinError, match="no raisin store"):
        s.cleanup()
    assert not (tmp_path / "nope").exists()


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, data)
    return out


def test_read_only_use_leaves_the_store_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as s:
        a = build(s, out_path("a"), simple("a"))
        b = build(s, out_path("b"), simple(a.path.virtual), candidates=[a.path])
    before = snapshot(root)
    with Store(root, create=False) as r:
        assert r.is_valid(b.path)
        assert r.query(b.path) == b
        assert r.closure([b.path]) == {a.path, b.path}
        assert r.referrers(a.path) == {b.path}
        assert r.verify() == []
    assert snapshot(root) == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as s:
        build(s, out_path("a"), simple("a"))
    db = root / ".raisin" / "db.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    s = Store(root)
    with pytest.raises(RaisinError, match="newer") as exc:
        s.is_valid(out_path("a"))
    assert str(db) in str(exc.value)
    with pytest.raises(RaisinError, match="newer"):
        s.cleanup()
    s.close()


def test_corrupt_database_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / ".raisin").mkdir(parents=True)
    (root / ".raisin" / "db.sqlite").write_bytes(b"this is not sqlite" * 100)
    with Store(root) as s, pytest.raises(RaisinError) as exc:
        s.is_valid(out_path("a"))
    assert "db.sqlite" in str(exc.value)


# ---- register ---------------------------------------------------------------


def test_register_normalises_modes_and_mtimes(store: Store) -> None:
    sp = out_path("norm")

    def populate(host: Path) -> None:
        (host / "bin").mkdir(parents=True)
        (host / "bin" / "tool").write_text("#!/bin/sh\n")
        os.chmod(host / "bin" / "tool", 0o4755)  # setuid, executable
        (host / "share").mkdir()
        (host / "share" / "data").write_text("data")
        os.chmod(host / "share" / "data", 0o664)
        (host / "share" / "secret").write_text("hidden")
        os.chmod(host / "share" / "secret", 0o000)
        (host / "share" / "sgid").write_text("x")
        os.chmod(host / "share" / "sgid", 0o2644)
        (host / "tmp").mkdir()
        os.chmod(host / "tmp", 0o1777)
        (host / "locked").mkdir()
        (host / "locked" / "inner").write_text("in")
        os.chmod(host / "locked", 0o000)
        os.symlink("bin/tool", host / "link")

    info = build(store, sp, populate)
    host = store.host_path(sp)
    modes = {}
    for dirpath, dirs, files in os.walk(host):
        for name in [*dirs, *files, "."]:
            p = Path(dirpath) / name
            st = p.lstat()
            assert st.st_mtime == 1, p
            if not stat.S_ISLNK(st.st_mode):
                modes[str(p.relative_to(host))] = stat.S_IMODE(st.st_mode)
    assert modes == {
        ".": 0o555,
        "bin": 0o555,
        "bin/tool": 0o555,
        "share": 0o555,
        "share/data": 0o444,
        "share/secret": 0o444,
        "share/sgid": 0o444,
        "tmp": 0o555,
        "locked": 0o555,
        "locked/inner": 0o444,
    }
    assert (host / "link").lstat().st_mtime == 1
    assert (info.nar_hash, info.nar_size) == nar.hash_path(host)
    assert info.references == frozenset()
    assert store.query(sp) == info
    assert store.is_valid(sp)
    assert info.sandboxed and info.ca is None


def test_register_refuses_a_fifo_naming_it(store: Store) -> None:
    sp = out_path("fifo")

    def populate(host: Path) -> None:
        (host / "run").mkdir(parents=True)
        os.mkfifo(host / "run" / "ctl.pipe")

    with pytest.raises(BuildError) as exc:
        build(store, sp, populate)
    assert "ctl.pipe" in str(exc.value) and "fifo" in str(exc.value)
    assert not store.is_valid(sp)
    assert store.cleanup() == [sp.base]
    assert listing(store.root) == set()


def test_register_without_output_is_a_build_error(store: Store) -> None:
    sp = out_path("nothing")
    with store.lock(sp), pytest.raises(BuildError, match="not produced"):
        store.prepare_build(sp)
        store.register(sp)


def test_references_found_in_contents_symlinks_and_across_chunks(store: Store) -> None:
    deps = {n: build(store, out_path(n), simple(n)).path for n in "abcdef"}
    sp = out_path("user")

    def populate(host: Path) -> None:
        (host / "bin").mkdir(parents=True)
        (host / "bin" / "prog").write_bytes(
            b"\x7fELF\0\0" + deps["a"].virtual.encode() + b"/lib/libfoo.so\0more"
        )
        os.symlink(deps["b"].virtual + "/share/doc", host / "doc")
        # c's path straddles the 1 MiB boundary where readers cut chunks.
        ref = (deps["c"].virtual + "/etc").encode()
        big = bytearray(b"x" * (2 << 20))
        at = (1 << 20) - 20
        big[at : at + len(ref)] = ref
        (host / "big.bin").write_bytes(bytes(big))
        (host / "self").write_text(f"I live in {sp.virtual}\n")
        # e's digest without the "-name" tail does not count; d is not mentioned.
        (host / "notes").write_text(f"hash {deps['e'].digest} only\n")
        # f's path glued to other base32 characters still counts.
        (host / "glued").write_text(f"zz{deps['f'].base}/bin")

    info = build(store, sp, populate, candidates=list(deps.values()))
    assert info.references == {deps["a"], deps["b"], deps["c"], deps["f"], sp}
    assert store.closure([sp]) == {sp, deps["a"], deps["b"], deps["c"], deps["f"]}
    assert store.referrers(deps["a"]) == {sp}
    assert store.referrers(sp) == set()  # self-reference not reported
    with pytest.raises(RaisinError, match="not a valid store path"):
        store.closure([out_path("unknown")])


def test_register_wrong_expected_hash_deletes_content(store: Store) -> None:
    sp = out_path("fixed")
    wrong = Hash.of_bytes(b"something else")
    with store.lock(sp):
        host = store.prepare_build(sp)
        simple("content")(host)
        with pytest.raises(HashMismatch) as exc:
            store.register(sp, expected=wrong)
    assert wrong.sri in str(exc.value)
    assert not host.exists() and not store.is_valid(sp)


def test_reference_to_an_invalid_path_is_refused(store: Store) -> None:
    ghost = out_path("ghost")
    sp = out_path("haunted")
    with pytest.raises(RaisinError, match="not valid"):
        build(store, sp, simple(ghost.virtual), candidates=[ghost])
    assert not store.is_valid(sp)


# ---- add_tree / add_nar -------------------------------------------------------


def make_src(d: Path, text: str = "hello") -> Path:
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.c").write_text(text)
    (d / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(d / "run.sh", 0o755)
    os.symlink("sub/a.c", d / "link")
    return d


def test_add_tree_is_content_addressed(store: Store, tmp_path: Path) -> None:
    src1 = make_src(tmp_path / "one")
    src2 = make_src(tmp_path / "two")
    first = store.add_tree(src1, "greet-1.0")
    h, _ = nar.hash_path(src1)
    assert first.path == StorePath.make("source", h, "greet-1.0")
    assert first.nar_hash == h and first.ca == "source"
    host = store.host_path(first.path)
    st = host.lstat()
    again = store.add_tree(src2, "greet-1.0", expected=h)
    assert again == first
    after = host.lstat()
    assert (after.st_ino, after.st_ctime_ns) == (st.st_ino, st.st_ctime_ns)  # not copied again
    assert store.add_tree(src1, "other").path != first.path
    changed = make_src(tmp_path / "three", "bye")
    assert store.add_tree(changed, "greet-1.0").path != first.path
    assert os.readlink(host / "link") == "sub/a.c"
    assert store.verify() == []


def test_add_tree_wrong_expected_leaves_nothing(store: Store, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    wrong = Hash.of_bytes(b"nope")
    with pytest.raises(HashMismatch) as exc:
        store.add_tree(src, "greet", expected=wrong)
    assert wrong.sri in str(exc.value)
    assert store.all_valid() == []
    assert not store.root.exists()  # checked before anything was written


def nar_of(path: Path) -> bytes:
    buf = io.BytesIO()
    nar.dump(path, buf.write)
    return buf.getvalue()


def test_add_nar_unpacks_and_registers_given_references(store: Store, tmp_path: Path) -> None:
    dep = build(store, out_path("dep"), simple("dep")).path
    src = make_src(tmp_path / "tree", dep.virtual)
    data = nar_of(src)
    expected = Hash.of_bytes(data)
    sp = out_path("substituted")
    info = store.add_nar(
        io.BytesIO(data).read, sp, expected=expected, references=[dep], deriver="drv1"
    )
    assert info.nar_hash == expected and info.nar_size == len(data)
    assert info.references == {dep} and info.deriver == "drv1"
    assert store.query(sp) == info
    host = store.host_path(sp)
    assert nar_of(host) == data
    assert stat.S_IMODE(host.stat().st_mode) == 0o555 and host.stat().st_mtime == 1
    assert store.verify() == []
    assert os.listdir(store.root / ".raisin" / "tmp") == []


def test_add_nar_hash_mismatch_leaves_nothing(store: Store, tmp_path: Path) -> None:
    data = nar_of(make_src(tmp_path / "tree"))
    sp = out_path("bad")
    wrong = Hash.of_bytes(b"other")
    with pytest.raises(HashMismatch):
        store.add_nar(io.BytesIO(data).read, sp, expected=wrong, references=[])
    assert not store.is_valid(sp)
    assert listing(store.root) == set()
    assert os.listdir(store.root / ".raisin" / "tmp") == []


# ---- verify, delete, reindex ---------------------------------------------------


def test_verify_detects_modified_file_and_missing_path(store: Store) -> None:
    a = build(store, out_path("a"), simple("original"))
    b = build(store, out_path("b"), simple("bbb"))
    c = build(store, out_path("c"), simple("ccc"))
    assert store.verify() == []
    f = store.host_path(a.path) / "file"
    os.chmod(f, 0o644)
    f.write_text("tampered")
    store.host_path(b.path).chmod(0o755)
    (store.host_path(b.path) / "file").unlink()
    store.host_path(b.path).rmdir()
    damages = store.verify()
    kinds = {(d.path, d.kind) for d in damages}
    assert kinds == {(a.path, "mode"), (a.path, "hash"), (b.path, "missing")}
    hash_damage = next(d for d in damages if d.kind == "hash")
    assert hash_damage.expected == a.nar_hash.sri
    assert hash_damage.actual == nar.hash_path(store.host_path(a.path))[0].sri
    assert store.verify(paths=[c.path]) == []
    assert store.verify(paths=[out_path("zz")]) == [
        Damage(out_path("zz"), "invalid", "registered", "not registered")
    ]


def test_delete_many_respects_referrers(store: Store) -> None:
    lib = build(store, out_path("lib"), simple("lib")).path
    app = build(store, out_path("app"), simple(lib.virtual), candidates=[lib]).path
    with pytest.raises(RaisinError, match="still refers"):
        store.delete(lib)
    assert store.is_valid(lib) and store.host_path(lib).exists()
    store.delete_many([lib, app])
    assert store.all_valid() == []
    assert listing(store.root) == set()
    assert os.listdir(store.root / ".raisin" / "locks") == [".store.lock"]


def test_reindex_adopts_complete_paths_from_another_store(tmp_path: Path) -> None:
    import shutil

    with Store(tmp_path / "a") as a:
        lib = build(a, out_path("lib"), simple("lib"))
        app = build(a, out_path("app"), simple(lib.path.virtual), candidates=[lib.path])
        src = a.add_tree(make_src(tmp_path / "src"), "src")
    with Store(tmp_path / "b") as b:
        b.cleanup()  # creates an empty store
        for info in (lib, app, src):
            shutil.copytree(a.host_path(info.path), b.host_path(info.path), symlinks=True)
        # An interrupted build: not normalised, so not adopted.
        (b.root / out_path("partial").base).mkdir()
        assert b.reindex() == 3
        assert b.query(app.path).references == {lib.path}  # type: ignore[union-attr]
        assert b.query(src.path).ca == "source"  # type: ignore[union-attr]
        assert b.cleanup() == [out_path("partial").base]
        assert b.verify() == []


def test_lost_database_is_rebuilt_not_wiped(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as s:
        lib = build(s, out_path("lib"), simple("lib")).path
        app = build(s, out_path("app"), simple(lib.virtual), candidates=[lib]).path
    for f in (root / ".raisin").glob("db.sqlite*"):
        f.unlink()
    with Store(root) as s:
        assert s.cleanup() == []
        assert s.all_valid() == sorted([lib, app])
        assert s.closure([app]) == {app, lib}


def test_valid_subset_and_derivations(store: Store) -> None:
    real = [build(store, out_path(f"r{i}"), simple(str(i))).path for i in range(3)]
    many = [out_path(f"n{i}") for i in range(1500)] + real
    assert store.valid_subset(many) == set(real)
    store.record_derivation("drvhash1", real[0], "r0")
    assert store.derivation_output("drvhash1") == real[0]
    assert store.derivation_output("other") is None


# ---- locks and cleanup across processes ----------------------------------------


HOLD_LOCK = """
import sys
from raisin_lock.store import Store
from raisin_lock.store_path import StorePath
s = Store(sys.argv[1])
with s.lock(StorePath.parse(sys.argv[2])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_cleanup_spares_a_path_locked_by_another_process(store: Store) -> None:
    busy, stale = out_path("busy"), out_path("stale")
    store.cleanup()
    for sp in (busy, stale):
        store.host_path(sp).mkdir()
        (store.host_path(sp) / "half-written").write_text("...")
    (store.root / "README").write_text("not a store path: never touched")
    child = subprocess.Popen(
        [PY, "-c", HOLD_LOCK, str(store.root), busy.base],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        with store.lock(busy, wait=False) as got:
            assert got is False
        assert store.cleanup() == [stale.base]
        assert store.host_path(busy).exists()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
    assert store.cleanup() == [busy.base]
    assert listing(store.root) == {"README"}


def test_lock_excludes_threads_too(store: Store) -> None:
    sp = out_path("t")
    seen: list[bool] = []
    with store.lock(sp):
        t = threading.Thread(target=lambda: seen.append(store.lock(sp, wait=False).__enter__()))
        t.start()
        t.join()
    assert seen == [False]


HOLD_TMPDIR = """
import sys, time
from raisin_lock.store import Store
with Store(sys.argv[1]).tmpdir("unpack") as d:
    (d / "junk").write_text("x")
    print(d, flush=True)
    time.sleep(60)
"""


def test_cleanup_removes_tmpdirs_of_dead_processes_only(store: Store) -> None:
    store.cleanup()
    child = subprocess.Popen(
        [PY, "-c", HOLD_TMPDIR, str(store.root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    dead = Path(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert dead.exists()
    with store.tmpdir("mine") as live:
        (live / "f").write_text("x")
        os.chmod(live / "f", 0o444)
        removed = store.cleanup()
        assert removed == [f".raisin/tmp/{dead.name}"]
        assert live.exists()
    assert not live.exists() and not dead.exists()


def _racer(root: str, base: str, barrier: Any, q: Any, inside: Any) -> None:
    s = Store(root)
    sp = StorePath.parse(base)
    barrier.wait()
    with s.lock(sp):
        with inside.get_lock():
            inside.value += 1
            crowd = inside.value
        if s.is_valid(sp):
            result = "skipped"
        else:
            host = s.prepare_build(sp)
            host.mkdir()
            (host / "builder").write_text(str(os.getpid()))
            time.sleep(0.3)
            s.register(sp)
            result = "built"
        with inside.get_lock():
            inside.value -= 1
    q.put((result, crowd))
    s.close()


def test_racing_processes_build_a_path_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as s:
        s.cleanup()
    sp = out_path("contended")
    ctx = multiprocessing.get_context("fork")
    barrier, q, inside = ctx.Barrier(4), ctx.Queue(), ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_racer, args=(str(root), sp.base, barrier, q, inside)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [r for r, _ in results] == ["built", "skipped", "skipped", "skipped"]
    assert max(crowd for _, crowd in results) == 1  # never two inside the lock
    with Store(root) as s:
        assert s.all_valid() == [sp]
        assert s.verify() == []


def _writer(root: str, n: int, barrier: Any, lib: str) -> None:
    s = Store(root)
    dep = StorePath.parse(lib)
    barrier.wait()
    for i in range(15):
        sp = out_path(f"w{n}-{i}")
        build(s, sp, simple(f"{n} {i} {dep.virtual}"), candidates=[dep])
        s.record_derivation(f"drv-{n}-{i}", sp, "w")
    s.close()


def test_concurrent_writers_share_the_database(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as s:
        lib = build(s, out_path("lib"), simple("lib")).path
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(root), n, barrier, lib.base)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with Store(root) as s:
        assert len(s.all_valid()) == 46
        assert len(s.referrers(lib)) == 45
        assert s.derivation_output("drv-2-14") == out_path("w2-14")
        assert s.verify() == []


# ---- crash safety: kill -9 at random moments ------------------------------------


WORKER = """
import hashlib, io, os, sys
from pathlib import Path
from raisin_lock import nar
from raisin_lock.store import Store
from raisin_lock.store_path import StorePath

root, seed = sys.argv[1], sys.argv[2]
s = Store(root)
s.cleanup()
valid = s.all_valid()
i = 0
while True:
    i += 1
    tag = f"{seed}-{i}"
    sp = StorePath.make("output", hashlib.sha256(tag.encode()).hexdigest(), "p" + tag)
    deps = valid[-3:]
    with s.lock(sp):
        host = s.prepare_build(sp)
        (host / "sub").mkdir(parents=True)
        for j in range(40):
            ref = deps[j % len(deps)].virtual if deps else ""
            (host / f"f{j}").write_text(f"{tag} {j} {ref}\\n" * 200)
        os.symlink("../f0", host / "sub" / "link")
        s.register(sp, candidates=valid)
    valid.append(sp)
    if i % 3 == 0:
        with s.tmpdir("src") as t:
            (t / "s").mkdir()
            for j in range(30):
                (t / "s" / f"x{j}").write_text(tag * 100)
            valid.append(s.add_tree(t / "s", "src" + tag).path)
    if i % 4 == 0 and hasattr(nar, "restore"):
        buf = io.BytesIO()
        nar.dump(s.host_path(sp), buf.write)
        data = buf.getvalue()
        copy = StorePath.make("output", hashlib.sha256(b"copy" + tag.encode()).hexdigest(), "c" + tag)
        info = s.query(sp)
        s.add_nar(io.BytesIO(data).read, copy, expected=info.nar_hash,
                  references=info.references - {sp})
        valid.append(copy)
    if i % 5 == 0:
        victim = valid[-1]
        if not s.referrers(victim):
            s.delete(victim)
            valid.remove(victim)
"""


def check_consistent(root: Path) -> int:
    with Store(root) as s:
        s.cleanup()
        assert s.verify() == []
        valid = s.all_valid()
        assert listing(root) == {sp.base for sp in valid}
        assert os.listdir(root / ".raisin" / "tmp") == []
        assert s.closure(valid) == set(valid)  # closed under references
        for sp in valid:
            info = s.query(sp)
            assert info is not None
            assert nar.hash_path(s.host_path(sp)) == (info.nar_hash, info.nar_size)
        return len(valid)


def test_kill_9_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random()
    counts = []
    for round_ in range(10):
        child = subprocess.Popen(
            [PY, "-c", WORKER, str(root), str(round_)], stderr=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.4, 1.0))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err
        counts.append(check_consistent(root))
    assert counts[-1] > 0, "the worker never registered anything"


# ---------------------------------------------------------------- trees past PATH_MAX


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied by ``rm -rf`` afterwards even if a test fails: pytest's own cleanup
    (shutil.rmtree, recursive) cannot remove trees thousands of levels deep."""
    yield tmp_path
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], capture_output=True, check=False)
    tmp_path.mkdir()


def _descend(top: Path, levels: int, name: str = "d") -> int:
    """An fd on ``top/name/.../name`` (``levels`` deep), reached one component at a time."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        new = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = new
    return fd


def _deep_project(base: Path) -> Path:
    for c in ("deep", "other"):
        (base / "src" / c).mkdir(parents=True)
        (base / "src" / c / "x.txt").write_text(f"{c}\n")
    (base / "raisin.toml").write_text(
        """
[components.deep]
source = { path = "src/deep" }
version = "1"
# 25 x 100 levels: `cd -P` keeps dash off the logical path, which cannot pass PATH_MAX
build = [
  "p=$(printf 'd/%.0s' $(seq 100)); mkdir $out && cd $out && for i in $(seq 25); do mkdir -p $p && cd -P $p; done && cp $src/x.txt f",
]

[components.other]
source = { path = "src/other" }
version = "1"
build = ["install -Dm644 x.txt $out/x.txt"]
"""
    )
    return base


def test_an_output_nesting_2500_directories_is_stored_verified_and_collected(
    deep_tmp: Path,
) -> None:
    """$out 2,500 levels deep (paths far past PATH_MAX): realize registers it, verify tells the
    truth about it, a crashed leftover that deep is swept, and gc deletes it; no manual cleanup."""
    proj = _deep_project(deep_tmp / "p")
    r = raisin("realize", "deep", cwd=proj)
    assert r.code == 0, r
    r = raisin("show", "--json", cwd=proj)
    out = Path(json.loads(r.out)["components"]["deep"]["out"])
    fd = _descend(out, 2500)
    try:
        st = os.stat("f", dir_fd=fd, follow_symlinks=False)
        assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o444, 1)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o555
    finally:
        os.close(fd)
    r = raisin("store", "verify", cwd=proj)
    assert r.code == 0, r
    h = raisin("store", "hash", str(out), cwd=proj)
    assert h.code == 0 and h.out.startswith("sha256-"), h

    # Damage at the bottom is found (verify is truthful), and reported, not a traceback.
    fd = _descend(out, 2500)
    try:
        os.chmod("f", 0o644, dir_fd=fd)
        r = raisin("store", "verify", cwd=proj)
        assert r.code == 1 and "/d/d/f: mode 0o644" in r.out and "Traceback" not in r.err, r
        os.chmod("f", 0o444, dir_fd=fd)
        os.utime("f", (1, 1), dir_fd=fd)
    finally:
        os.close(fd)
    assert raisin("store", "verify", cwd=proj).code == 0

    # A leftover of a crashed process (dead pid), read-only and 3,000 levels deep.
    dead = _dead_pid()
    leftover = proj / "store" / ".raisin" / "tmp" / f"nar-{dead}-crashed"
    _deep_dirs(leftover, 3000)
    r = raisin("realize", "other", cwd=proj)
    assert r.code == 0, r
    assert os.listdir(proj / "store" / ".raisin" / "tmp") == []

    # Not wanted any more: gc deletes it, whole.
    text = (proj / "raisin.toml").read_text()
    (proj / "raisin.toml").write_text(text[text.index("[components.other]") :])
    assert raisin("lock", cwd=proj).code == 0
    r = raisin("gc", cwd=proj)
    assert r.code == 0 and out.name in r.out, r
    assert not os.path.lexists(out)
    assert raisin("store", "verify", cwd=proj).code == 0


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _deep_dirs(top: Path, levels: int) -> None:
    """``top/d/d/...`` with a file at the bottom, every directory read-only on the way back."""
    os.mkdir(top)
    fds = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    for _ in range(levels):
        os.mkdir("d", dir_fd=fds[-1])
        fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        if len(fds) > 100:
            os.fchmod(fds[-101], 0o555)
            os.close(fds.pop(-101))
    fd = os.open("f", os.O_WRONLY | os.O_CREAT, 0o444, dir_fd=fds[-1])
    os.close(fd)
    for fd in reversed(fds):
        os.fchmod(fd, 0o555)
        os.close(fd)
