"""``raisin worker`` on a real BuildGrid (tests/reapi_server.py): two workers serve a stack."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RAISIN, loopback_unproxied, nix_hash, raisin
from reapi_server import buildgrid  # noqa: F401  (the session fixture)


def _stack(root: Path, tag: str, sleep: int = 2) -> Path:
    """Six path components, three of them leaves, so that builds run side by side."""
    deps = {"c0": [], "c1": [], "c2": [], "c3": ["c0"], "c4": ["c1", "c2"], "c5": ["c3", "c4"]}
    parts = []
    for name, ds in deps.items():
        (root / "src" / name).mkdir(parents=True)
        (root / "src" / name / "data.txt").write_text(f"{name} {tag}\n")
        cats = " ".join(f"${d}/data.txt" for d in ds)
        parts.append(
            f'[components.{name}]\nsource = {{ path = "src/{name}" }}\nversion = "1"\n'
            f"deps = {ds!r}\n".replace("'", '"')
            + f'build = ["sleep {sleep}", "mkdir -p $out", '
            f'"cat data.txt {cats} > $out/data.txt"]\n'
        )
    (root / "raisin.toml").write_text("\n".join(parts))
    return root


class Workers:
    def __init__(self, url: str, base: Path, n: int) -> None:
        env = loopback_unproxied(dict(os.environ))
        self.logs = [base / f"worker{i}.log" for i in range(n)]
        self.procs = [
            subprocess.Popen(
                [
                    RAISIN,
                    "worker",
                    "--server",
                    url,
                    "--work-dir",
                    str(base / f"w{i}"),
                    "--name",
                    f"w{i}-{base.name}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                env=env,
            )
            for i, log in enumerate(self.logs)
        ]
        deadline = time.monotonic() + 30
        while not all("joined" in log.read_text() for log in self.logs):
            assert time.monotonic() < deadline, [log.read_text() for log in self.logs]
            time.sleep(0.2)

    def ran(self, i: int) -> int:
        return self.logs[i].read_text().count("\nran ") + self.logs[i].read_text().startswith(
            "ran "
        )

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _slow_client(proj: Path, text: str, seconds: int, url: str) -> subprocess.Popen[str]:
    """``realize --remote`` of one component that sleeps ``seconds``, then writes ``text``."""
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "data.txt").write_text(text)
    (proj / "raisin.toml").write_text(
        '[components.slow]\nsource = { path = "src" }\nversion = "1"\n'
        f'build = ["sleep {seconds}", "mkdir -p $out", "cp data.txt $out/"]\n'
    )
    return subprocess.Popen(
        [RAISIN, "realize", "--remote", url],
        cwd=proj,
        env=loopback_unproxied(dict(os.environ)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _busy(workers: Workers, client: subprocess.Popen[str]) -> int:
    """The worker that started running the client's build (within 60 s)."""
    deadline = time.monotonic() + 60
    while not (busy := [i for i in range(2) if "running" in workers.logs[i].read_text()]):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
    return busy[0]


@pytest.fixture
def workers(buildgrid, tmp_path):  # noqa: F811
    w = Workers(buildgrid.url, tmp_path, 2)
    yield w
    w.close()


def test_two_workers_build_a_stack_identical_to_a_local_realize(buildgrid, workers, tmp_path):  # noqa: F811
    local = _stack(tmp_path / "local", "two-workers")
    assert raisin("realize", "-j", "6", cwd=local).code == 0
    remote = _stack(tmp_path / "remote", "two-workers")
    r = raisin("realize", "-j", "6", "--remote", buildgrid.url, cwd=remote, timeout=300)
    assert r.code == 0, r
    outs = sorted(p.name for p in (local / "store").iterdir() if p.name.endswith("-1"))
    got = sorted(p.name for p in (remote / "store").iterdir() if p.name.endswith("-1"))
    assert got == outs and len(outs) == 6
    for base in outs:
        assert nix_hash(remote / "store" / base) == nix_hash(local / "store" / base)
        assert (remote / "store" / ".raisin" / "remote" / base).exists()  # none built here
        h = raisin("store", "hash", str(remote / "store" / base), cwd=remote)
        assert h.out == raisin("store", "hash", str(local / "store" / base), cwd=local).out
    assert workers.ran(0) >= 1 and workers.ran(1) >= 1, [w.read_text() for w in workers.logs]
    assert workers.ran(0) + workers.ran(1) == 6
    assert not any(any((tmp_path / f"w{i}").iterdir()) for i in range(2))  # leases cleaned


def test_worker_sigterm_exits_cleanly(buildgrid, tmp_path):  # noqa: F811
    w = Workers(buildgrid.url, tmp_path, 1)
    t0 = time.monotonic()
    w.procs[0].send_signal(signal.SIGTERM)
    assert w.procs[0].wait(20) == 0
    assert time.monotonic() - t0 < 15
    assert "stopped after 0 action(s)" in w.logs[0].read_text()


def test_a_worker_killed_mid_build_its_lease_runs_elsewhere(buildgrid, workers, tmp_path):  # noqa: F811
    proj = tmp_path / "proj"
    client = _slow_client(proj, "killed mid-build\n", 6, buildgrid.url)
    busy = [_busy(workers, client)]
    workers.procs[busy[0]].kill()  # SIGKILL: the lease is never reported
    _out, err = client.communicate(timeout=240)
    assert client.returncode == 0, err
    other = 1 - busy[0]
    assert "ran " in workers.logs[other].read_text(), workers.logs[other].read_text()
    assert "ran " not in workers.logs[busy[0]].read_text()
    built = [p for p in (proj / "store").iterdir() if p.name.endswith("-slow-1")]
    assert [(p / "data.txt").read_text() for p in built] == ["killed mid-build\n"]


def test_server_stopped_mid_build_fails_clearly_then_workers_rejoin(buildgrid, workers, tmp_path):  # noqa: F811
    proj = tmp_path / "proj"
    client = _slow_client(proj, "server stopped\n", 8, buildgrid.url)
    busy = _busy(workers, client)
    buildgrid.stop_bgd()
    try:
        _out, err = client.communicate(timeout=120)
        assert client.returncode == 1, err
        assert "Traceback" not in err
        assert any("slow" in line and "remote" in line.lower() for line in err.splitlines()), err
        assert not [p for p in (proj / "store").iterdir() if p.name.endswith("-slow-1")]
        # the busy worker finishes its build with the server still down: uploading the
        # outputs fails, and the worker keeps trying instead of dying with the lease
        deadline = time.monotonic() + 60
        while "server gone" not in workers.logs[busy].read_text().partition("running")[2]:
            assert workers.procs[busy].poll() is None, workers.logs[busy].read_text()
            assert time.monotonic() < deadline, workers.logs[busy].read_text()
            time.sleep(0.2)
        assert "ran " not in workers.logs[busy].read_text()  # never reported done
    finally:
        buildgrid.start_bgd()
    r = raisin("realize", "--remote", buildgrid.url, cwd=proj, timeout=180)
    assert r.code == 0, r
    built = [p for p in (proj / "store").iterdir() if p.name.endswith("-slow-1")]
    assert [(p / "data.txt").read_text() for p in built] == ["server stopped\n"]
    # the worker that lost the server mid-lease kept trying and opens a new session on it
    # (backoff ≤ 10 s); neither worker died
    deadline = time.monotonic() + 60
    while True:
        texts = [log.read_text() for log in workers.logs]
        if texts[busy].count("joined") >= 2:
            break
        assert time.monotonic() < deadline, texts
        assert all(p.poll() is None for p in workers.procs), texts
        time.sleep(0.5)


def _execute_raw(url: str, argv: list[str], files: dict[str, bytes], missing: bool = False):
    """Execute one hand-made Action on the farm: ``argv`` in an input root of ``files``
    (``missing``: one more file whose blob is never uploaded). The ExecuteResponse."""
    from raisin_lock.remote.cas import Cas, digest_of, key
    from raisin_lock.remote.channel import open_channel, parse_url
    from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
        remote_execution_pb2 as re,
    )
    from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
        remote_execution_pb2_grpc as re_grpc,
    )

    remote = parse_url(url)
    with open_channel(remote) as ch:
        cas = Cas(ch, remote)
        blobs: dict = {}
        root = re.Directory()
        nodes = dict(files)
        if missing:
            nodes["absent.txt"] = b"never uploaded " + os.urandom(8)
        for name in sorted(nodes):
            root.files.add(name=name, digest=digest_of(nodes[name]))
            if not (missing and name == "absent.txt"):
                blobs[key(digest_of(nodes[name]))] = nodes[name]
        cmd = re.Command(arguments=argv, output_paths=["out"])
        for msg in (root, cmd):
            data = msg.SerializeToString(deterministic=True)
            blobs[key(digest_of(data))] = data
        action = re.Action(
            command_digest=digest_of(cmd.SerializeToString(deterministic=True)),
            input_root_digest=digest_of(root.SerializeToString(deterministic=True)),
            do_not_cache=True,
        )
        data = action.SerializeToString(deterministic=True)
        blobs[key(digest_of(data))] = data
        cas.upload_missing(blobs)
        req = re.ExecuteRequest(
            instance_name=remote.instance, action_digest=digest_of(data), skip_cache_lookup=True
        )
        last = None
        for op in re_grpc.ExecutionStub(ch).Execute(req, timeout=120):
            last = op
            if op.done:
                break
        assert last is not None and last.done, last
        resp = re.ExecuteResponse()
        last.response.Unpack(resp)
        return resp


def test_an_action_the_worker_cannot_run_fails_its_lease_and_the_worker_goes_on(
    buildgrid,  # noqa: F811
    tmp_path,
):
    """No such program, a missing input blob: the lease completes with an error status
    saying why (the client gets it), and the same worker runs the next action."""
    import threading

    from raisin_lock.remote.channel import parse_url
    from raisin_lock.remote.worker import FAILED_PRECONDITION, INVALID_ARGUMENT, Worker

    bot = Worker(parse_url(buildgrid.url), tmp_path / "bot", f"bad-actions-{tmp_path.name}")
    thread = threading.Thread(target=bot.run, daemon=True)
    thread.start()
    try:
        resp = _execute_raw(buildgrid.url, ["/nonexistent/raisin-no-such-program"], {})
        assert resp.status.code == INVALID_ARGUMENT, resp
        assert "raisin-no-such-program" in resp.status.message, resp
        assert thread.is_alive()
        resp = _execute_raw(buildgrid.url, ["/bin/cat", "absent.txt"], {"a": b"a\n"}, True)
        assert resp.status.code == FAILED_PRECONDITION, resp
        assert "not" in resp.status.message, resp
        assert thread.is_alive()
        resp = _execute_raw(buildgrid.url, ["/bin/sh", "-c", "cat a > out"], {"a": b"fine\n"})
        assert resp.status.code == 0 and resp.result.exit_code == 0, resp
        assert [f.path for f in resp.result.output_files] == ["out"]
        assert bot.ran == 3
    finally:
        bot.stop.set()
        thread.join(20)
    assert not thread.is_alive()
    assert not any((tmp_path / "bot").iterdir())  # every lease dir cleaned


def test_sigterm_mid_build_stops_the_action_and_hands_the_lease_back(buildgrid, workers, tmp_path):  # noqa: F811
    """SIGTERM to a worker running a 30 s build: it stops the build's processes and exits
    within seconds, and the other worker gets the lease at once (no session timeout)."""
    proj = tmp_path / "proj"
    t0 = time.monotonic()
    client = _slow_client(proj, "handed back\n", 12, buildgrid.url)
    busy = [_busy(workers, client)]
    time.sleep(1)  # the build's sleep has started
    stopped = time.monotonic()
    workers.procs[busy[0]].send_signal(signal.SIGTERM)
    assert workers.procs[busy[0]].wait(20) == 0
    assert time.monotonic() - stopped < 10  # not the 11 s left of the build
    sleeps = subprocess.run(["pgrep", "-f", "^sleep 12$"], capture_output=True, text=True)
    assert sleeps.stdout == "", "the stopped worker left its build running"
    _out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    other = 1 - busy[0]
    assert "ran " in workers.logs[other].read_text(), workers.logs[other].read_text()
    # handed back: the other worker started it at once, not after the dead session's timeout
    assert time.monotonic() - t0 < 12 + 12 + 25, time.monotonic() - t0
    assert "stopped after" in workers.logs[busy[0]].read_text()
    assert not any((tmp_path / f"w{busy[0]}").iterdir())
