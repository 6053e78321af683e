"""The toolchain record: which host compiler, binutils, make and libc a lock was made with.

Builds use the host toolchain (read-only in the sandbox), so the lock records
its versions, and the versions of each component's declared build-dependency
packages; ``realize`` compares them with the host and warns on differences.
Probing runs a few subprocesses, so it happens only when a lock is made or
updated, never on a no-op.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess


def system() -> str:
    machine = platform.machine() or "unknown"
    return (
        f"{ {'amd64': 'x86_64', 'arm64': 'aarch64'}.get(machine.lower(), machine) }-linux".replace(
            " ", ""
        )
    )


def _first_line(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=30,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def probe() -> dict[str, str]:
    """Versions of the host toolchain, as one line each."""
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    return {
        "cc": _first_line(["cc", "--version"]),
        "ld": _first_line(["ld", "--version"]),
        "make": _first_line(["make", "--version"]),
        "libc": libc or "unknown",
    }


def package_versions(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Installed versions of distro packages (dpkg, else rpm); "not installed" when absent."""
    if not names:
        return {}
    result = {n: "not installed" for n in names}
    if shutil.which("dpkg-query"):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n", *names],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in out.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[2] == "installed" and parts[0] in result:
                result[parts[0]] = parts[1]
    elif shutil.which("rpm"):
        for n in names:
            out = subprocess.run(
                ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", n],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0:
                result[n] = out.stdout.strip()
    return result


def differences(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """Human lines for each key whose value differs."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        a, b = recorded.get(key, "absent"), current.get(key, "absent")
        if a != b:
            lines.append(f"{key}: locked with {a!r}, host has {b!r}")
    return lines
