"""What every command gets: the project, verbosity, and how to print."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raisin_lock.app.project import Project


@dataclass
class Context:
    project: Project
    verbose: int = 0
    quiet: bool = False

    def info(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr, flush=True)

    def out(self, msg: str = "") -> None:
        print(msg, flush=True)

    def json(self, data: object) -> None:
        """One JSON document on stdout (the shapes are in README.md, "JSON output")."""
        import json

        print(json.dumps(data, indent=2, sort_keys=True), flush=True)
