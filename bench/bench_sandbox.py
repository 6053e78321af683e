"""What the sandbox costs per build: raisin's run() against the same steps run bare.

The steps are trivial, so the difference is pure overhead: preparing the
directories, starting bubblewrap (namespaces, mounts) and the builder shell.
Goal: at most 50 ms per build over ``sh -c``.
"""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from raisin_lock.build import sandbox
from raisin_lock.build.sandbox import BuildSpec, SandboxMode, check_sandbox

ROUNDS = 20
STEPS = ("mkdir $out", "echo hello > $out/greeting")
STORE = "/raisin/store"


def _raisin_once(workdir: pathlib.Path, n: int, mode: SandboxMode) -> float:
    build = workdir / f"{mode}-build-{n}"
    build.mkdir()
    outs = workdir / f"{mode}-out-{n}"
    outs.mkdir()
    spec = BuildSpec(
        name="bench",
        steps=STEPS,
        env={},
        out=f"{STORE}/{'a' * 32}-bench-1.0",
        out_host=str(outs / f"{'a' * 32}-bench-1.0"),
        src=None,
        src_host=None,
        inputs={},
        dep_vars={},
        build_dir_host=str(build),
        log_path=str(workdir / "logs" / f"{mode}-{n}.log"),
        source_date_epoch=1,
        jobs=1,
        sandbox=mode,
    )
    start = time.perf_counter()
    result = sandbox.run(spec)
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(pathlib.Path(spec.log_path).read_text())
    return elapsed


def _bare_once(workdir: pathlib.Path, n: int) -> float:
    out = workdir / f"bare-out-{n}"
    start = time.perf_counter()
    subprocess.run(
        ["/bin/sh", "-c", "set -eu\n" + "\n".join(STEPS)],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "out": str(out)},
        check=True,
    )
    return time.perf_counter() - start


def run(workdir: pathlib.Path) -> list[dict[str, Any]]:
    probe_start = time.perf_counter()
    check_sandbox()
    probe = time.perf_counter() - probe_start
    samples: dict[str, list[float]] = {"bwrap": [], "none": [], "bare": []}
    for n in range(ROUNDS + 1):  # round 0 warms caches and is dropped
        bwrap = _raisin_once(workdir, n, "bwrap")
        none = _raisin_once(workdir, n, "none")
        bare = _bare_once(workdir, n)
        if n:
            samples["bwrap"].append(bwrap)
            samples["none"].append(none)
            samples["bare"].append(bare)
    bare = statistics.median(samples["bare"])
    rows = []
    for mode, label in (
        ("bwrap", "sandbox overhead per build"),
        ("none", "--sandbox none overhead per build"),
    ):
        x = statistics.median(samples[mode])
        rows.append(
            {
                "name": label,
                "raisin_s": round(x, 5),
                "reference_s": round(bare, 5),
                "reference": "same steps bare (sh -c)",
                "ratio": round(x / bare, 2),
                "overhead_ms": round((x - bare) * 1000, 2),
                "goal": "≤ 50 ms",
                "rounds": ROUNDS,
            }
        )
    rows.append(
        {
            "name": "bubblewrap probe (once per process)",
            "raisin_s": round(probe, 5),
            "reference_s": None,
            "reference": "none (not per build)",
            "ratio": None,
            "overhead_ms": round(probe * 1000, 2),
            "goal": "once",
        }
    )
    return rows


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="raisin-bench-sandbox-") as tmp:
        for row in run(pathlib.Path(tmp)):
            print(row, file=sys.stdout)
