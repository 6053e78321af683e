"""raisin realize timings: no-op realize of the built demo and of 1000 built components."""

from __future__ import annotations

from pathlib import Path

from common import RAISIN, copy_demo, python_startup, synthetic_stack, timed


def run(workdir: Path, quick: bool = False) -> list[dict]:
    rows = []
    py = python_startup()
    demo = copy_demo(workdir)
    timed([RAISIN, "realize"], cwd=demo, repeat=1)
    t = timed([RAISIN, "realize"], cwd=demo, repeat=7)
    rows.append(
        {
            "name": "no-op realize, built demo",
            "raisin_s": t,
            "reference_s": py,
            "reference": "python -c pass",
            "ratio": t / 0.3,
            "goal": "≤ 0.3 s (goal 0.15)",
        }
    )
    n = 200 if quick else 1000
    big = workdir / "big"
    synthetic_stack(big, n)
    timed([RAISIN, "-q", "realize", "-j", "2"], cwd=big, repeat=1)
    t = timed([RAISIN, "realize"], cwd=big, repeat=3)
    rows.append(
        {
            "name": f"no-op realize, {n} built components",
            "raisin_s": t,
            "reference_s": 2.0,
            "reference": "goal",
            "ratio": t / 2.0,
            "goal": "≤ 2 s",
        }
    )
    return rows
