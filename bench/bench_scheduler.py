"""Scheduler quality: -j 2 makespan of a sleep-based DAG vs its lower bound."""

from __future__ import annotations

import random
import time
from pathlib import Path

from common import RAISIN, timed


def run(workdir: Path, quick: bool = False) -> list[dict]:
    rng = random.Random(7)
    n = 12 if quick else 24
    proj = workdir / "dag"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f").write_text("f\n")
    durations, deps = {}, {}
    parts = []
    for i in range(n):
        d = round(rng.uniform(0.2, 1.2), 2)
        ds = sorted({f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 2)))})
        durations[f"t{i}"], deps[f"t{i}"] = d, ds
        parts.append(
            f'[components.t{i}]\nsource = {{ path = "src" }}\nversion = "1"\n'
            + f"deps = {ds!r}\n".replace("'", '"')
            + f'build = ["sleep {d}", "mkdir $out"]\n'
        )
    (proj / "raisin.toml").write_text("\n".join(parts))
    timed([RAISIN, "lock"], cwd=proj, repeat=1)
    # critical path
    finish: dict[str, float] = {}
    for i in range(n):
        name = f"t{i}"
        finish[name] = durations[name] + max((finish[d] for d in deps[name]), default=0.0)
    bound = max(max(finish.values()), sum(durations.values()) / 2)
    t0 = time.perf_counter()
    timed([RAISIN, "-q", "realize", "-j", "2"], cwd=proj, repeat=1)
    makespan = time.perf_counter() - t0
    return [
        {
            "name": f"-j 2 makespan, {n}-node sleep DAG",
            "raisin_s": makespan,
            "reference_s": bound,
            "reference": "max(critical path, work/2)",
            "ratio": makespan / bound,
            "goal": "≤ 1.1",
        }
    ]
