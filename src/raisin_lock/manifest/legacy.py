"""The legacy Raisin config: a bash file of variable assignments, turned into a raisin.toml.

Raisin (2015, Xen's "DevStack") read a ``config`` file after its
``defconfig``: ``ENABLED_COMPONENTS``, ``<NAME>_URL`` / ``<NAME>_REVISION``
per component, ``XEN_RELEASE`` presets of revisions, ``GIT_TRANSPORT``
(which URL set), ``PREFIX``, ``DESTDIR``, ``MAKE``, ``ENABLED_TESTS``.

The file is *parsed, never executed* (:mod:`raisin_lock.shellvars`): a
config can never run code on the machine importing it; whatever is not a
plain assignment is reported and skipped.

:func:`convert` maps the variables onto built-in recipes and the
dependency edges of XEN-STACK.md, and lists everything it could not map;
:func:`import_config` writes the result atomically.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from raisin_lock import atomic
from raisin_lock.errors import InputError
from raisin_lock.manifest import recipe as recipes
from raisin_lock.manifest.shellvars import parse_shell

# Raisin's component names, in its build order: (legacy name, variable prefix, raisin name).
COMPONENTS = (
    ("seabios", "SEABIOS", "seabios"),
    ("ovmf", "OVMF", "ovmf"),
    ("xen", "XEN", "xen"),
    ("qemu", "QEMU", "qemu-xen"),
    ("qemu_traditional", "QEMU_TRADITIONAL", "qemu-traditional"),
    ("grub", "GRUB", "grub"),
    ("libvirt", "LIBVIRT", "libvirt"),
    ("linux", "LINUX", "linux"),
)
_BY_LEGACY = {legacy: new for legacy, _, new in COMPONENTS} | {new: new for _, _, new in COMPONENTS}
_PREFIX = {new: prefix for _, prefix, new in COMPONENTS}
_ORDER = [new for _, _, new in COMPONENTS]
# XEN-STACK.md "Components, order, edges": what each component cannot be built
# without (added when the config leaves it out) ...
REQUIRES: dict[str, tuple[str, ...]] = {
    "qemu-xen": ("xen",),
    "qemu-traditional": ("xen",),
    "grub": ("xen",),
    "libvirt": ("xen",),
}
# ... and the manifest's `deps` edges, each wired in when both ends are enabled.
# qemu-traditional is built inside Xen's tree (it needs XEN_ROOT and the built
# tools), so with the built-in recipes the edge runs xen -> qemu-traditional:
# the qemu-traditional recipe stages its source and the xen recipe builds it
# (option qemu_traditional = true).
EDGES: dict[str, tuple[str, ...]] = {
    "xen": ("seabios", "ovmf", "qemu-traditional"),
    "qemu-xen": ("xen",),
    "grub": ("xen",),
    "libvirt": ("xen",),
}
_XENBITS_REPO = {
    "seabios": "seabios",
    "ovmf": "ovmf",
    "xen": "xen",
    "qemu-xen": "qemu-xen",
    "qemu-traditional": "qemu-xen-traditional",
}
_OTHER_URLS = {
    "grub": ("git://git.savannah.gnu.org/grub.git", "https://git.savannah.gnu.org/git/grub.git"),
    "libvirt": ("git://libvirt.org/libvirt.git", "https://libvirt.org/git/libvirt.git"),
    "linux": (
        "git://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
        "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
    ),
}


def default_url(component: str, transport: str) -> str:
    """The upstream URL Raisin's per-transport URL set gave a component ("git" or "http")."""
    if component in _XENBITS_REPO:
        repo = _XENBITS_REPO[component]
        if transport == "git":
            return f"git://xenbits.xen.org/{repo}.git"
        return f"https://xenbits.xen.org/git-http/{repo}.git"
    git_url, http_url = _OTHER_URLS[component]
    return git_url if transport == "git" else http_url


def _release_preset(xen: str, seabios: str, ovmf: str) -> dict[str, str]:
    branch = f"origin/stable-{xen}"
    return {
        "xen": branch,
        "qemu-xen": branch,
        "qemu-traditional": branch,
        "seabios": seabios,
        "ovmf": ovmf,
        "grub": "master",
        "libvirt": "master",
        "linux": "master",
    }


# XEN_RELEASE presets. Xen, qemu-xen and qemu-traditional follow the release's
# stable branch; SeaBIOS and OVMF are the revisions that Xen release's Config.mk
# pins (SEABIOS_UPSTREAM_REVISION, OVMF_UPSTREAM_REVISION).
PRESETS: dict[str, dict[str, str]] = {
    "4.5": _release_preset("4.5", "rel-1.7.5", "447d264115c476142f884af0be287622cd244423"),
    "4.6": _release_preset("4.6", "rel-1.8.2", "cb9a7ebabcd6b8a49dc0854b2f9592d732b5afbd"),
    "4.7": _release_preset("4.7", "rel-1.9.2", "52a99493cce88a9d4ec8a02d7f1bd1a1001ce60d"),
    "master": {c: "master" for c in _ORDER},
}
DEFAULTS = {
    "ENABLED_COMPONENTS": " ".join(legacy for legacy, _, _ in COMPONENTS),
    "XEN_RELEASE": "master",
    "GIT_TRANSPORT": "git",
    "PREFIX": "/usr",
    "DESTDIR": "dist",
    "MAKE": "make",
}


# ------------------------------------------------------------------ the mapping


@dataclass
class Conversion:
    """The manifest text and what could not be carried over."""

    text: str
    components: list[str]
    unmapped: list[str]
    notes: list[str]


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _shown_setting(name: str, value: str) -> str:
    return f"{name}={_q(value)}"


def _branch(revision: str) -> str:
    """Raisin wrote remote-tracking names (``origin/stable-4.6``); raisin wants the branch."""
    return revision.removeprefix("origin/")


def convert(text: str, source_name: str, *, components_env: str | None = None) -> Conversion:
    """Map a legacy Raisin config onto a raisin.toml (built-in recipes, XEN-STACK.md edges)."""

    sh = parse_shell(text, DEFAULTS)
    var = sh.variables  # defconfig values, then the file's
    in_file = set(sh.lines)
    unmapped: list[str] = list(sh.problems)
    notes: list[str] = []
    used: set[str] = set()

    def setting(name: str) -> str:
        used.add(name)
        return var.get(name, "")

    # which components
    if components_env is not None and components_env.strip():
        wanted_raw = components_env
        notes.append(
            f"COMPONENTS from the environment ({components_env.strip()!r}) overrides ENABLED_COMPONENTS"
        )
        used.add("ENABLED_COMPONENTS")
    else:
        wanted_raw = setting("ENABLED_COMPONENTS")
        if "ENABLED_COMPONENTS" not in in_file:
            notes.append(
                f"ENABLED_COMPONENTS is not set; using Raisin's full list ({DEFAULTS['ENABLED_COMPONENTS']})"
            )
    enabled: list[str] = []
    for word in wanted_raw.split():
        new = _BY_LEGACY.get(word)
        if new is None:
            unmapped.append(
                f"component {word!r}: not one of {', '.join(legacy for legacy, _, _ in COMPONENTS)}; left out"
            )
        elif new not in enabled:
            enabled.append(new)
    for name in list(enabled):
        for dep in REQUIRES.get(name, ()):
            if dep not in enabled:
                enabled.append(dep)
                notes.append(
                    f"added {dep}: {name} builds against it (Raisin would have used the host's)"
                )
    enabled.sort(key=_ORDER.index)
    if not enabled:
        raise InputError(
            "no components to import (ENABLED_COMPONENTS / COMPONENTS names none)", file=source_name
        )

    # revisions and URLs
    release = setting("XEN_RELEASE").strip()
    preset = PRESETS.get(release)
    if preset is None:
        m = re.fullmatch(r"(\d+\.\d+)", release)
        preset = _release_preset(release, "master", "master") if m else PRESETS["master"]
        unmapped.append(
            f"XEN_RELEASE={_q(release)}: not one of Raisin's presets ({', '.join(PRESETS)}); "
            + (
                f"xen, qemu-xen, qemu-traditional follow stable-{release}, seabios and ovmf follow master: "
                "pin them to the revisions that Xen's Config.mk names"
                if m
                else "components without a _REVISION follow master"
            )
        )
    transport = setting("GIT_TRANSPORT").strip().lower()
    if transport == "https":
        transport = "http"
    if transport not in ("git", "http"):
        unmapped.append(f"GIT_TRANSPORT={_q(transport)}: expected git or http; using the http URLs")
        transport = "http"

    prefix = setting("PREFIX")
    prefix_mapped = False
    blocks: list[str] = []
    for name in enabled:
        pre = _PREFIX[name]
        url_var, rev_var = f"{pre}_URL", f"{pre}_REVISION"
        used.update((url_var, rev_var))
        url = var.get(url_var, "").strip()
        if not url:
            if url_var in in_file:
                notes.append(f"{url_var} is empty; using the default {transport} URL")
            url = default_url(name, transport)
        rev = var.get(rev_var, "").strip()
        if not rev:
            if rev_var in in_file:
                notes.append(f"{rev_var} is empty; using the XEN_RELEASE={release} revision")
            rev = preset[name]
        ref = _branch(rev)
        if re.fullmatch(r"[0-9a-f]{7,39}", ref):
            notes.append(
                f"{rev_var}={_q(rev)} looks like an abbreviated commit: raisin needs a tag, branch or full commit id"
            )
        lines = [
            f"[components.{name}]",
            f"source = {{ git = {_q(url)}, ref = {_q(ref)} }}",
            f"recipe = {_q(name)}",
        ]
        deps = [d for d in EDGES.get(name, ()) if d in enabled]
        if deps:
            lines.append("deps = [" + ", ".join(_q(d) for d in sorted(deps)) + "]")
        options: dict[str, object] = {}
        if name in recipes.available():
            recipe = recipes.load(name)
            if prefix != DEFAULTS["PREFIX"] and "prefix" in recipe.options:
                options["prefix"] = prefix
                prefix_mapped = True
            if (
                name == "xen"
                and "qemu-traditional" in enabled
                and "qemu_traditional" in recipe.options
            ):
                options["qemu_traditional"] = True
        else:
            notes.append(
                f"recipe {name!r} is not built into this raisin yet: `raisin lock` fails until it is"
            )
        if options:
            lines.append("")
            lines.append(f"[components.{name}.options]")
            lines += [
                f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(options.items())
            ]
        blocks.append("\n".join(lines))
    if _traditional_on_new_xen(enabled, release, var):
        notes.append(
            "qemu-traditional: Xen dropped it after 4.18; it builds only with a Xen that still supports it"
        )

    # settings with no raisin equivalent
    if prefix != DEFAULTS["PREFIX"] and not prefix_mapped:
        unmapped.append(
            f"{_shown_setting('PREFIX', prefix)}: the built-in recipes install with PREFIX=/usr into each "
            "component's store path"
        )
    if "DESTDIR" in in_file:
        unmapped.append(
            f"{_shown_setting('DESTDIR', var['DESTDIR'])}: each component installs into its own store path; "
            "`raisin profile switch NAME --root DIR` puts the stack under a root"
        )
    used.add("DESTDIR")
    make = setting("MAKE").strip()
    if "MAKE" in in_file and make != "make":
        jobs = re.fullmatch(r"make\s+(?:-j\s*(\d+)|--jobs(?:=|\s+)(\d+))", make)
        if jobs:
            n = jobs.group(1) or jobs.group(2)
            unmapped.append(
                f"{_shown_setting('MAKE', make)}: raisin runs make with -j and one shared jobserver across "
                f"builds; use `raisin realize -j {n}`"
            )
        else:
            unmapped.append(
                f"{_shown_setting('MAKE', make)}: the built-in recipes run make themselves; not mapped"
            )
    tests = setting("ENABLED_TESTS").split()
    if tests:
        unmapped.append(
            f"ENABLED_TESTS={_q(' '.join(tests))}: raisin does not run Raisin's functional tests (`raise test`); not mapped"
        )
    for legacy, pre, new in COMPONENTS:
        for suffix in ("_URL", "_REVISION"):
            v = f"{pre}{suffix}"
            if v in in_file and new not in enabled:
                unmapped.append(f"{v} is set but {legacy} is not enabled; ignored")
            used.add(v)
    for v in sorted(in_file - used - sh.referenced - {"COMPONENTS"}, key=lambda n: sh.lines[n]):
        unmapped.append(f"line {sh.lines[v]}: {v}: not a setting import-config knows; not mapped")

    header = [
        f"# Generated by `raisin import-config` from {source_name} (a legacy Raisin config).",
        "# Review it, then run `raisin lock`.",
        (
            f"# Revisions: XEN_RELEASE={release} preset unless <NAME>_REVISION is set; "
            f"URLs: the GIT_TRANSPORT={transport} set unless <NAME>_URL is set."
        ),
    ]
    if unmapped:
        header += ["#", "# Not mapped:"] + [f"#   - {_one_line(u)}" for u in unmapped]
    if notes:
        header += ["#", "# Notes:"] + [f"#   - {_one_line(n)}" for n in notes]
    profile = "[profiles.default]\ncomponents = [" + ", ".join(_q(n) for n in enabled) + "]"
    text_out = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + "\n\n" + profile + "\n"
    return Conversion(text=text_out, components=enabled, unmapped=unmapped, notes=notes)


def _traditional_on_new_xen(enabled: list[str], release: str, var: dict[str, str]) -> bool:
    """qemu-traditional enabled with a Xen that no longer has it (master, or a stable branch > 4.18)."""
    if "qemu-traditional" not in enabled:
        return False
    rev = _branch(var.get("XEN_REVISION", "") or PRESETS.get(release, PRESETS["master"])["xen"])
    m = re.search(r"(\d+)\.(\d+)", rev)
    if m:
        return (int(m.group(1)), int(m.group(2))) > (4, 18)
    return rev in ("master", "staging")


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def import_config(
    source: Path,
    output: Path,
    *,
    force: bool = False,
    components_env: str | None = None,
    source_name: str | None = None,
    output_name: str | None = None,
) -> Conversion:
    """Read ``source``, convert, validate, and write ``output`` atomically (refusing to overwrite)."""
    from raisin_lock.manifest import model as manifest

    shown_src = source_name or str(source)
    shown_out = output_name or str(output)
    if output.exists() and not force:
        raise InputError("already exists; not overwriting (use --force)", file=shown_out)
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=shown_src) from None
    conv = convert(text, shown_src, components_env=components_env)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_name(output)
    try:
        tmp.write_text(conv.text, encoding="utf-8")
        manifest.load(tmp)  # what we write must validate; a failure here is a bug, said plainly
    finally:
        tmp.unlink(missing_ok=True)
    atomic.write_text(output, conv.text)
    return conv
