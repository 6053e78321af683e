"""NAR dump, hash and restore, checked against the real Nix (``nix-bin``).

The oracle is ``nix-store --dump`` / ``nix-hash --type sha256`` /
``nix-store --restore``; malicious archives are written by hand with the small
independent encoder below, so a bug in raisin's encoder cannot hide itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from raisin_lock.errors import InputError, UnsafeArchive
from raisin_lock.nar import CHUNK, dump, hash_path, iter_dump, restore

pytestmark = pytest.mark.skipif(
    not (shutil.which("nix-store") and shutil.which("nix-hash")),
    reason="nix-bin (nix-store, nix-hash) not installed",
)
NIX_STORE = "nix-store"
NIX_HASH = "nix-hash"
MiB = 1 << 20


# ----------------------------------------------------------------------------- helpers


def nix_dump(path: Path | bytes) -> bytes:
    return subprocess.run([NIX_STORE, "--dump", path], capture_output=True, check=True).stdout


def nix_hash(path: Path | bytes) -> str:
    out = subprocess.run([NIX_HASH, "--type", "sha256", path], capture_output=True, check=True)
    return out.stdout.decode().strip()


def nix_restore(nar: bytes, dest: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [NIX_STORE, "--restore", dest], input=nar, capture_output=True, check=False
    )


def raisin_dump(path: Path | str | bytes) -> bytes:
    buf = io.BytesIO()
    size = dump(path, buf.write)
    assert size == len(buf.getvalue())
    return buf.getvalue()


def restore_bytes(nar: bytes, dest: Path, **kw: object) -> tuple[str, int]:
    h, size = restore(io.BytesIO(nar).read, dest, **kw)  # type: ignore[arg-type,unused-ignore]
    return h.hex, size


def rm_rf(path: Path | bytes) -> None:
    """Remove any tree, however deep (shutil.rmtree recurses in Python)."""
    subprocess.run(["chmod", "-R", "u+w", path], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--", path], check=True)


def deep_tree(base: Path, levels: int, name: bytes = b"d") -> None:
    """``base/name/name/.../leaf`` with a file and a symlink at the bottom.

    Built with directory fds so it works beyond PATH_MAX.
    """
    os.mkdir(base)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(levels):
        os.mkdir(name, dir_fd=fd)
        if i % 100 == 0:  # some siblings after the subdirectory, to climb back into
            sib = os.open(b"zz%d" % i, os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=fd)
            os.write(sib, b"level %d" % i)
            os.close(sib)
        new = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = new
    leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(leaf, b"bottom\n")
    os.close(leaf)
    os.symlink(b"leaf", b"link", dir_fd=fd)
    os.close(fd)


# A second, deliberately naive NAR encoder for hand-made (and malicious) archives.


def s(b: bytes | str) -> bytes:
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b + b"\0" * (-len(b) % 8)


def toks(*words: bytes | str) -> bytes:
    return b"".join(map(s, words))


def reg(data: bytes = b"", exe: bool = False) -> bytes:
    exe_part = s("executable") + s("") if exe else b""
    return s("(") + s("type") + s("regular") + exe_part + s("contents") + s(data) + s(")")


def link(target: bytes | str) -> bytes:
    return s("(") + s("type") + s("symlink") + s("target") + s(target) + s(")")


def dir_(*entries: tuple[bytes | str, bytes]) -> bytes:
    out = s("(") + s("type") + s("directory")
    for name, node in entries:
        out += s("entry") + s("(") + s("name") + s(name) + s("node") + node + s(")")
    return out + s(")")


def nar(node: bytes) -> bytes:
    return s("nix-archive-1") + node


# ----------------------------------------------------------------------------- trees


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[Path]:
    """One tree with every case a NAR must get right."""
    root = tmp_path / "tree"
    root.mkdir()
    files = {
        "plain.txt": b"hello\n",
        "empty": b"",
        "exact8": b"12345678",
        "pad1": b"1",
        "pad7": b"1234567",
        "pad9": b"123456789",
        "with space and\ttab": b"s",
        "new\nline": b"n",
        "ünïcödé.txt": "ünïcödé\n".encode(),
        "emoji-\U0001f600": b"smile",
        "small-boundary": os.urandom(128 << 10),
        "small-boundary+1": os.urandom((128 << 10) + 1),
        "random-3MB-odd": os.urandom(3 * MiB + 5),
        "random-exe-200K": os.urandom(200_000),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "random-exe-200K").chmod(0o755)
    # Exec bit: Nix looks at S_IXUSR only.
    for name, mode in {"x-user": 0o700, "x-all": 0o755, "x-group": 0o650, "x-other": 0o605,
                       "x-none": 0o644, "x-readonly": 0o500, "x-empty": 0o755}.items():  # fmt: skip
        (root / name).write_bytes(b"#!/bin/sh\n" if name != "x-empty" else b"")
        (root / name).chmod(mode)
    # Raw byte names, sorted by bytes: U+E000 (EE 80 80) sorts before a lone 0xF0 byte,
    # although as Python str (surrogate-escaped) it sorts after.
    for raw in (b"\xee\x80\x80", b"\xf0", b"\xff\xfe", b"A", b"a", b"a.b", b"a-b", b"a0", b"_"):
        with open(os.path.join(bytes(root), raw), "wb") as f:
            f.write(raw)
    sub = root / "sub" / "deeper"
    sub.mkdir(parents=True)
    (sub / "f").write_bytes(b"deep\n")
    (root / "empty-dir").mkdir()
    (root / "empty-dirs" / "a" / "b").mkdir(parents=True)
    (root / "ro-dir").mkdir()
    (root / "ro-dir" / "f").write_bytes(b"x")
    (root / "ro-dir").chmod(0o555)
    os.symlink("plain.txt", root / "link-file")
    os.symlink("sub", root / "link-dir")
    os.symlink("does/not/exist", root / "link-dangling")
    os.symlink("sub/deeper/../deeper/f", root / "sub" / "link-up")
    os.symlink("../..", root / "sub" / "deeper" / "link-root")
    os.symlink("/raisin/store/abc-dep/lib", root / "link-store")
    os.symlink("ünï → target", root / "link-unicode")
    os.symlink(b"\xff", os.path.join(bytes(root), b"link-raw"))
    os.link(root / "plain.txt", root / "hardlink")
    os.utime(root / "plain.txt", (0, 0))
    yield root
    (root / "ro-dir").chmod(0o755)


# ----------------------------------------------------------------------------- dump / hash


def test_dump_matches_nix_on_every_kind_of_entry(everything: Path) -> None:
    expected = nix_dump(everything)
    assert raisin_dump(everything) == expected
    assert raisin_dump(str(everything)) == expected
    assert raisin_dump(bytes(everything)) == expected
    h, size = hash_path(everything)
    assert h.hex == nix_hash(everything) == hashlib.sha256(expected).hexdigest()
    assert size == len(expected)
    assert h.sri.startswith("sha256-")


def test_iter_dump_streams_bounded_bytes_chunks(everything: Path) -> None:
    chunks = list(iter_dump(everything))
    assert all(type(c) is bytes and 0 < len(c) <= CHUNK for c in chunks)
    assert len(chunks) > 3
    assert b"".join(chunks) == nix_dump(everything)


@pytest.mark.parametrize("kind", ["file", "exe", "empty", "symlink", "dangling", "emptydir"])
def test_root_of_every_type(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "root"
    if kind in ("file", "exe"):
        p.write_bytes(os.urandom(1000))
        p.chmod(0o755 if kind == "exe" else 0o644)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "symlink":
        os.symlink("/raisin/store/abc-x", p)
    elif kind == "dangling":
        os.symlink("nowhere", p)
    else:
        p.mkdir()
    expected = nix_dump(p)
    assert raisin_dump(p) == expected
    h, size = hash_path(p)
    assert (h.hex, size) == (nix_hash(p), len(expected))


def test_symlink_root_is_archived_not_followed(tmp_path: Path, everything: Path) -> None:
    os.symlink(everything, tmp_path / "ln")
    assert raisin_dump(tmp_path / "ln") == nix_dump(tmp_path / "ln") == nar(link(str(everything)))


def test_trailing_slash_follows_a_symlinked_root_like_nix(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"hi\n")
    os.symlink("real", tmp_path / "link")
    for p in (f"{tmp_path}/link/", f"{tmp_path}/link"):
        assert raisin_dump(p) == nix_dump(p.encode())
        assert hash_path(p)[0].hex == nix_hash(p.encode())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads_settle(expected: int) -> int:
    """This process's thread count, once it is down to ``expected`` (or after 2 s)."""
    for _ in range(200):
        n = len(os.listdir("/proc/self/task"))
        if n <= expected:
            break
        time.sleep(0.01)
    return n


def test_errors_late_in_a_big_tree_leak_nothing(tmp_path: Path) -> None:
    """The reader thread fails after many chunks are in flight; no fd or thread is left."""
    root = tmp_path / "t"
    root.mkdir()
    for i in range(40):
        (root / f"f{i:02}").write_bytes(os.urandom(600_000 if i % 2 else 90_000))
    os.mkfifo(root / "zz-pipe")
    before = open_fds()
    threads = len(os.listdir("/proc/self/task"))
    for _ in range(3):
        with pytest.raises(ValueError, match="zz-pipe"):
            hash_path(root)
        with pytest.raises(ValueError, match="zz-pipe"):
            dump(root, lambda b: None)
    gen = iter_dump(root)
    next(gen)
    gen.close()
    assert open_fds() == before
    assert threads_settle(threads) == threads


def test_special_files_are_refused_with_their_path(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_bytes(b"a")
    os.mkfifo(root / "pipe")
    for op in (lambda: raisin_dump(root), lambda: hash_path(root), lambda: list(iter_dump(root))):
        with pytest.raises(ValueError, match=r"t/pipe.*fifo"):
            op()
    with pytest.raises(ValueError, match="fifo"):
        hash_path(root / "pipe")

    short = Path(tempfile.mkdtemp(dir="/tmp"))  # AF_UNIX paths are short
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(short / "sock"))
        with pytest.raises(ValueError, match=r"sock.*socket"):
            hash_path(short)
        sock.close()
    finally:
        shutil.rmtree(short)


def test_device_files_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    try:
        os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    with pytest.raises(ValueError, match=r"t/null.*device"):
        raisin_dump(root)


def test_many_small_files_match_nix_hash(tmp_path: Path) -> None:
    """~16 MB of small files: more batches than hash_path's ring has buffers."""
    root = tmp_path / "many"
    for d in range(40):
        sub = root / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(50):
            (sub / f"f{f}").write_bytes(os.urandom((d * 50 + f) * 7919 % 16000))
    h, size = hash_path(root)
    assert size > 15 * MiB
    assert h.hex == nix_hash(root)
    assert raisin_dump(root) == nix_dump(root)


def test_big_sparse_file_with_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    with open(root / "sparse", "wb") as f:
        f.truncate(150 * MiB + 3)
    (root / "tail").write_bytes(b"after the big one")
    expected = nix_hash(root)

    tracemalloc.start()
    try:
        h, size = hash_path(root)
        peak_hash = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        dumped = dump(root, digest.update)
        peak_dump = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert h.hex == expected == digest.hexdigest()
    assert size == dumped > 150 * MiB
    assert peak_hash < 32 * MiB, peak_hash
    assert peak_dump < 32 * MiB, peak_dump


def test_deep_nesting_dump_hash_restore(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    deep_tree(root, 1500)
    try:
        expected = nix_dump(root)
        assert raisin_dump(root) == expected
        assert hash_path(root)[0].hex == hashlib.sha256(expected).hexdigest()
        dest = tmp_path / "restored"
        digest, size = restore_bytes(expected, dest)
        assert (digest, size) == (hashlib.sha256(expected).hexdigest(), len(expected))
        assert raisin_dump(dest) == expected
    finally:
        rm_rf(tmp_path)


def test_thousands_of_empty_directories_keep_chunks_bounded(tmp_path: Path) -> None:
    root = tmp_path / "dirs"
    root.mkdir()
    for i in range(3000):
        (root / (f"{i:05}" + "d" * 200)).mkdir()
    chunks = list(iter_dump(root))
    assert max(map(len, chunks)) <= CHUNK < sum(map(len, chunks))
    assert b"".join(chunks) == nix_dump(root)
    assert hash_path(root)[0].hex == nix_hash(root)


def test_deeper_than_path_max(tmp_path: Path) -> None:
    """Nix cannot go past PATH_MAX (it uses whole paths); raisin works per directory."""
    root = tmp_path / "deeper"
    deep_tree(root, 200, name=b"n" * 40)  # ~8200 bytes of path
    try:
        data = raisin_dump(root)
        h, size = hash_path(root)
        assert (h.hex, size) == (hashlib.sha256(data).hexdigest(), len(data))
        restore_bytes(data, tmp_path / "copy")
        assert raisin_dump(tmp_path / "copy") == data
    finally:
        rm_rf(tmp_path)


# ----------------------------------------------------------------------------- restore


def test_restore_round_trip_and_agrees_with_nix_restore(tmp_path: Path, everything: Path) -> None:
    data = raisin_dump(everything)
    mine = tmp_path / "mine"
    digest, size = restore_bytes(data, mine)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert raisin_dump(mine) == data

    theirs = tmp_path / "theirs"
    assert nix_restore(data, theirs).returncode == 0  # Nix accepts raisin's NAR
    assert nix_dump(theirs) == nix_dump(mine) == data
    for dirpath, dirnames, filenames in os.walk(mine):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if os.path.islink(os.path.join(dirpath, name)):
                continue
            if name in dirnames:
                assert st.st_mode & 0o7777 == 0o755
            else:
                assert st.st_mode & 0o7777 in (0o444, 0o555)
                theirs_st = os.lstat(os.path.join(theirs, os.path.relpath(dirpath, mine), name))
                assert bool(st.st_mode & 0o100) == bool(theirs_st.st_mode & 0o100)


def test_restore_single_file_and_store_symlink(tmp_path: Path) -> None:
    assert restore_bytes(nar(reg(b"#!/bin/sh\n", exe=True)), tmp_path / "f")[1] > 0
    assert (tmp_path / "f").read_bytes() == b"#!/bin/sh\n"
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o555
    restore_bytes(nar(link("/raisin/store/abc-dep")), tmp_path / "l")
    assert os.readlink(tmp_path / "l") == "/raisin/store/abc-dep"


def test_restore_big_file_streams_with_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with open(src, "wb") as f:
        f.truncate(120 * MiB + 1)
    r, w = os.pipe()

    def feed() -> None:
        with open(w, "wb") as pipe:
            dump(src, pipe.write)

    t = threading.Thread(target=feed)
    t.start()
    tracemalloc.start()
    try:
        with open(r, "rb", buffering=0) as pipe:
            h, size = restore(pipe.read, tmp_path / "dst")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        t.join()
    assert peak < 32 * MiB, peak
    assert (h, size) == hash_path(src)
    assert os.path.getsize(tmp_path / "dst") == 120 * MiB + 1


def test_big_files_are_written_behind_and_a_cut_leaves_nothing(tmp_path: Path) -> None:
    """Files of 8 MiB or more are preallocated and written behind by one writer thread (which
    holds duplicated fds for a moment): the bytes are exact, a NAR cut off inside such a file
    removes the partial, already full-sized file, and every duplicated fd is closed again."""
    a, b = os.urandom(20 * MiB + 5), os.urandom(9 * MiB)
    data = nar(dir_(("a", reg(a)), ("b", reg(b, exe=True))))
    fds = open_fds()
    h, size = restore_bytes(data, tmp_path / "ok")
    assert (h, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (tmp_path / "ok" / "a").read_bytes() == a
    assert (tmp_path / "ok" / "b").read_bytes() == b
    assert os.stat(tmp_path / "ok" / "b").st_mode & 0o777 == 0o555
    rm_rf(tmp_path / "ok")
    for cut in (len(data) // 3, len(data) - 9 * MiB // 2):
        with pytest.raises(UnsafeArchive, match="truncated NAR"):
            restore_bytes(data[:cut], tmp_path / "dest")
        assert os.listdir(tmp_path) == [], cut
    for _ in range(200):  # the writer closes each duplicate once it has started that range
        if open_fds() <= fds:
            break
        time.sleep(0.01)
    assert open_fds() <= fds
    writers = [t for t in threading.enumerate() if t.name == "raisin-writeback"]
    assert len(writers) == 1


ANY_TARGET = {
    "absolute symlink": nar(dir_(("l", link("/etc/passwd")))),
    "store prefix trick": nar(dir_(("l", link("/raisin/store/../../etc/passwd")))),
    "store prefix lookalike": nar(dir_(("l", link("/raisin/storex/y")))),
    "escaping symlink": nar(dir_(("sub", dir_(("l", link("../../x")))))),
    "escaping from root": nar(dir_(("l", link("../x")))),
    "relative root symlink": nar(link("x")),
    "absolute root symlink": nar(link("/etc")),
    "links combining into an escape": nar(
        dir_(("a", dir_(("b", dir_(("s", link("../..")), ("x", link("s/../../../y")))))))
    ),
    "link through a store link": nar(
        dir_(("s", link("/raisin/store/abc-x")), ("t", link("s/../../../etc")))
    ),
}


@pytest.mark.parametrize("case", sorted(ANY_TARGET))
def test_any_symlink_target_is_restored_as_nix_does(tmp_path: Path, case: str) -> None:
    """Targets are data (bin/env -> /usr/bin/env is a normal output): restored byte for byte,
    the same tree nix-store --restore makes, and the hash of the NAR."""
    data = ANY_TARGET[case]
    h, size = restore_bytes(data, tmp_path / "mine")
    assert (h, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert raisin_dump(tmp_path / "mine") == data
    subprocess.run(["nix-store", "--restore", str(tmp_path / "nix")], input=data, check=True)
    assert raisin_dump(tmp_path / "nix") == data


def test_restore_never_writes_through_a_symlink(tmp_path: Path) -> None:
    """A link to a directory outside, and entries after it: nothing lands outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    data = nar(dir_(("a", link(str(outside))), ("b", dir_(("c", reg(b"x")))), ("l", link(".."))))
    (tmp_path / "in").mkdir()
    restore_bytes(data, tmp_path / "in" / "dest")
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path / "in" / "dest")) == ["a", "b", "l"]
    assert os.readlink(tmp_path / "in" / "dest" / "a") == str(outside)


def test_restore_stops_exactly_at_the_end_when_asked(tmp_path: Path) -> None:
    data = nar(dir_(("a", reg(b"x"))))
    stream = io.BytesIO(data + b"NEXT")
    h, size = restore(stream.read, tmp_path / "d", require_eof=False)
    assert size == len(data) and stream.read() == b"NEXT"
    assert h.hex == hashlib.sha256(data).hexdigest()


def test_restore_refuses_existing_dest_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        restore_bytes(nar(reg(b"x")), tmp_path / "d")
    assert (tmp_path / "d" / "keep").read_bytes() == b"mine"


GOOD = nar(dir_(("a", reg(b"x")), ("b", dir_(("c", reg(b"yy", exe=True)))), ("l", link("b/c"))))

MALICIOUS = {
    "slash in name": (nar(dir_(("a/b", reg()))), "invalid file name"),
    "dot-dot name": (nar(dir_(("..", reg()))), "invalid file name"),
    "dot name": (nar(dir_((".", reg()))), "invalid file name"),
    "empty name": (nar(dir_(("", reg()))), "invalid file name"),
    "NUL in name": (nar(dir_(("a\0b", reg()))), "invalid file name"),
    "unsorted": (nar(dir_(("b", reg()), ("a", reg()))), "not sorted"),
    "duplicate": (nar(dir_(("a", reg(b"1")), ("a", reg(b"2")))), "not sorted"),
    "duplicate dir": (nar(dir_(("a", dir_()), ("a", dir_(("x", reg()))))), "not sorted"),
    "absurd name length": (
        toks("nix-archive-1", "(", "type", "directory", "entry", "(", "name")
        + struct.pack("<Q", 1 << 60),
        "entry name of 1152921504606846976 bytes",
    ),
    "5 KiB name": (nar(dir_(("n" * 5000, reg()))), "entry name of 5000 bytes"),
    "empty symlink target": (nar(dir_(("l", link("")))), "invalid symlink target"),
    "NUL in symlink target": (nar(dir_(("l", link("a\0b")))), "invalid symlink target"),
    "trailing garbage": (GOOD + b"garbage!", "trailing data"),
    "bad magic": (s("nix-archive-2") + reg(), "expected 'nix-archive-1'"),
    "unknown node type": (nar(toks("(", "type", "fifo", ")")), "expected a node type"),
    "regular without contents": (nar(toks("(", "type", "regular", ")")), "malformed"),
    "executable after contents": (
        nar(toks("(", "type", "regular", "contents", "x", "executable", "", ")")),
        "expected ')'",
    ),
    "executable with a value": (
        nar(toks("(", "type", "regular", "executable", "yes", "contents", "", ")")),
        "malformed",
    ),
    "bad padding in contents": (
        GOOD.replace(b"x\0\0\0\0\0\0\0", b"x\0\0\0\0\0\0\1"),
        "non-zero padding",
    ),
    "bad padding in a name": (
        GOOD.replace(b"\x01\0\0\0\0\0\0\0b\0\0\0\0\0\0\0", b"\x01\0\0\0\0\0\0\0b\0\0\0\0\0\x01\0"),
        "non-zero padding",
    ),
    "entry without node": (
        nar(toks("(", "type", "directory", "entry", "(", "name", "a", ")")),
        "expected 'node'",
    ),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_nar_is_refused_and_nothing_is_left(tmp_path: Path, case: str) -> None:
    data, message = MALICIOUS[case]
    with pytest.raises(UnsafeArchive, match=re.escape(message)) as info:
        restore_bytes(data, tmp_path / "dest")
    assert isinstance(info.value, InputError) and info.value.exit_code == 2
    assert os.listdir(tmp_path) == []


def test_truncations_are_refused_and_cleaned_up(tmp_path: Path) -> None:
    data = GOOD
    assert restore_bytes(data, tmp_path / "ok")[1] == len(data)
    rm_rf(tmp_path / "ok")
    token_boundaries = range(0, len(data), 8)
    inside_tokens = range(3, len(data), 5)
    for cut in sorted({*token_boundaries, *inside_tokens}):
        with pytest.raises(UnsafeArchive, match="truncated NAR|malformed"):
            restore_bytes(data[:cut], tmp_path / "dest")
        assert os.listdir(tmp_path) == [], cut


def test_max_size_bounds_the_download(tmp_path: Path) -> None:
    data = nar(dir_(("a", reg(b"x" * 1000))))
    with pytest.raises(UnsafeArchive, match="larger than"):
        restore_bytes(data, tmp_path / "dest", max_size=len(data) - 1)
    assert os.listdir(tmp_path) == []
    assert restore_bytes(data, tmp_path / "dest", max_size=len(data))[1] == len(data)


def test_restore_failure_midway_removes_a_deep_partial_tree(tmp_path: Path) -> None:
    deep = tmp_path / "src"
    deep_tree(deep, 300)
    data = raisin_dump(deep)
    rm_rf(deep)
    with pytest.raises(UnsafeArchive, match="truncated"):
        restore_bytes(data[: len(data) - 40], tmp_path / "dest")
    assert os.listdir(tmp_path) == []


def test_restore_handles_short_reads(tmp_path: Path, everything: Path) -> None:
    """A network stream returns fewer bytes than asked; restore must keep reading."""
    data = raisin_dump(everything)
    stream = io.BytesIO(data)
    sizes = iter(range(1, 1 << 30))

    def read(n: int) -> bytes:
        return stream.read(min(n, next(sizes) % 5000 + 1))

    h, size = restore(read, tmp_path / "dest")
    assert (h.hex, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert raisin_dump(tmp_path / "dest") == data


@pytest.mark.slow
def test_real_debian_source_package_matches_nix(tmp_path: Path) -> None:
    """SeaBIOS' Debian source, fetched and unpacked by raisin (apt-get source +
    dpkg-source -x): raisin's NAR bytes and hash equal nix-store --dump / nix-hash."""
    import base64
    import json

    from conftest import RAISIN, raisin

    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None:
        pytest.skip("needs a Debian/Ubuntu host (apt-get, dpkg-source)")
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "raisin.toml").write_text(
        '[components.seabios]\nsource = { debian = "seabios", version = "1.16.2-1" }\n'
        'version = "1.16.2"\nbuild = ["mkdir -p $out"]\n'
    )
    r = raisin("lock", cwd=proj, timeout=900)
    assert r.code == 0, r
    locked = json.loads(raisin("show", "--json", cwd=proj).out)["components"]["seabios"]["nar_hash"]
    (src,) = [p for p in (proj / "store").iterdir() if p.name.endswith("-seabios-debian-source")]
    assert sum(len(f) for _, _, f in os.walk(src)) > 200  # a real tree (SeaBIOS 1.16.2: ~300 files)
    nix = subprocess.run(["nix-store", "--dump", str(src)], capture_output=True, check=True).stdout
    ours = subprocess.run(
        [RAISIN, "store", "dump", str(src)], capture_output=True, check=True
    ).stdout
    assert ours == nix
    hexd = subprocess.run(
        ["nix-hash", "--type", "sha256", str(src)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert locked == "sha256-" + base64.b64encode(bytes.fromhex(hexd)).decode()
    assert hash_path(src)[0].hex == hexd
