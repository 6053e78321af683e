"""raisin realize: hermetic builds into the store, end to end through the CLI."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import RAISIN, nix_hash, raisin

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _show(proj: Path, *extra: str) -> dict:
    r = raisin(*extra, "show", "--json", cwd=proj)
    assert r.code == 0, r
    return json.loads(r.out)["components"]


def test_demo_realizes_and_tool_runs(demo):
    r = raisin("realize", cwd=demo)
    assert r.code == 0, r
    info = _show(demo)
    assert all(c["built"] for c in info.values())
    hello = Path(info["hello"]["out"]) / "usr/bin/hello"
    out = subprocess.run([str(hello), "raisin"], capture_output=True, text=True, check=True).stdout
    assert out == "Hello, raisin!\nBuilt by raisin from pinned sources.\n"
    # read-only, normalised
    st = hello.stat()
    assert st.st_mode & 0o222 == 0 and int(st.st_mtime) == 1
    # a second realize builds nothing
    r = raisin("realize", cwd=demo)
    assert r.code == 0 and "nothing to build" in r.err
    assert raisin("store", "verify", cwd=demo).code == 0
    log = raisin("log", "hello", cwd=demo)
    assert log.code == 0 and "+ install -Dm755 hello $out/usr/bin/hello" in log.out


def test_same_lock_two_stores_bit_identical(demo, tmp_path):
    assert raisin("lock", cwd=demo).code == 0
    env_a = {"TZ": "America/New_York", "LC_ALL": "C", "LANG": "C"}
    env_b = {"TZ": "Asia/Tokyo", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    store_a, store_b = tmp_path / "a" / "store", tmp_path / "bb" / "other-store"
    old = os.umask(0o077)
    try:
        ra = raisin("--store", str(store_a), "realize", cwd=demo, env=env_a)
    finally:
        os.umask(old)
    rb = raisin("--store", str(store_b), "realize", cwd=demo, env=env_b)
    assert ra.code == 0, ra
    assert rb.code == 0, rb
    a = _show(demo, "--store", str(store_a))
    b = _show(demo, "--store", str(store_b))
    for name in a:
        pa, pb = Path(a[name]["out"]), Path(b[name]["out"])
        assert pa.name == pb.name
        assert pa.parent == store_a and pb.parent == store_b
        assert nix_hash(pa) == nix_hash(pb), name


def test_check_passes_on_demo_and_fails_on_timestamp(demo):
    assert raisin("realize", cwd=demo).code == 0
    r = raisin("realize", "--check", cwd=demo)
    assert r.code == 0, r
    (demo / "src" / "clock").mkdir()
    (demo / "src" / "clock" / "x").write_text("x\n")
    with open(demo / "raisin.toml", "a") as f:
        f.write(
            '\n[components.clock]\nsource = { path = "src/clock" }\n'
            'build = ["mkdir -p $out/share", "date +%s%N > $out/share/stamp", "cp x $out/share/x"]\n'
        )
    assert raisin("realize", "clock", cwd=demo).code == 0
    r = raisin("realize", "--check", "clock", cwd=demo)
    assert r.code == 1, r
    assert "share/stamp" in r.err and "share/x" not in r.err


def test_builds_are_hermetic(demo, tmp_path):
    """No host network, no caller's home, no store path that is not a dependency."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    port = srv.getsockname()[1]
    accepted = []

    def accept() -> None:
        srv.settimeout(20)
        try:
            conn, _ = srv.accept()
            accepted.append(conn)
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    home = Path(os.path.expanduser("~"))
    secret = home / f".raisin-test-secret-{os.getpid()}"
    secret.write_text("secret\n")
    try:
        assert raisin("realize", cwd=demo).code == 0
        (demo / "src" / "probe").mkdir()
        (demo / "src" / "probe" / "p").write_text("p\n")
        with open(demo / "raisin.toml", "a") as f:
            f.write(
                f"""
[components.probe]
source = {{ path = "src/probe" }}
deps = ["greet"]
build = [
  "mkdir -p $out",
  "if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null || python3 -c 'import socket; socket.create_connection((\\"127.0.0.1\\", {port}), 2)' 2>/dev/null; then echo connected > $out/net; else echo refused > $out/net; fi",
  "if cat {secret} > /dev/null 2>&1; then echo readable > $out/home; else echo blocked > $out/home; fi",
  "ls /raisin/store > $out/store-listing",
  "echo $HOME > $out/homevar",
  "ls {demo} > /dev/null 2>&1 && echo visible > $out/project || echo hidden > $out/project",
]
"""
            )
        r = raisin("realize", "probe", cwd=demo)
        assert r.code == 0, r
        info = _show(demo)
        out = Path(info["probe"]["out"])
        assert (out / "net").read_text() == "refused\n"
        assert not accepted
        assert (out / "home").read_text() == "blocked\n"
        assert (out / "homevar").read_text() == "/homeless-shelter\n"
        assert (out / "project").read_text() == "hidden\n"
        listing = set((out / "store-listing").read_text().split())
        greet = Path(info["greet"]["out"]).name
        hello = Path(info["hello"]["out"]).name
        assert greet in listing and out.name in listing
        assert hello not in listing  # valid, but not a dependency
        assert len(listing) == 3  # greet, probe's source, probe's output
    finally:
        secret.unlink()
        srv.close()


def test_failure_shows_log_tail_and_keep_going(demo):
    (demo / "src" / "bad").mkdir()
    (demo / "src" / "bad" / "f").write_text("f\n")
    with open(demo / "raisin.toml", "a") as f:
        f.write(
            '\n[components.bad]\nsource = { path = "src/bad" }\n'
            'build = ["for i in $(seq 1 40); do echo line-$i; done", "echo about to fail >&2", "false"]\n'
            '\n[components.after-bad]\nsource = { path = "src/bad" }\ndeps = ["bad"]\nbuild = ["mkdir $out"]\n'
        )
    r = raisin("realize", "-j", "1", "--keep-going", cwd=demo)
    assert r.code == 1, r
    assert "bad: build failed" in r.err
    assert "line-40" in r.err and "line-10" not in r.err  # the last 25 lines only
    assert "about to fail" in r.err and "raisin log bad" in r.err
    assert "after-bad" in r.err  # skipped: its dependency failed
    info = _show(demo)
    assert info["hello"]["built"] and not info["bad"]["built"] and not info["after-bad"]["built"]
    log = raisin("log", "bad", cwd=demo)
    assert "line-1\n" in log.out and "+ false" in log.out
    assert raisin("store", "verify", cwd=demo).code == 0


def test_source_hash_mismatch_exit_2_nothing_registered(demo):
    assert raisin("lock", cwd=demo).code == 0
    (demo / "src" / "motd" / "motd.txt").write_text("tampered\n")
    # `realize` would re-lock the edit (the developer's loop); --frozen builds the lock as
    # it is, and a fresh store must read the directory again, and finds it changed
    fresh = demo.parent / "fresh-store"
    r = raisin("--store", str(fresh), "realize", "--frozen", cwd=demo)
    assert r.code == 2, r
    assert "components.motd" in r.err and "expected sha256-" in r.err and "found sha256-" in r.err
    assert "Traceback" not in r.err
    info = _show(demo, "--store", str(fresh))
    assert not info["motd"]["built"] and not info["hello"]["built"]
    assert not [p for p in fresh.iterdir() if p.name.endswith("-motd-source")]


def test_realize_from_a_lock_alone(demo, tmp_path):
    assert raisin("lock", cwd=demo).code == 0
    other = tmp_path / "bare"
    shutil.copytree(demo / "src", other / "src")
    shutil.copy(demo / "raisin.lock", other / "handed-over.lock")
    r = raisin(
        "--store",
        str(tmp_path / "st"),
        "realize",
        "--lock",
        str(other / "handed-over.lock"),
        cwd=other,
    )
    assert r.code == 0, r
    hello = list((tmp_path / "st").glob("*-hello-1.2"))
    assert len(hello) == 1
    assert subprocess.run([str(hello[0] / "usr/bin/hello")], capture_output=True).returncode == 0


def test_sandbox_none_warns_and_marks(demo):
    r = raisin("realize", "--sandbox", "none", "motd", cwd=demo)
    assert r.code == 0, r
    assert "without a sandbox" in r.err
    import sqlite3

    db = sqlite3.connect(demo / "store" / ".raisin" / "db.sqlite")
    rows = db.execute("select path, sandboxed from valid_paths").fetchall()
    assert any(p.endswith("-motd-1.0") and s == 0 for p, s in rows)


def _chain_manifest(proj: Path, round_: int) -> None:
    (proj / "src").mkdir(exist_ok=True)
    (proj / "src" / "f").write_text("f\n")
    parts = []
    for i in range(6):
        deps = f'deps = ["c{i - 1}"]' if i else ""
        parts.append(
            f'[components.c{i}]\nsource = {{ path = "src" }}\n{deps}\nenv = {{ ROUND = "{round_}" }}\n'
            f'build = ["mkdir -p $out/data", "for j in 1 2 3 4 5 6 7 8; do head -c 200000 /dev/urandom > $out/data/blob$j; sleep 0.02; done", "echo $ROUND > $out/round"]\n'
        )
    (proj / "raisin.toml").write_text("\n".join(parts))


def test_kill_9_at_random_moments_keeps_store_consistent(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    rng = random.Random(1234)
    kills = 0
    for round_ in range(22):
        _chain_manifest(proj, round_)
        p = subprocess.Popen(
            [RAISIN, "-q", "realize", "-j", "2"],
            cwd=proj,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.2))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
        v = raisin("store", "verify", cwd=proj)
        assert v.code == 0, (round_, v)
    assert kills >= 20
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    assert raisin("store", "verify", cwd=proj).code == 0
    # no leftovers: every entry in the store is a valid path
    info = _show(proj)
    assert all(c["built"] for c in info.values())


def test_two_processes_build_each_path_once(demo):
    assert raisin("lock", cwd=demo).code == 0
    procs = [
        subprocess.Popen(
            [RAISIN, "realize", "-j", "2"],
            cwd=demo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for name in ("greet", "motd", "hello"):
        builds = sum(err.count(f"building {name}\n") for _, err in outs)
        assert builds == 1, (name, outs)
    assert raisin("store", "verify", cwd=demo).code == 0


def test_verify_reports_damage_and_repair_restores(demo):
    assert raisin("realize", cwd=demo).code == 0
    info = _show(demo)
    hello = Path(info["hello"]["out"]) / "usr/bin/hello"
    os.chmod(hello.parent, 0o755)
    os.chmod(hello, 0o755)
    with open(hello, "ab") as f:
        f.write(b"corruption")
    src = next((demo / "store").glob("*-motd-source"))
    os.chmod(src, 0o755)
    os.chmod(src / "motd.txt", 0o644)
    (src / "motd.txt").write_text("changed\n")
    r = raisin("store", "verify", cwd=demo)
    assert r.code == 1 and "hello-1.2" in r.out and "motd-source" in r.out, r
    r = raisin("store", "verify", "--repair", cwd=demo)
    assert r.code == 0, r
    assert raisin("store", "verify", cwd=demo).code == 0
    out = subprocess.run([str(hello)], capture_output=True, text=True).stdout
    assert out.startswith("Hello, Xen!")


def test_out_is_created_by_the_build_dir_or_single_file(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "f").write_text("f\n")
    (tmp_path / "raisin.toml").write_text(
        '[components.d]\nsource = { path = "s" }\nbuild = ["test ! -e $out", "mkdir $out", "cp f $out/"]\n'
        '[components.f]\nsource = { path = "s" }\nbuild = ["echo single > $out"]\n'
    )
    r = raisin("realize", cwd=tmp_path)
    assert r.code == 0, r
    info = _show(tmp_path)
    assert (Path(info["d"]["out"]) / "f").read_text() == "f\n"
    assert Path(info["f"]["out"]).read_text() == "single\n"
    assert raisin("store", "verify", cwd=tmp_path).code == 0


SEVEN = """\
[components.base]
source = { path = "src" }
build = ["sleep 3", "mkdir $out"]

[components.bad]
source = { path = "src" }
build = ["sleep 0.5", "echo boom", "false"]

[components.after-bad]
source = { path = "src" }
deps = ["bad"]
build = ["mkdir $out"]

[components.after-base]
source = { path = "src" }
deps = ["base"]
build = ["mkdir $out"]

[components.left]
source = { path = "src" }
build = ["mkdir $out"]

[components.right]
source = { path = "src" }
build = ["sleep 1", "mkdir $out"]

[components.top]
source = { path = "src" }
deps = ["after-base", "left"]
build = ["mkdir $out"]
"""


def _seven(tmp_path: Path) -> Path:
    proj = tmp_path / "seven"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f").write_text("f\n")
    (proj / "raisin.toml").write_text(SEVEN)
    assert raisin("lock", cwd=proj).code == 0
    return proj


def _progress(err: str) -> list[tuple[int, int, str, str]]:

    lines = re.findall(r"^\[(\d+)/(\d+)\] (\S+) (.*)$", err, re.MULTILINE)
    return [(int(n), int(t), name, rest) for n, t, name, rest in lines]


def test_failure_without_keep_going_names_failed_cancelled_and_not_started(tmp_path):
    proj = _seven(tmp_path)
    r = raisin("realize", "-j", "2", cwd=proj)
    assert r.code == 1, r
    lines = _progress(r.err)
    # one line per component, counted 1..7 of 7
    assert [(n, t) for n, t, _, _ in lines] == [(i, 7) for i in range(1, 8)], r.err
    state = {name: rest for _, _, name, rest in lines}
    assert sorted(state) == sorted(
        ["base", "bad", "after-bad", "after-base", "left", "right", "top"]
    )
    assert state["bad"].startswith("FAILED")
    assert state["base"].startswith("cancelled"), r.err  # killed, not failed
    assert state["after-bad"] == "not built (bad failed)"
    assert "FAILED" not in "".join(v for k, v in state.items() if k != "bad")
    # the summary: only bad failed (with its log); base cancelled; the rest not started
    assert "error: bad: build failed: exit status 1" in r.err
    assert "error: base" not in r.err
    assert "raisin log bad" in r.err
    assert "cancelled (another build failed; --keep-going lets them finish): base" in r.err
    assert "not built (a dependency failed): after-bad\n" in r.err
    started = [ln for ln in r.err.splitlines() if ln.startswith("not started")]
    assert len(started) == 1 and started[0].endswith(": after-base, right, top"), r.err
    info = _show(proj)
    assert [n for n, c in info.items() if c["built"]] == ["left"]


def test_progress_counts_match_the_lines_printed(tmp_path):
    proj = _seven(tmp_path)
    (proj / "raisin.toml").write_text(
        SEVEN.replace('"sleep 0.5", "echo boom", "false"', '"mkdir $out"')
    )
    r = raisin("realize", "-j", "2", cwd=proj)
    assert r.code == 0, r
    lines = _progress(r.err)
    assert [(n, t) for n, t, _, _ in lines] == [(i, 7) for i in range(1, 8)], r.err
    assert all(rest.startswith("ok (") for *_, rest in lines)
    assert "7 to build: " in r.err and "0/0" not in r.err
    # keep-going: the failure's dependents are not built, everything else is, counts still add up
    (proj / "raisin.toml").write_text(SEVEN.replace("sleep 3", "sleep 0.1"))
    r = raisin("realize", "-j", "2", "--keep-going", cwd=proj)
    assert r.code == 1, r
    lines = _progress(r.err)
    assert [(n, t) for n, t, _, _ in lines] == [(i, 5) for i in range(1, 6)], r.err
    assert {name: rest.split(" ")[0] for _, _, name, rest in lines} == {
        "bad": "FAILED",
        "after-bad": "not",
        "base": "ok",
        "after-base": "ok",
        "top": "ok",
    }


def test_live_progress_on_a_terminal_never_lags_the_lines(tmp_path):

    proj = _seven(tmp_path)
    (proj / "raisin.toml").write_text(
        SEVEN.replace('"sleep 0.5", "echo boom", "false"', '"mkdir $out"')
    )
    out = tmp_path / "tty.out"
    cmd = f"{RAISIN} realize -j 2 > /dev/null"
    p = subprocess.run(
        ["script", "-qec", cmd, str(out)], cwd=proj, capture_output=True, timeout=120
    )
    assert p.returncode == 0, p
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.read_text(errors="replace"))
    assert "0/0" not in text
    # after each "[n/7] name ok" line, the table never shows fewer than n done
    done = 0
    for m in re.finditer(r"\[(\d+)/7\]|(\d+)/7 done", text):
        if m.group(1):
            done = int(m.group(1))
        else:
            assert int(m.group(2)) >= done, text
    assert done == 7


def test_unsandboxed_paths_are_marked_not_pushed_and_rebuilt_in_the_sandbox(demo, tmp_path):
    r = raisin("realize", "--sandbox", "none", "hello", cwd=demo)
    assert r.code == 0, r
    info = _show(demo)
    assert info["hello"]["built"] and info["hello"]["sandboxed"] is False
    assert info["motd"]["sandboxed"] is False
    # push refuses (nothing uploaded) unless told
    keys = tmp_path / "keys"
    assert raisin("key", "generate", "test-1", "--out", str(keys), cwd=demo).code == 0
    cache = tmp_path / "cache"
    r = raisin("push", f"file://{cache}", "hello", "--key", str(keys / "test-1.secret"), cwd=demo)
    assert r.code == 2, r
    assert "built without the sandbox" in r.err and "--allow-unsandboxed" in r.err
    assert "-hello-1.2" in r.err and "Traceback" not in r.err
    assert not list(cache.glob("*.narinfo")) and not list(cache.glob("nar/*"))
    r = raisin(
        "push", f"file://{cache}", "motd", "--key", str(keys / "test-1.secret"),
        "--allow-unsandboxed", cwd=demo,
    )  # fmt: skip
    assert r.code == 0, r
    # a sandboxed realize does not trust them: it builds them again, in the sandbox
    r = raisin("realize", "hello", cwd=demo)
    assert r.code == 0, r
    assert "nothing to build" not in r.err
    assert "3 to build" in r.err, r.err
    info = _show(demo)
    assert all(
        info[n]["built"] and info[n]["sandboxed"] is True for n in ("hello", "motd", "greet")
    )
    assert raisin("store", "verify", cwd=demo).code == 0
    r = raisin("realize", "hello", cwd=demo)
    assert r.code == 0 and "nothing to build" in r.err
    hello = Path(info["hello"]["out"]) / "usr/bin/hello"
    assert subprocess.run([str(hello)], capture_output=True).returncode == 0
    r = raisin("push", f"file://{cache}", "hello", "--key", str(keys / "test-1.secret"), cwd=demo)
    assert r.code == 0, r


def test_a_lock_alone_names_the_component_whose_directory_is_missing(demo, tmp_path):

    assert raisin("lock", cwd=demo).code == 0
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(demo / "raisin.lock", bare / "x.lock")
    r = raisin("--store", str(tmp_path / "st"), "realize", "-j", "1", "--lock", "x.lock", cwd=bare)
    assert r.code == 2, r
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    m = re.match(
        r"error: x\.lock: components\.(\w+)\.source: expected a directory, found nothing", errors[0]
    )
    assert m, r.err
    name = m.group(1)
    assert f"{name}'s source is a local directory" in r.err and "--substituter" in r.err
    failed = re.findall(r"^\[\d+/\d+\] (\S+) FAILED", r.err, re.MULTILINE)
    assert failed == [name], r.err  # the progress blames the same component, and only it
    assert "Traceback" not in r.err


def test_toolchain_mismatch_is_an_error_with_a_lock_file_unless_warn(demo, tmp_path):
    assert raisin("lock", cwd=demo).code == 0
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text("#!/bin/sh\necho 'GNU Make 0.1'\n")
    (fake / "make").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}  # the host's make is not the lock's
    r = raisin("realize", "--lock", "raisin.lock", cwd=demo, env=env)
    assert r.code == 2, r
    assert "raisin.lock: toolchain: the host's toolchain differs" in r.err
    assert "'GNU Make 0.1'" in r.err and "--toolchain-mismatch=warn" in r.err
    assert not _show(demo)["motd"]["built"]
    # without --lock FILE the default is to warn; both can be chosen explicitly
    r = raisin("realize", "motd", "--toolchain-mismatch=error", cwd=demo, env=env)
    assert r.code == 2 and "toolchain differs" in r.err, r
    r = raisin("realize", "motd", cwd=demo, env=env)
    assert r.code == 0, r
    assert "warning: toolchain differs from the lock's record: make" in r.err
    r = raisin("realize", "--lock", "raisin.lock", "--toolchain-mismatch=warn", cwd=demo, env=env)
    assert r.code == 0, r
    assert "warning: toolchain differs from the lock's record: make" in r.err
    r = raisin("realize", "--help", cwd=demo)
    help_text = " ".join(r.out.split())  # argparse wraps to the terminal's width
    assert "--toolchain-mismatch" in help_text and "the default with --lock FILE" in help_text


def _noisy(proj: Path, extra: str = "") -> None:
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f").write_text("f\n")
    (proj / "raisin.toml").write_text(
        '[components.noisy]\nsource = { path = "src" }\n'
        'build = ["echo start", "yes raisin-log-line-raisin-log-line", "mkdir $out"]\n'
        '\n[components.quiet]\nsource = { path = "src" }\nbuild = ["echo fine", "mkdir $out"]\n'
        + extra
    )


def test_build_log_is_capped_and_the_build_killed(tmp_path):
    proj = tmp_path / "p"
    _noisy(proj)
    r = raisin("realize", "noisy", cwd=proj, env={"RAISIN_MAX_LOG_SIZE": "100000"}, timeout=120)
    assert r.code == 1, r
    assert "error: noisy: build failed: build log exceeded 100000 bytes" in r.err
    (log,) = (proj / "store" / ".raisin" / "logs").glob("*noisy*.log")
    size = log.stat().st_size
    assert 100000 <= size < 100000 + 200, size
    assert log.read_text().endswith(
        "killed: build log exceeded 100000 bytes (RAISIN_MAX_LOG_SIZE)\n"
    )
    assert not _show(proj)["noisy"]["built"]
    assert list((proj / "store" / ".raisin" / "tmp").iterdir()) == []
    r = raisin("realize", "noisy", cwd=proj, env={"RAISIN_MAX_LOG_SIZE": "lots"})
    assert r.code == 2 and "RAISIN_MAX_LOG_SIZE: expected a number of bytes" in r.err, r


def test_a_log_filling_the_disk_fails_the_build_and_frees_the_space(tmp_path):
    proj = tmp_path / "p"
    _noisy(proj)
    store = tmp_path / "small"
    store.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(store)]).returncode:
        import pytest

        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        r = raisin(
            "--store", str(store), "realize", "-j", "1", "--keep-going", cwd=proj, timeout=120
        )
        assert r.code == 1, r
        assert (
            "error: noisy: build failed: no space left on device (writing the build log)" in r.err
        )
        assert "Traceback" not in r.err
        info = _show(proj, "--store", str(store))
        assert not info["noisy"]["built"] and info["quiet"]["built"]
        assert list((store / ".raisin" / "tmp").iterdir()) == []
        (log,) = (store / ".raisin" / "logs").glob("*noisy*.log")
        assert log.stat().st_size < 128 * 1024
        assert shutil.disk_usage(store).free > 2 * 1024 * 1024  # the space came back
    finally:
        subprocess.run(["umount", "-l", str(store)])
