#!/usr/bin/env python3
"""Run raisin's benchmarks: print a table, write bench/results/<time>.json.

Each row compares raisin with a reference measured in the same run (or a
fixed goal for absolute timings); goals are ratios, never asserted in tests.

    python bench/run.py [--only lock,realize,scheduler,sandbox,nar,compile,gc,cache] [--quick] [--real]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SUITES = [
    "lock",
    "realize",
    "scheduler",
    "sandbox",
    "nar",
    "compile",
    "gc",
    "cache",
    "devloop",
    "remote",
]


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SUITES))
    ap.add_argument("--quick", action="store_true", help="smaller inputs (for a smoke run)")
    ap.add_argument(
        "--real",
        action="store_true",
        help="also build SeaBIOS + Xen from Debian sources, Xen's developer loop, and hash "
        "the Debian linux source (~35 min)",
    )
    args = ap.parse_args()
    # Bytecode as a pip install leaves it: with PYTHONDONTWRITEBYTECODE set (as
    # in some CI and agent shells) an editable install never gets .pyc files
    # and every raisin start compiles ~40 modules (~0.1 s), which is not what
    # users run. Compiling here writes them once; Python reads them regardless.
    import compileall

    compileall.compile_dir(str(HERE.parent / "src"), quiet=1)
    rows: list[dict] = []
    suites = args.only.split(",") + (["real", "devloop_xen", "nar_linux"] if args.real else [])
    for suite in suites:
        mod = importlib.import_module(f"bench_{suite}")
        with tempfile.TemporaryDirectory(prefix=f"raisin-bench-{suite}-") as tmp:
            t0 = time.monotonic()
            try:
                got = (
                    mod.run(Path(tmp), quick=args.quick)
                    if "quick" in mod.run.__code__.co_varnames
                    else mod.run(Path(tmp))
                )
            except Exception as exc:  # noqa: BLE001  a broken suite must not hide the others
                got = [{"name": f"{suite}: FAILED", "error": repr(exc)}]
            for r in got:
                r.setdefault("suite", suite)
            rows += got
            print(f"# {suite}: {time.monotonic() - t0:.1f}s", file=sys.stderr)
    cols = ["name", "raisin_s", "reference_s", "ratio", "goal", "reference"]
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(widths[c]) for c in cols))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime("%Y%m%dT%H%M%S.json")
    path.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
