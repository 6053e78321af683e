"""``raisin realize --remote`` against a real BuildGrid (tests/reapi_server.py).

Without a worker in this file, the farm's side is played by the test: it
computes each derivation's Action exactly as raisin does (from store A,
where the demo was built locally), stores the output and an ActionResult in
the server, and checks that realize into an empty store takes it from the
ActionCache, verifies it and registers it bit-identically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DEMO, nix_hash, raisin
from reapi_server import buildgrid  # noqa: F401  (the session fixture)

from raisin_lock.app import planning
from raisin_lock.app.project import Project
from raisin_lock.build.scheduler import Scheduler
from raisin_lock.remote.cas import Cas, key
from raisin_lock.remote.channel import open_channel, parse_url
from raisin_lock.remote.execute import RemoteBuilder
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
    remote_execution_pb2_grpc as re_grpc,
)
from raisin_lock.remote.worker import tree_of
from raisin_lock.sources import FetchContext

JOBS = "2"


def _copy_demo(dst: Path) -> Path:
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    return dst


def _dg(msg) -> re.Digest:
    from raisin_lock.remote.cas import digest_of

    return digest_of(msg.SerializeToString(deterministic=True))


@pytest.fixture(scope="module")
def seeded(buildgrid, tmp_path_factory):  # noqa: F811
    """Demo built locally in store A; its actions' results put in the server's ActionCache."""
    a = _copy_demo(tmp_path_factory.mktemp("a") / "demo")
    r = raisin("realize", "-j", JOBS, cwd=a)
    assert r.code == 0, r
    url = buildgrid.url + "/main"
    remote = parse_url(url)
    proj = Project.at(a)
    p = planning.plan(proj)
    ctx = FetchContext(store=p.store, base_dir=p.base_dir, offline=True, file="raisin.lock")
    sched = Scheduler(store=p.store, lock=p.lock, fetch=ctx, jobs=int(JOBS), sandbox="bwrap")
    builder = RemoteBuilder(sched, remote)
    outs = {}
    with open_channel(remote) as ch:
        cas = Cas(ch, remote)
        ac = re_grpc.ActionCacheStub(ch)
        for name, drv in sched.drvs.items():
            act, root, _ = builder.action_for(name)
            host = p.store.host_path(drv.out)
            tree, blobs = tree_of(host)  # as a worker uploads it
            tree_bytes = tree.SerializeToString(deterministic=True)
            tdg = _dg(tree)
            blobs[key(tdg)] = tree_bytes
            cas.upload_missing({**root.blobs, **blobs})
            result = re.ActionResult(
                output_directories=[re.OutputDirectory(path="out", tree_digest=tdg)], exit_code=0
            )
            ac.UpdateActionResult(
                re.UpdateActionResultRequest(
                    instance_name="main", action_digest=act, action_result=result
                )
            )
            outs[name] = (drv.out.base, nix_hash(host), tdg)
    builder.close()
    return url, outs, a


def test_action_cache_hit_registers_bit_identical_output(seeded, tmp_path):
    url, outs, _ = seeded
    b = _copy_demo(tmp_path / "demo")
    r = raisin("realize", "-j", JOBS, "--remote", url, cwd=b)
    assert r.code == 0, r
    store = b / "store"
    for base, h, _ in outs.values():
        assert (store / base).exists()
        assert nix_hash(store / base) == h
        assert (store / ".raisin" / "remote" / base).read_text().strip() == url
    r = raisin("store", "verify", cwd=b)
    assert r.code == 0, r
    # push does not sign what this machine did not build, unless told to
    r = raisin("key", "generate", "test-cache-1", "--out", str(tmp_path / "keys"))
    assert r.code == 0, r
    key_file = str(tmp_path / "keys" / "test-cache-1.secret")
    cache = f"file://{tmp_path / 'cache'}"
    r = raisin("push", cache, "--key", key_file, cwd=b)
    assert r.code == 2, r
    assert "built by a remote executor" in r.err and "--sign-remote" in r.err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    r = raisin("push", cache, "--key", key_file, "--sign-remote", cwd=b)
    assert r.code == 0, r


def test_remote_marker_does_not_outlive_its_path(seeded, tmp_path):
    """gc drops a remote path with its marker; the same path built locally is signed by push."""
    url, outs, _ = seeded
    b = _copy_demo(tmp_path / "demo")
    assert raisin("realize", "-j", JOBS, "--remote", url, cwd=b).code == 0
    marks = b / "store" / ".raisin" / "remote"
    assert sorted(p.name for p in marks.iterdir()) == sorted(base for base, _, _ in outs.values())
    (b / "raisin.lock").unlink()  # its outputs are no longer rooted
    r = raisin("gc", cwd=b)
    assert r.code == 0, r
    assert not any(marks.iterdir())
    r = raisin("realize", "-j", JOBS, cwd=b)  # built here this time
    assert r.code == 0, r
    for base, h, _ in outs.values():
        assert nix_hash(b / "store" / base) == h
    assert not any(marks.iterdir())
    r = raisin("key", "generate", "test-cache-2", "--out", str(tmp_path / "keys"))
    assert r.code == 0, r
    key_file = str(tmp_path / "keys" / "test-cache-2.secret")
    r = raisin("push", f"file://{tmp_path / 'cache'}", "--key", key_file, cwd=b)
    assert r.code == 0, r


def test_unreachable_remote_fails_clearly_or_falls_back(seeded, tmp_path):
    _, outs, _ = seeded
    b = _copy_demo(tmp_path / "demo")
    r = raisin("realize", "-j", JOBS, "--remote", "grpc://127.0.0.1:1/main", cwd=b)
    assert r.code == 1, r
    assert r.err.strip().splitlines()[-1] == (
        "error: remote execution server grpc://127.0.0.1:1/main does not answer (GetCapabilities)"
    )
    assert not any((b / "store" / base).exists() for base, _, _ in outs.values())
    r = raisin("realize", "-j", JOBS, "--remote", "grpc://127.0.0.1:1/main", "--fallback", cwd=b)
    assert r.code == 0, r
    for base, h, _ in outs.values():  # built locally, the same bytes
        assert nix_hash(b / "store" / base) == h
        assert not (b / "store" / ".raisin" / "remote" / base).exists()


def test_tampered_blob_is_rejected(seeded, buildgrid, tmp_path):  # noqa: F811
    url, outs, _ = seeded
    # flip a byte of hello's binary on the server's disk
    base, _, tdg = outs["hello"]
    remote = parse_url(url)
    with open_channel(remote) as ch:
        tree = re.Tree.FromString(Cas(ch, remote).read(tdg))
    binaries = [f for d in [tree.root, *tree.children] for f in d.files if f.name == "hello"]
    assert binaries
    h = binaries[0].digest.hash
    found = [p for p in buildgrid.cas.rglob("*") if p.is_file() and p.parent.name + p.name == h]
    assert found, list(buildgrid.cas.iterdir())[:5]
    data = bytearray(found[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(found[0], 0o644)
    found[0].write_bytes(bytes(data))
    try:
        b = _copy_demo(tmp_path / "demo")
        r = raisin("realize", "-j", JOBS, "--remote", url, cwd=b)
        assert r.code == 1, r
        assert "does not match its digest" in r.out + r.err
        assert not (b / "store" / base).exists()
    finally:
        data[len(data) // 2] ^= 0xFF
        found[0].write_bytes(bytes(data))


def test_remote_from_the_manifest(seeded, tmp_path):
    url, outs, _ = seeded
    b = _copy_demo(tmp_path / "demo")
    with (b / "raisin.toml").open("a") as f:
        f.write(f'\n[remote]\nurl = "{url}"\n')
    r = raisin("realize", "-j", JOBS, cwd=b)
    assert r.code == 0, r
    for base, h, _ in outs.values():
        assert nix_hash(b / "store" / base) == h
        assert (b / "store" / ".raisin" / "remote" / base).exists()


def _materialise(d, blobs, path: Path) -> None:
    """What a REAPI worker does with an input root (here from the builder's own structure)."""
    path.mkdir(exist_ok=True)
    for name, (dg, executable) in d.files.items():
        blob = blobs[key(dg)]
        (path / name).write_bytes(blob if isinstance(blob, bytes) else blob.read_bytes())
        (path / name).chmod(0o755 if executable else 0o644)
    for name, target in d.links.items():
        os.symlink(target, path / name)
    for name, sub in d.dirs.items():
        _materialise(sub, blobs, path / name)


def test_action_runs_raisins_sandbox_in_its_directory(seeded, tmp_path):
    """The action's command, run as a generic worker runs it (cwd = input root, empty env),
    builds in bwrap and leaves ``out`` identical to the local build."""
    _, outs, seeded_dir = seeded
    proj = Project.at(seeded_dir)
    p = planning.plan(proj)
    ctx = FetchContext(store=p.store, base_dir=p.base_dir, offline=True, file="raisin.lock")
    sched = Scheduler(store=p.store, lock=p.lock, fetch=ctx, jobs=int(JOBS), sandbox="bwrap")
    builder = RemoteBuilder(sched, parse_url("grpc://127.0.0.1:1"))
    for name in ("greet", "hello"):
        _, root, _ = builder.action_for(name)
        work = tmp_path / name
        _materialise(root.root, root.blobs, work)
        cmd = subprocess.run(
            ["/bin/sh", ".raisin/run.sh"], cwd=work, env={}, capture_output=True, text=True
        )
        assert cmd.returncode == 0, cmd.stdout + cmd.stderr
        assert nix_hash(work / "out") == outs[name][1]
    builder.close()


def test_the_clients_job_count_is_not_part_of_the_action(seeded):
    """Clients with other core counts ask for the same action (and share its cached result):
    the wrapper takes ``-j`` from the worker's ``nproc`` at run time."""
    _, _, seeded_dir = seeded
    p = planning.plan(Project.at(seeded_dir))
    ctx = FetchContext(store=p.store, base_dir=p.base_dir, offline=True, file="raisin.lock")
    digests = []
    for jobs in (1, 2, 7):
        sched = Scheduler(store=p.store, lock=p.lock, fetch=ctx, jobs=jobs, sandbox="bwrap")
        builder = RemoteBuilder(sched, parse_url("grpc://127.0.0.1:1"))
        act, root, _ = builder.action_for("hello")
        digests.append(key(act))
        script = root.blobs[key(root.root.dirs[".raisin"].files["run.sh"][0])]
        builder.close()
    assert digests[0] == digests[1] == digests[2]
    assert b'MAKEFLAGS -j"$J"' in script and b"J=$(nproc" in script


def test_execute_on_a_bot_then_second_client_from_the_action_cache(buildgrid, tmp_path):  # noqa: F811
    """With a bot on the farm: realize --remote into an empty store Executes every build
    (nothing built locally), outputs identical to a local realize; a second client with
    another empty store gets all from the ActionCache (the bot runs nothing more)."""
    import threading

    from raisin_lock.remote.worker import Worker

    def variant(dst: Path) -> Path:  # other sources: other actions than `seeded`'s
        _copy_demo(dst)
        with open(dst / "src" / "greet" / "greet.c", "a") as f:
            f.write("/* built by a bot */\n")
        (dst / "src" / "motd" / "motd.txt").write_text("Built by a bot.\n")
        return dst

    local = variant(tmp_path / "local" / "demo")
    r = raisin("realize", "-j", "1", cwd=local)
    assert r.code == 0, r
    url = buildgrid.url  # the empty instance name
    bot = Worker(parse_url(url), tmp_path / "bot", "testbot")
    thread = threading.Thread(target=bot.run, daemon=True)
    thread.start()
    try:
        first = variant(tmp_path / "first" / "demo")
        r = raisin("realize", "-j", "1", "--remote", url, cwd=first, timeout=120)
        assert r.code == 0, r
        assert bot.ran == 3, bot.ran
        second = variant(tmp_path / "second" / "demo")
        r = raisin("realize", "-j", "1", "--remote", url, cwd=second, timeout=120)
        assert r.code == 0, r
        assert bot.ran == 3  # no Execute: all from the ActionCache
    finally:
        bot.stop.set()
        thread.join(20)
    assert not thread.is_alive()
    outs = sorted(p.name for p in (local / "store").iterdir() if p.name[0] != ".")
    for proj in (first, second):
        assert sorted(p.name for p in (proj / "store").iterdir() if p.name[0] != ".") == outs
        for base in outs:
            assert nix_hash(proj / "store" / base) == nix_hash(local / "store" / base)
