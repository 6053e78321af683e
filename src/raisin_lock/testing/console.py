"""One test run: shell steps in their own process group, the console watched.

The steps run under ``sh`` (``set -eu``) in the test's directory, in a new
session, so the QEMU they start is in the same process group and is always
killed at the end — when the expectations are met (a guest sitting at "No
bootable device" never exits by itself), at the timeout, on a failure
pattern, on Ctrl-C or SIGTERM. Everything the steps print (stdout and stderr
merged: the "console") is written to the log as it arrives and matched:

- ``expect`` patterns must appear in order; once all have, the run passed;
- a ``fail-on`` pattern on any line fails the run at once;
- without ``expect``, the run passes when the steps exit with status 0.

Step headers go to the log through the same pipe behind a marker byte and
are never matched, so ``echo MARKER`` in a step does not satisfy itself.
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from raisin_lock.testing.spec import Pattern

MARK = "\x1e"  # record separator: starts a line raisin's shell wrapper prints
TAIL_LINES = 30
_KILL_GRACE = 3.0

# $1.. are the steps; a failing step is named, like a build's.
_SCRIPT = f"""set -eu
__raisin_n=0
__raisin_total=$#
__raisin_step=
trap '__raisin_rc=$?
if [ "$__raisin_rc" -ne 0 ]; then
  printf "{MARK}raisin: step %s/%s failed with exit status %s: %s\\n" "$__raisin_n" "$__raisin_total" "$__raisin_rc" "$__raisin_step"
fi' EXIT
for __raisin_step in "$@"; do
  set --
  __raisin_n=$((__raisin_n + 1))
  printf '{MARK}+ %s\\n' "$__raisin_step"
  eval "$__raisin_step"
done
"""


@dataclass
class Outcome:
    passed: bool
    reason: str
    seconds: float
    tail: list[str] = field(default_factory=list)
    seen: int = 0  # how many expectations were met


class _Watch:
    """Console text seen so far, and how far the ordered expectations got."""

    def __init__(self, expect: tuple[Pattern, ...], fail_on: tuple[Pattern, ...]) -> None:
        self.expect = expect
        self.fail_on = fail_on
        self.text: list[str] = []  # console lines (complete), marker lines excluded
        self.partial = ""
        self.joined = ""
        self.pos = 0
        self.met = 0
        self.failed: str | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.step_failure: str | None = None

    def feed(self, chunk: str, log: object) -> None:
        data = self.partial + chunk
        lines = data.split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line.rstrip("\r"), log)
        # An unfinished line (a prompt, "Reboot in five seconds...") is matched too.
        unfinished = self.partial.split(MARK, 1)[0]
        if unfinished:
            self._match(self.joined + unfinished)

    def flush(self, log: object) -> None:
        if self.partial:
            self._line(self.partial.rstrip("\r"), log)
            self.partial = ""

    def keep_unfinished(self, log: object) -> None:
        """The run stopped mid-line (an expectation met, a timeout): log that line, unjudged.

        It was matched as it arrived (``feed``); it is often the very line that
        met the last expectation, so the log and the tail must show it.
        """
        text, mark, header = self.partial.partition(MARK)
        self.partial = ""
        text = text.rstrip("\r")
        if text:
            log.write(text + "\n")  # type: ignore[attr-defined]
            self.tail.append(text)
        if mark and header:
            log.write(header + "\n")  # type: ignore[attr-defined]

    def _line(self, line: str, log: object) -> None:
        cut = line.find(MARK)
        if cut > 0:
            # Output without a final newline, then raisin's next header: two lines.
            self._line(line[:cut], log)
            line = line[cut:]
        if line.startswith(MARK):
            text = line[len(MARK) :]
            log.write(text + "\n")  # type: ignore[attr-defined]
            if text.startswith("raisin: step "):
                self.step_failure = text[len("raisin: ") :]
            return
        log.write(line + "\n")  # type: ignore[attr-defined]
        self.tail.append(line)
        if self.failed is None:
            for p in self.fail_on:
                if p.find(line) >= 0:
                    self.failed = f"the console printed {p}: {line.strip()[:200]}"
                    break
        self.joined += line + "\n"
        self._match(self.joined)

    def _match(self, text: str) -> None:
        while self.met < len(self.expect):
            end = self.expect[self.met].find(text, self.pos)
            if end < 0:
                return
            self.pos = end
            self.met += 1

    @property
    def done(self) -> bool:
        return bool(self.expect) and self.met == len(self.expect)

    def waiting_for(self) -> str:
        return str(self.expect[self.met]) if self.met < len(self.expect) else ""


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, _KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.05)
    proc.poll()


def _group_alive(pgid: int) -> bool:
    """Is any process of the group still running? (Zombies waiting for init do not count.)"""
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    if not entries:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while a guest runs, so it is killed too."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(
    steps: tuple[str, ...],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    expect: tuple[Pattern, ...],
    fail_on: tuple[Pattern, ...],
    timeout: float,
) -> Outcome:
    """Run ``steps`` and judge the console; the process group never outlives this call."""
    watch = _Watch(expect, fail_on)
    start = time.monotonic()
    deadline = start + timeout
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(log_path, "a", encoding="utf-8", errors="replace") as log, _sigterm_interrupts():
        proc = subprocess.Popen(
            ["sh", "-c", _SCRIPT, "raisin-test", *steps],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        eof = timed_out = False
        try:
            while not (eof or watch.done or watch.failed):
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([fd], [], [], min(left, 0.5))
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    eof = True
                    watch.feed(decoder.decode(b"", final=True), log)
                    watch.flush(log)
                    break
                watch.feed(decoder.decode(chunk), log)
                log.flush()
            if eof:
                # The pipe closes when the steps end; collect the status.
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            kill_group(proc)
            proc.stdout.close()
            elapsed = time.monotonic() - start
            if not eof:
                watch.keep_unfinished(log)
            if timed_out or not eof:
                log.write(f"raisin: stopped the test's processes after {elapsed:.1f}s\n")
    seconds = time.monotonic() - start
    tail = list(watch.tail)
    if watch.failed:
        return Outcome(False, watch.failed, seconds, tail, watch.met)
    if watch.done:
        return Outcome(True, f"all {len(expect)} expected patterns seen", seconds, tail, watch.met)
    progress = f" ({watch.met}/{len(expect)} expected patterns seen)" if expect else ""
    if timed_out:
        what = f"waiting for {watch.waiting_for()}" if expect else "the steps were still running"
        return Outcome(
            False, f"timed out after {timeout:g}s {what}{progress}", seconds, tail, watch.met
        )
    rc = proc.returncode
    if expect:
        cause = watch.step_failure or (
            f"the steps exited with status {rc}" if rc else "the steps ended"
        )
        return Outcome(
            False,
            f"{cause} before {watch.waiting_for()} appeared{progress}",
            seconds,
            tail,
            watch.met,
        )
    if rc != 0:
        return Outcome(
            False, watch.step_failure or f"the steps exited with status {rc}", seconds, tail, 0
        )
    return Outcome(True, "the steps exited with status 0", seconds, tail, 0)
