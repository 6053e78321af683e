"""Ctrl-C and SIGTERM during a realize: builds stop at once, nothing half-done stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RAISIN, raisin

pytestmark = pytest.mark.timeout(120)


def _sleeper(proj: Path) -> None:
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f").write_text("f\n")
    (proj / "raisin.toml").write_text(
        '[components.sleeper]\nsource = { path = "src" }\n'
        'build = ["mkdir $out", "echo started", "sleep 900", "touch $out/done"]\n'
    )


def _interrupt(proj: Path, sig: int, *extra: str) -> tuple[int, str]:
    assert raisin("lock", cwd=proj).code == 0
    p = subprocess.Popen(
        [RAISIN, "realize", *extra],
        cwd=proj,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job would be
    )
    assert p.stderr is not None
    seen = []
    for line in p.stderr:  # wait until the build runs
        seen.append(line)
        if line.startswith("building sleeper"):
            break
    logs = proj / "store" / ".raisin" / "logs"
    while not any("started" in log.read_text() for log in logs.glob("*sleeper*.log")):
        time.sleep(0.05)
    os.killpg(p.pid, sig)
    code = p.wait(timeout=60)  # the build sleeps 900 s: exiting within this means it was killed
    err = "".join(seen) + p.stderr.read()
    return code, err


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_build_registers_nothing_and_cleans_up(
    tmp_path: Path, sig: int, sandbox: str
) -> None:
    proj = tmp_path / "p"
    _sleeper(proj)
    code, err = _interrupt(proj, sig, "--sandbox", sandbox)
    assert code == 130, err
    # the build sleeps 900 s and raisin had 60 s to exit (p.wait above): it killed the build
    assert "interrupted" in err and "Traceback" not in err
    r = raisin("show", "--json", cwd=proj)
    assert r.code == 0, r
    assert json.loads(r.out)["components"]["sleeper"]["built"] is False
    assert list((proj / "store" / ".raisin" / "tmp").iterdir()) == []
    assert not list(proj.joinpath("store").glob("*-sleeper*"))  # no partial output
    # nothing of the build is left running
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(proj) not in ps
