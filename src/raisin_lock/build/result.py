"""What a realize did: built, substituted, already valid, failed, skipped, cancelled.

Kept apart from the scheduler so that the no-op realize (everything valid)
can answer without importing the scheduler and its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Failure:
    name: str
    reason: str
    log: Path | None = None


@dataclass
class RealizeResult:
    built: list[str] = field(default_factory=list)
    substituted: list[str] = field(default_factory=list)
    already_valid: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)  # the builds that failed themselves
    skipped: list[str] = field(default_factory=list)  # not built: a dependency failed
    cancelled: list[Failure] = field(default_factory=list)  # killed: another build failed
    not_started: list[str] = field(default_factory=list)  # left when the realize stopped
    not_reproducible: dict[str, list[str]] = field(default_factory=dict)
    check_summary: dict[str, str] = field(default_factory=dict)
    # name -> compiler cache (hits, misses); the builds started from a checkpoint
    compiler_cache: dict[str, tuple[int, int]] = field(default_factory=dict)
    checkpointed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.skipped
            or self.cancelled
            or self.not_started
            or self.not_reproducible
        )
