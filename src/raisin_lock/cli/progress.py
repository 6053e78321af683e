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
    """One line per event, on stderr: what CI logs want."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()

    def _say(self, msg: str) -> None:
        if not self.quiet:
            with self._lock:
                print(msg, file=sys.stderr, flush=True)

    def planned(self, names: list[str], what: str = "build") -> None:
        self.total += len(names)
        self._say(f"{len(names)} to {what}: {', '.join(names)}")

    def started(self, name: str, what: str) -> None:
        self._say(f"{what} {name}")

    def finished(
        self, name: str, ok: bool, seconds: float, log: Path | None, note: str = ""
    ) -> None:
        self.done += 1
        state = "ok" if ok else "FAILED"
        extra = f", {note}" if note else ""
        self._say(f"[{self.done}/{self.total}] {name} {state} ({seconds:.1f}s{extra})")

    def warn(self, message: str) -> None:
        with self._lock:
            print(f"warning: {message}", file=sys.stderr, flush=True)


class LiveEvents(PlainEvents):
    """A rich Live table: running builds with elapsed time, done/total."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.running: dict[str, tuple[str, float]] = {}
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._stop = threading.Event()
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self.live.update(self._render())

    def _render(self) -> Table:
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, (what, t0) in sorted(self.running.items()):
            t.add_row(f"[cyan]{what}[/]", name, f"{now - t0:5.0f}s")
        t.add_row("", f"[bold]{self.done}/{self.total}[/] done", "")
        return t

    def _say(self, msg: str) -> None:
        self.console.print(msg, highlight=False)

    def started(self, name: str, what: str) -> None:
        self.running[name] = (what, time.monotonic())

    def finished(
        self, name: str, ok: bool, seconds: float, log: Path | None, note: str = ""
    ) -> None:
        self.running.pop(name, None)
        super().finished(name, ok, seconds, log, note)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    def close(self) -> None:
        self._stop.set()
        self.live.stop()


def make_events(quiet: bool) -> Events:
    if not quiet and sys.stderr.isatty():
        return LiveEvents()
    return PlainEvents(quiet)
