"""Options several commands share, defined once so their help reads the same everywhere."""

from __future__ import annotations

import argparse


def sandbox(p: argparse.ArgumentParser) -> None:
    """``--sandbox auto|bwrap|none``: how builds are isolated."""
    p.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "none"],
        default="auto",
        help="auto: bubblewrap when it works, else none; bwrap: require it; none: no sandbox",
    )


def offline(p: argparse.ArgumentParser) -> None:
    """``--offline``: fetch nothing."""
    p.add_argument(
        "--offline",
        action="store_true",
        help="fetch nothing: use only sources already in the store or local mirrors",
    )
