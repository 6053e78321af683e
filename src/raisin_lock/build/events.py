"""Progress callbacks of a realize; the CLI subclasses :class:`Events` to print or draw.

Kept apart from the scheduler so that the CLI can define its displays without
importing the scheduler (and its thread pool) on the no-op path.
"""

from __future__ import annotations

from pathlib import Path


class Events:
    """Progress callbacks; the CLI subclasses this to print or draw."""

    def planned(self, names: list[str], what: str = "build") -> None: ...
    def started(self, name: str, what: str) -> None: ...
    def finished(
        self, name: str, ok: bool, seconds: float, log: Path | None, note: str = ""
    ) -> None: ...
    def cancelled(self, name: str, seconds: float, log: Path | None) -> None:
        """A running build was killed because another one failed."""

    def skipped(self, name: str, why: str) -> None:
        """A planned build will not run: ``why`` (a dependency failed, the realize stopped)."""

    def warn(self, message: str) -> None: ...
    def close(self) -> None: ...
