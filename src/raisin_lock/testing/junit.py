"""JUnit XML for CI: one ``<testsuite name="raisin">`` with a ``<testcase>`` per test.

The layout is the one Jenkins, GitLab and GitHub test reporters read:
``<failure>`` for a test whose expectation was not met, ``<error>`` for one
that could not run (an input failed to fetch, a component failed to build),
``<skipped>`` with the reason, the console log in ``<system-out>``, resolved
inputs as ``<properties>``. Console bytes XML 1.0 cannot carry (escape
sequences, NULs) are dropped.
"""

from __future__ import annotations

import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raisin_lock.testing.results import TestRun

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1bc")
MAX_OUTPUT = 512 * 1024


def clean(text: str) -> str:
    return _NOT_XML.sub("", _ANSI.sub("", text))


def _read_log(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    data = path.read_bytes()
    if len(data) > MAX_OUTPUT:
        data = b"[... beginning cut ...]\n" + data[-MAX_OUTPUT:]
    return clean(data.decode("utf-8", errors="replace"))


def _classname(suite: str, origin: str) -> str:
    first = origin.split(" + ")[0]
    return f"{suite}.recipe.{first[7:]}" if first.startswith("recipe ") else f"{suite}.manifest"


def render(run: TestRun, *, suite: str = "raisin") -> bytes:
    results = run.results
    root = ET.Element("testsuites")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(sum(r.status == "failed" for r in results)),
        errors=str(sum(r.status == "error" for r in results)),
        skipped=str(sum(r.status == "skipped" for r in results)),
        time=f"{sum(r.seconds for r in results):.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(run.started)),
        hostname=socket.gethostname(),
    )
    root.set("tests", ts.get("tests", "0"))
    root.set("failures", ts.get("failures", "0"))
    root.set("errors", ts.get("errors", "0"))
    root.set("time", ts.get("time", "0"))
    for r in results:
        tc = ET.SubElement(
            ts,
            "testcase",
            classname=_classname(suite, r.origin),
            name=r.name,
            time=f"{r.seconds:.3f}",
        )
        if r.inputs:
            props = ET.SubElement(tc, "properties")
            for k, v in sorted(r.inputs.items()):
                ET.SubElement(props, "property", name=f"input.{k}", value=clean(v))
        tail = clean("\n".join(r.tail))
        if r.status == "failed":
            ET.SubElement(tc, "failure", message=clean(r.reason), type="expectation").text = tail
        elif r.status == "error":
            ET.SubElement(tc, "error", message=clean(r.reason), type="setup").text = tail
        elif r.status == "skipped":
            ET.SubElement(tc, "skipped", message=clean(r.reason))
        out = _read_log(r.log)
        if out:
            ET.SubElement(tc, "system-out").text = out
    ET.indent(root)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + bytes(ET.tostring(root, encoding="utf-8"))
        + b"\n"
    )


def write(run: TestRun, path: Path) -> None:
    data = render(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
