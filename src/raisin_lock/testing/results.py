"""Test results: what ``raisin test`` reports for each test and for the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from raisin_lock.testing.spec import TestCase

Status = Literal["passed", "failed", "skipped", "error"]


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    name: str
    origin: str
    status: Status
    reason: str
    seconds: float = 0.0
    log: Path | None = None
    tail: list[str] = field(default_factory=list)
    workdir: Path | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> what was used
    unpinned: dict[str, str] = field(default_factory=dict)  # input name -> the table that pins it


@dataclass
class TestRun:
    __test__ = False  # not a pytest class

    results: list[TestResult]
    started: float
    log_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r.status in ("passed", "skipped") for r in self.results)


class Progress:
    """What a caller hears while tests run (the CLI prints; tests may record)."""

    def info(self, message: str) -> None:
        pass

    def started(self, case: TestCase) -> None:
        """A test is about to fetch its inputs and run (skipped tests are only ``finished``)."""

    def finished(self, result: TestResult) -> None:
        pass
