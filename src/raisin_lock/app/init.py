"""Init: write a starter manifest from a shipped template, and the files it refers to.

``raisin init`` in an empty directory must give a project that locks and
builds as it is, so a template ships the sources its manifest points at
(the starter's ``hello/hello.c``) next to its ``.toml``.

The xen template takes a Xen ref (``--xen``): a release tag, a stable or
staging branch, ``master``/``staging``, or a full commit. Seabios, OVMF and
qemu-xen follow Xen's own Config.mk, so they fit any release; grub, libvirt
and linux are pinned once, for the release the template was tested with
(:data:`TESTED_XEN`), and the generated file says so when another Xen is
asked for. Libvirt's libxl driver needs Xen >= 4.6, so for 4.5 its component
is left commented out and out of the default profile.
"""

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

LIBVIRT_BLOCK = """[components.libvirt]
source = { git = "https://gitlab.com/libvirt/libvirt.git", ref = "v11.9.0" }
recipe = "libvirt"
deps = ["xen"]
"""

DEFAULT_XEN_REF = "RELEASE-4.21.0"
TESTED_XEN = "4.21"
OLDEST_XEN = "4.5"
LIBVIRT_MIN_XEN = "4.6"
DEFAULT_PROFILE = ["xen", "qemu-xen", "seabios", "ovmf", "grub", "libvirt", "linux"]

# What a --xen value may be; the groups hold the X.Y it names, when it names one.
XEN_REF_FORMS = re.compile(
    r"RELEASE-(?P<rel>\d+\.\d+)\.\d+"
    r"|(?P<rc>\d+\.\d+)\.\d+-rc\d+"
    r"|(?:stable|staging)-(?P<branch>\d+\.\d+)"
    r"|master|staging"
    r"|[0-9a-f]{40}"
)

# Files a template ships besides its .toml: path in the project -> resource in templates/.
TEMPLATE_FILES: dict[str, dict[str, str]] = {
    "starter": {"hello/hello.c": "starter/hello.c"},
}


def xen_release(ref: str) -> str | None:
    """The X.Y a valid --xen value names (None for master, staging or a commit)."""
    m = XEN_REF_FORMS.fullmatch(ref)
    if m is None:
        raise InputError(
            f"expected a Xen tag (RELEASE-X.Y.Z), a branch (stable-X.Y, master, staging) "
            f"or a full 40-hex commit, found {ref!r}",
            key="--xen",
        )
    return m.group("rel") or m.group("rc") or m.group("branch")


def render_template(text: str, xen_ref: str | None) -> str:
    """Fill a template's @XEN_REF@ (any Xen >= 4.5) and its version-dependent parts."""
    ref = xen_ref or DEFAULT_XEN_REF
    release = xen_release(ref)
    if release and version_key(release) < version_key(OLDEST_XEN):
        raise InputError(
            f"Xen {release} is older than {OLDEST_XEN}, the oldest raisin builds", key="--xen"
        )
    old_xen = release is not None and version_key(release) < version_key("4.19")
    no_libvirt = release is not None and version_key(release) < version_key(LIBVIRT_MIN_XEN)
    note = ""
    if release != TESTED_XEN:
        note = (
            f"#\n# UNTESTED with Xen {release or ref}:\n"
            f"# grub (grub-2.12), libvirt (v11.9.0) and linux (v6.12.58) are pinned for\n"
            f"# Xen {TESTED_XEN}, the release this template was tested with; if one does\n"
            "# not build, pin a release of your Xen's era.\n"
        )
    libvirt = LIBVIRT_BLOCK
    profile = DEFAULT_PROFILE
    if no_libvirt:
        libvirt = (
            f"# libvirt's libxl driver needs Xen >= {LIBVIRT_MIN_XEN}; left out for Xen {release}.\n"
            + "".join(f"# {line}\n" for line in LIBVIRT_BLOCK.splitlines())
        )
        profile = [n for n in DEFAULT_PROFILE if n != "libvirt"]
    return (
        text.replace("@XEN_REF@", ref)
        .replace("@COMPANIONS_NOTE@", note)
        .replace("@LIBVIRT@", libvirt)
        .replace("@DEFAULT_PROFILE@", "[" + ", ".join(f'"{n}"' for n in profile) + "]")
        .replace("@QEMU_TRADITIONAL@", QEMU_TRADITIONAL_BLOCK if old_xen else "")
    )


def init_manifest(project: Project, template: str | None, xen_ref: str | None = None) -> Path:
    """Write raisin.toml (and the template's files); nothing at all on bad input.

    ``--xen`` alone implies the xen template; with another template it is an error.
    """
    if template is None:
        template = "xen" if xen_ref is not None else "starter"
    elif xen_ref is not None and template != "xen":
        raise InputError(f"only applies to --template xen, not --template {template}", key="--xen")
    path = project.manifest_path
    if path.exists():
        raise ManifestError("already exists; not overwriting", file=display_path(path))
    templates = resources.files("raisin_lock.manifest.templates")
    res = templates.joinpath(f"{template}.toml")
    if not res.is_file():
        names = sorted(p.name[:-5] for p in templates.iterdir() if p.name.endswith(".toml"))
        raise InputError(
            f"unknown template {template!r} (available: {', '.join(names)})", key="--template"
        )
    text = render_template(res.read_text(), xen_ref)
    files = TEMPLATE_FILES.get(template, {})
    for rel in files:
        if (project.dir / rel).exists():
            raise ManifestError(
                f"already exists; not overwriting (raisin init writes it for --template {template})",
                file=display_path(project.dir / rel),
            )
    project.dir.mkdir(parents=True, exist_ok=True)
    for rel, resource in files.items():
        dest = project.dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(dest, templates.joinpath(resource).read_text())
    atomic.write_text(path, text)
    return path
