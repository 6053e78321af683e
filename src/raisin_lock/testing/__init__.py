"""Functional tests of the realized stack: ``raisin test``.

A test is declared as ``[tests.NAME]`` in a recipe (it then exists in every
stack with a component built by that recipe) or in ``raisin.toml`` (which
may also extend or override a recipe's test of the same name). It names the
components it ``needs``, host ``tools`` it runs (QEMU), binary ``inputs``
(distro packages, pinned and unpacked into the store), ``files`` to write,
shell ``run`` steps, console patterns it must ``expect`` in order and any
that ``fail-on`` at once, a ``timeout``, and the tests it comes ``after``.

Why this exists: the old Raisin's ``raise test`` needed a host booted into
Xen. These tests boot what raisin built under QEMU's software emulation, so
any Linux laptop or CI runner can run them; the console is the oracle.

- :mod:`.spec` — collecting tests from recipes and the manifest: ``TestCase``.
- :mod:`.inputs` — Debian binary packages as pinned store paths.
- :mod:`.console` — one run: the process group, the log, the patterns, the clock.
- :mod:`.results` — what a test and a run report (the use case that runs
  them is :mod:`raisin_lock.app.testing`).
- :mod:`.junit` — JUnit XML for CI.
- ``lib/`` (:data:`LIB_DIR`) — the shell library the recipes' boot tests
  share instead of copying: ``guest.sh`` (one initramfs builder for dom0 and
  guests, one disk-image maker, one QEMU command line, guest overlays),
  ``dom0.sh`` and ``dom0-init`` (inside dom0), ``guest-init`` (inside a
  guest). The runner copies it into every test directory and names the copy
  ``$RAISIN_TEST_LIB``, so a kept directory replays on its own.
"""

from __future__ import annotations

from pathlib import Path

from raisin_lock.testing.results import TestResult, TestRun
from raisin_lock.testing.spec import TestCase, collect

LIB_DIR = Path(__file__).parent / "lib"

__all__ = ["LIB_DIR", "TestCase", "TestResult", "TestRun", "collect"]
