"""Remote execution: makespan of a sleep-bound stack on a real BuildGrid, 2 workers vs 1.

A synthetic stack of independent builds that each sleep (so the figure is
about scheduling, not the 2-core machine's CPU) is realized with
`raisin realize --remote` against BuildGrid on PostgreSQL (started as the
tests start it, tests/reapi_server.py) served by one `raisin worker`, then,
with fresh sources (no ActionCache hits), by two. Goal: 2 workers ≤ 0.6× 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RAISIN

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

BUILDS = 8
SLEEP = 3


def _stack(root: Path, tag: str) -> Path:
    parts = []
    for i in range(BUILDS):
        (root / "src" / f"c{i}").mkdir(parents=True)
        (root / "src" / f"c{i}" / "data.txt").write_text(f"c{i} {tag}\n")
        parts.append(
            f'[components.c{i}]\nsource = {{ path = "src/c{i}" }}\nversion = "1"\n'
            f'build = ["sleep {SLEEP}", "mkdir -p $out", "cp data.txt $out/"]\n'
        )
    (root / "raisin.toml").write_text("\n".join(parts))
    return root


def _makespan(url: str, work: Path, workers: int) -> float:
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    work.mkdir(parents=True)
    logs = [work / f"worker{i}.log" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [RAISIN, "worker", "--server", url, "--work-dir", str(work / f"w{i}")],
            stderr=log.open("w"),
            env=env,
        )
        for i, log in enumerate(logs)
    ]
    try:
        while not all("joined" in log.read_text() for log in logs):
            time.sleep(0.2)
        proj = _stack(work / "proj", f"{workers}-{time.time()}")
        subprocess.run([RAISIN, "lock"], cwd=proj, check=True, capture_output=True, env=env)
        t0 = time.perf_counter()
        subprocess.run(
            [RAISIN, "realize", "-j", str(BUILDS), "--remote", url],
            cwd=proj,
            check=True,
            capture_output=True,
            env=env,
        )
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)


def run(workdir: Path, quick: bool = False) -> list[dict]:
    from reapi_server import BuildGrid, bgd_path, pg_bindir

    if bgd_path() is None or pg_bindir() is None:
        return [{"name": "remote: FAILED", "error": "bgd or PostgreSQL not installed"}]
    srv = BuildGrid(workdir / "bgd")
    srv.start()
    try:
        one = _makespan(srv.url, workdir / "one", 1)
        two = _makespan(srv.url, workdir / "two", 2)
    finally:
        srv.stop()
    return [
        {
            "name": f"remote makespan, {BUILDS} builds of sleep {SLEEP}: 2 workers",
            "raisin_s": two,
            "reference_s": one,
            "reference": "the same with 1 worker",
            "ratio": two / one,
            "goal": "≤ 0.6",
        }
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        for row in run(Path(d)):
            print(row)
