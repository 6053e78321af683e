"""What a realize did: built, substituted, already valid, failed, skipped.

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
    failed: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_reproducible: dict[str, list[str]] = field(default_factory=dict)
    check_summary: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.not_reproducible
