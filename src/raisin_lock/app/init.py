"""Init: write a starter manifest from a shipped template."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from raisin_lock import atomic
from raisin_lock.app.project import Project
from raisin_lock.display import display_path
from raisin_lock.errors import InputError, ManifestError
from raisin_lock.manifest.recipe import version_key

QEMU_TRADITIONAL_BLOCK = """
# Xen before 4.19 can still build the legacy device model; enable it with
# `options = { qemu_traditional = true }` on xen and `"qemu-traditional"` in its deps.
[components.qemu-traditional]
source = { git = "https://xenbits.xen.org/git-http/qemu-xen-traditional.git" }
follows = "xen"
recipe = "qemu-traditional"
"""


DEFAULT_XEN_REF = "RELEASE-4.21.0"


def render_template(text: str, xen_ref: str | None) -> str:
    """Fill a template's @XEN_REF@ (any Xen >= 4.5) and its version-dependent parts."""
    ref = xen_ref or DEFAULT_XEN_REF
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", ref)
    if m and version_key(m.group(1)) < version_key("4.5"):
        raise InputError(
            f"Xen {m.group(1)} is older than 4.5, the oldest raisin builds", key="--xen"
        )
    old_xen = bool(m) and version_key(m.group(1)) < version_key("4.19")  # type: ignore[union-attr]
    return text.replace("@XEN_REF@", ref).replace(
        "@QEMU_TRADITIONAL@", QEMU_TRADITIONAL_BLOCK if old_xen else ""
    )


def init_manifest(project: Project, template: str, xen_ref: str | None = None) -> Path:
    path = project.manifest_path
    if path.exists():
        raise ManifestError("already exists; not overwriting", file=display_path(path))
    res = resources.files("raisin_lock.manifest.templates").joinpath(f"{template}.toml")
    if not res.is_file():
        names = sorted(
            p.name[:-5]
            for p in resources.files("raisin_lock.manifest.templates").iterdir()
            if p.name.endswith(".toml")
        )
        raise InputError(
            f"unknown template {template!r} (available: {', '.join(names)})", key="--template"
        )
    project.dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, render_template(res.read_text(), xen_ref))
    return path
