"""Activation actions: what a component asks of the host it is activated on.

Building a component only fills a store path. Activating a profile links its
files into a root (``--root``, default ``/``) and then runs the *typed*
configuration actions its components declare here -- never free shell, so
that :mod:`raisin_lock.activation` can record every change in its journal
and undo exactly that on rollback.

A component declares them in ``raisin.toml`` (a built-in recipe may declare
the same table as ``[activate]``; the component's keys replace the recipe's
key by key)::

    [components.xen.activate]
    units = ["xencommons.service", "xendomains.service"]  # systemctl enable (and start when --root is /)
    disable-units = ["xen-qemu-dom0-disk-backend.service"] # systemctl disable (and stop when --root is /)
    ldconfig = true                 # list the component's library dirs in
                                    # etc/ld.so.conf.d/raisin-PROFILE.conf, run ldconfig -r ROOT
    ld-paths = ["usr/lib64"]        # optional: the dirs to list (default: every one of
                                    # lib, lib64, usr/lib, usr/lib64, usr/local/lib,
                                    # usr/local/lib64 holding a *.so* file)
    priority = 5                    # file conflicts between components of one profile:
                                    # lower wins (Nix's meta.priority); equal is an error

    [components.xen.activate.boot]  # a GRUB entry (etc/grub.d/21_raisin-PROFILE-COMPONENT)
    hypervisor = "boot/xen.gz"      # required: the Xen image, a path inside the root
    kernel = "boot/vmlinuz-6.1.0"   # optional dom0 kernel (default: the newest boot/vmlinuz-*
                                    # in the root when the boot menu is generated)
    initrd = "boot/initrd.img-6.1.0"  # optional (default: the initrd matching the kernel)
    xen-options = "dom0_mem=2048M,max:2048M"
    kernel-options = "console=hvc0"
    title = "Xen (raisin)"          # optional menu title

    [components.xen.activate.bridge]  # optional host bridge configuration
    name = "xenbr0"                 # default xenbr0
    interface = "eth0"              # enslaved NIC; "auto" (default) = the interface of the
                                    # default route, only when activating into /
    style = "ifupdown"              # "ifupdown" (etc/network/interfaces.d/raisin-NAME)
                                    # or "networkd" (etc/systemd/network/50-raisin-*.{netdev,network})

Every path is relative to the root (and so to the component's output, which
is a staged root). ``boot = false`` / ``bridge = false`` in a component
cancel a recipe's entry; ``units = []`` its units. The boot menu itself is
regenerated (``update-grub``, ``grub2-mkconfig``/``grub-mkconfig``) only
when the root is ``/`` and the command exists.

The same table is written into ``raisin.lock`` as
``[components.NAME.activate]`` (only when non-empty, so locks without it
stay byte-identical and lock format version 1 still applies), so a lock
alone can activate a stack. It does not enter the derivation: changing an
action never rebuilds anything.

This module is the schema only: plain frozen dataclasses and a validating
:func:`parse` (no pydantic, so reading a lock stays cheap).

Schema history: 1 -- units, disable-units, ldconfig, ld-paths, priority,
boot, bridge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PRIORITY = 5
DEFAULT_LD_DIRS = ("lib", "lib64", "usr/lib", "usr/lib64", "usr/local/lib", "usr/local/lib64")
_UNIT_RE = re.compile(
    r"^[A-Za-z0-9:_.\\@\-]+\.(service|socket|target|timer|path|mount|automount|swap|slice)$"
)
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,15}$")
_KEYS = ("units", "disable-units", "ldconfig", "ld-paths", "priority", "boot", "bridge")
_BOOT_KEYS = ("hypervisor", "kernel", "initrd", "xen-options", "kernel-options", "title")
_BRIDGE_KEYS = ("name", "interface", "style")


class ActionError(ValueError):
    """A bad activation table; ``key`` is the path inside it (``boot.hypervisor``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class BootEntry:
    hypervisor: str
    kernel: str | None = None
    initrd: str | None = None
    xen_options: str = ""
    kernel_options: str = ""
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"hypervisor": self.hypervisor}
        for key, value in (
            ("kernel", self.kernel),
            ("initrd", self.initrd),
            ("xen-options", self.xen_options or None),
            ("kernel-options", self.kernel_options or None),
            ("title", self.title),
        ):
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True)
class Bridge:
    name: str = "xenbr0"
    interface: str = "auto"
    style: str = "ifupdown"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "interface": self.interface, "style": self.style}


@dataclass(frozen=True)
class ActivationSpec:
    """One component's configuration actions (all optional)."""

    units: tuple[str, ...] = ()
    disable_units: tuple[str, ...] = ()
    ldconfig: bool = False
    ld_paths: tuple[str, ...] | None = None
    priority: int = DEFAULT_PRIORITY
    boot: BootEntry | None = None
    bridge: Bridge | None = None
    # Keys given explicitly (so a component's table can override a recipe's).
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Canonical form (defaults left out), as written into the lock."""
        d: dict[str, Any] = {}
        if self.units:
            d["units"] = list(self.units)
        if self.disable_units:
            d["disable-units"] = list(self.disable_units)
        if self.ldconfig:
            d["ldconfig"] = True
        if self.ld_paths is not None:
            d["ld-paths"] = list(self.ld_paths)
        if self.priority != DEFAULT_PRIORITY:
            d["priority"] = self.priority
        if self.boot is not None:
            d["boot"] = self.boot.to_dict()
        if self.bridge is not None:
            d["bridge"] = self.bridge.to_dict()
        return d


NONE = ActivationSpec()


def _rel_path(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ActionError(key, f"expected a path inside the root, found {value!r}")
    parts = value.strip("/").split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ActionError(
            key, f"expected a relative path without '..' (like \"boot/xen.gz\"), found {value!r}"
        )
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ActionError(key, f"expected a string, found {value!r}")
    if "\n" in value or "'" in value:
        raise ActionError(key, "may not contain newlines or single quotes")
    return value


def _units(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise ActionError(key, f"expected an array of unit names, found {value!r}")
    for u in value:
        if not _UNIT_RE.match(u):
            raise ActionError(key, f'not a systemd unit name: {u!r} (like "xencommons.service")')
    if len(set(value)) != len(value):
        raise ActionError(key, "lists a unit twice")
    return tuple(value)


def _table(value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ActionError(key, f"expected a table, found {value!r}")
    for k in value:
        if k not in allowed:
            raise ActionError(f"{key}.{k}", f"unknown key (expected one of: {', '.join(allowed)})")
    return value


def parse(raw: Any) -> ActivationSpec:
    """Validate an ``activate`` table; ActionError names the bad key."""
    if raw is None:
        return NONE
    t = _table(raw, "", _KEYS)
    kw: dict[str, Any] = {"given": frozenset(t)}
    if "units" in t:
        kw["units"] = _units(t["units"], "units")
    if "disable-units" in t:
        kw["disable_units"] = _units(t["disable-units"], "disable-units")
        both = set(kw["disable_units"]) & set(kw.get("units", ()))
        if both:
            raise ActionError("disable-units", f"{min(both)!r} is also in units")
    if "ldconfig" in t:
        if not isinstance(t["ldconfig"], bool):
            raise ActionError("ldconfig", f"expected true or false, found {t['ldconfig']!r}")
        kw["ldconfig"] = t["ldconfig"]
    if "ld-paths" in t:
        v = t["ld-paths"]
        if not isinstance(v, list):
            raise ActionError("ld-paths", f"expected an array of directories, found {v!r}")
        kw["ld_paths"] = tuple(_rel_path(p, "ld-paths") for p in v)
    if "priority" in t:
        v = t["priority"]
        if not isinstance(v, int) or isinstance(v, bool):
            raise ActionError("priority", f"expected an integer, found {v!r}")
        kw["priority"] = v
    if "boot" in t and t["boot"] is not False:
        b = _table(t["boot"], "boot", _BOOT_KEYS)
        if "hypervisor" not in b:
            raise ActionError("boot.hypervisor", 'missing (the Xen image, like "boot/xen.gz")')
        kw["boot"] = BootEntry(
            hypervisor=_rel_path(b["hypervisor"], "boot.hypervisor"),
            kernel=_rel_path(b["kernel"], "boot.kernel") if "kernel" in b else None,
            initrd=_rel_path(b["initrd"], "boot.initrd") if "initrd" in b else None,
            xen_options=_str(b.get("xen-options", ""), "boot.xen-options"),
            kernel_options=_str(b.get("kernel-options", ""), "boot.kernel-options"),
            title=_str(b["title"], "boot.title") if "title" in b else None,
        )
    if "bridge" in t and t["bridge"] is not False:
        b = _table(t["bridge"], "bridge", _BRIDGE_KEYS)
        name = b.get("name", "xenbr0")
        iface = b.get("interface", "auto")
        style = b.get("style", "ifupdown")
        for k, v in (("name", name), ("interface", iface)):
            if not isinstance(v, str) or not _IFNAME_RE.match(v):
                raise ActionError(f"bridge.{k}", f"not an interface name: {v!r}")
        if style not in ("ifupdown", "networkd"):
            raise ActionError("bridge.style", f'expected "ifupdown" or "networkd", found {style!r}')
        kw["bridge"] = Bridge(name=name, interface=iface, style=style)
    return ActivationSpec(**kw)


def merge(base: ActivationSpec, over: ActivationSpec) -> ActivationSpec:
    """``over``'s explicitly given keys replace ``base``'s (recipe, then component)."""
    if not over.given:
        return base
    names = {
        "units": "units",
        "disable-units": "disable_units",
        "ldconfig": "ldconfig",
        "ld-paths": "ld_paths",
        "priority": "priority",
        "boot": "boot",
        "bridge": "bridge",
    }
    kw = {attr: getattr(base, attr) for attr in names.values()}
    for key in over.given:
        kw[names[key]] = getattr(over, names[key])
    return ActivationSpec(**kw, given=base.given | over.given)
