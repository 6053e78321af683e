"""raisin lock timings: no-op on the demo, first and no-op lock of 1000 components."""

from __future__ import annotations

import time
from pathlib import Path

from common import RAISIN, copy_demo, python_startup, synthetic_stack, timed


def run(workdir: Path, quick: bool = False) -> list[dict]:
    rows = []
    py = python_startup()
    demo = copy_demo(workdir)
    timed([RAISIN, "lock"], cwd=demo, repeat=1)
    t = timed([RAISIN, "lock"], cwd=demo, repeat=7)
    rows.append(
        {
            "name": "no-op lock, demo",
            "raisin_s": t,
            "reference_s": py,
            "reference": "python -c pass",
            "ratio": t / 0.3,
            "goal": "≤ 0.3 s (ratio to goal)",
        }
    )
    n = 200 if quick else 1000
    big = workdir / "big"
    synthetic_stack(big, n)
    t0 = time.perf_counter()
    timed([RAISIN, "lock"], cwd=big, repeat=1)
    first = time.perf_counter() - t0
    rows.append(
        {
            "name": f"first lock, {n} path components",
            "raisin_s": first,
            "reference_s": 10.0,
            "reference": "goal",
            "ratio": first / 10.0,
            "goal": "≤ 10 s",
        }
    )
    t = timed([RAISIN, "lock"], cwd=big, repeat=3)
    rows.append(
        {
            "name": f"no-op lock, {n} path components",
            "raisin_s": t,
            "reference_s": 3.0,
            "reference": "goal",
            "ratio": t / 3.0,
            "goal": "≤ 3 s",
        }
    )
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for r in run(Path(d)):
            print(r)
