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
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "data.txt").write_text("killed mid-build\n")
    (proj / "raisin.toml").write_text(
        '[components.slow]\nsource = { path = "src" }\nversion = "1"\n'
        'build = ["sleep 6", "mkdir -p $out", "cp data.txt $out/"]\n'
    )
    env = loopback_unproxied(dict(os.environ))
    client = subprocess.Popen(
        [RAISIN, "realize", "--remote", buildgrid.url],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (busy := [i for i in range(2) if "running" in workers.logs[i].read_text()]):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
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
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "data.txt").write_text("server stopped\n")
    (proj / "raisin.toml").write_text(
        '[components.slow]\nsource = { path = "src" }\nversion = "1"\n'
        'build = ["sleep 8", "mkdir -p $out", "cp data.txt $out/"]\n'
    )
    env = loopback_unproxied(dict(os.environ))
    client = subprocess.Popen(
        [RAISIN, "realize", "--remote", buildgrid.url],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any("running" in log.read_text() for log in workers.logs):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
    buildgrid.stop_bgd()
    try:
        _out, err = client.communicate(timeout=120)
        assert client.returncode == 1, err
        assert "Traceback" not in err
        assert any("slow" in line and "remote" in line.lower() for line in err.splitlines()), err
        assert not [p for p in (proj / "store").iterdir() if p.name.endswith("-slow-1")]
    finally:
        buildgrid.start_bgd()
    r = raisin("realize", "--remote", buildgrid.url, cwd=proj, timeout=180)
    assert r.code == 0, r
    built = [p for p in (proj / "store").iterdir() if p.name.endswith("-slow-1")]
    assert [(p / "data.txt").read_text() for p in built] == ["server stopped\n"]
    # a worker that lost the server kept trying and opens a new session on it (backoff ≤ 10 s)
    deadline = time.monotonic() + 60
    while True:
        texts = [log.read_text() for log in workers.logs]
        if any("server gone" in t and t.count("joined") >= 2 for t in texts):
            break
        assert time.monotonic() < deadline, texts
        time.sleep(0.5)
