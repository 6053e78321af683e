"""Build progress: a live rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.build.events import Events

if TYPE_CHECKING:
    from rich.table import Table


class PlainEvents(Events):
    """One line per event, on stderr: what CI logs want.

    Every planned component ends with exactly one ``[n/total]`` line (ok,
    FAILED, cancelled, or not built and why), so the last line reads
    ``[total/total]`` and the count always matches the lines printed.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self.running: dict[str, tuple[str, float]] = {}  # name -> (what, start)
        self._lock = threading.Lock()

    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _changed(self) -> None:
        """Called with the lock held after every change (the live display redraws)."""

    def _say_started(self, msg: str) -> None:
        self._say(msg)

    def planned(self, names: list[str], what: str = "build") -> None:
        with self._lock:
            self.total += len(names)
            self._say(f"{len(names)} to {what}: {', '.join(names)}")
            self._changed()

    def started(self, name: str, what: str) -> None:
        with self._lock:
            self.running[name] = (what, time.monotonic())
            self._say_started(f"{what} {name}")
            self._changed()

    def _end(self, name: str, state: str) -> None:
        self.running.pop(name, None)
        self.done += 1
        self._changed()  # the table first: printing the line redraws it
        self._say(f"[{self.done}/{self.total}] {name} {state}")

    def finished(
        self, name: str, ok: bool, seconds: float, log: Path | None, note: str = ""
    ) -> None:
        extra = f", {note}" if note else ""
        with self._lock:
            self._end(name, f"{'ok' if ok else 'FAILED'} ({seconds:.1f}s{extra})")

    def cancelled(self, name: str, seconds: float, log: Path | None) -> None:
        with self._lock:
            self._end(name, f"cancelled ({seconds:.1f}s, another build failed)")

    def skipped(self, name: str, why: str) -> None:
        with self._lock:
            self._end(name, f"not built ({why})")

    def warn(self, message: str) -> None:
        with self._lock:
            print(f"warning: {message}", file=sys.stderr, flush=True)


class LiveEvents(PlainEvents):
    """A rich Live table under the lines: running builds with elapsed time, done/total."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._stop = threading.Event()
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._changed()

    def _render(self) -> Table:
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, (what, t0) in sorted(self.running.items()):
            t.add_row(f"[cyan]{what}[/]", name, f"{now - t0:5.0f}s")
        if self.total:  # nothing planned yet: no "0/0"
            t.add_row("", f"[bold]{self.done}/{self.total}[/] done", "")
        return t

    def _changed(self) -> None:
        self.live.update(self._render(), refresh=True)

    def _say(self, msg: str) -> None:
        self.console.print(msg, highlight=False)

    def _say_started(self, msg: str) -> None:
        pass  # the table shows what runs

    def warn(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self.live.stop()


def make_events(quiet: bool) -> Events:
    if not quiet and sys.stderr.isatty():
        return LiveEvents()
    return PlainEvents(quiet)
