"""Following: companions pinned by the revision a Xen tree names for them.

A component with ``follows = "xen"`` and a git source without ``ref`` takes
the revision the followed Xen's ``Config.mk`` names for it
(``QEMU_UPSTREAM_REVISION``, ``SEABIOS_UPSTREAM_REVISION``, ...): the
companions that Xen release was tested with. Followed components resolve
before their followers, and a follower is stale whenever what it follows is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from raisin_lock.lock.pins import LockedSource
from raisin_lock.store.local import Store

if TYPE_CHECKING:
    from raisin_lock.manifest.model import ComponentSpec, Manifest

# Companion revisions Xen's Config.mk names, by the recipe (or component) name.
CONFIG_MK_VARS = {
    "qemu-xen": "QEMU_UPSTREAM_REVISION",
    "seabios": "SEABIOS_UPSTREAM_REVISION",
    "ovmf": "OVMF_UPSTREAM_REVISION",
    "qemu-traditional": "QEMU_TRADITIONAL_REVISION",
    "mini-os": "MINIOS_UPSTREAM_REVISION",
}


# The names Xen before 4.6 used for two of them. Since 4.6 Config.mk maps them
# in a "Handle legacy options" block that comes *before* the real values
# (`SEABIOS_UPSTREAM_REVISION ?= $(SEABIOS_UPSTREAM_TAG)`), so values that
# reference other variables are skipped.
CONFIG_MK_LEGACY_VARS = {
    "SEABIOS_UPSTREAM_REVISION": "SEABIOS_UPSTREAM_TAG",
    "QEMU_TRADITIONAL_REVISION": "QEMU_TAG",
}


def check_follows(m: Manifest) -> None:
    """A chain of ``follows`` must end at a component that follows nothing."""
    for start in sorted(m.components):
        seen = [start]
        cur = m.components[start].follows
        while cur is not None:
            if cur in seen:
                loop = " -> ".join([*seen[seen.index(cur) :], cur])
                raise m.error(f"components.{start}.follows", f"follows loop: {loop}")
            if cur not in m.components:
                break
            seen.append(cur)
            cur = m.components[cur].follows


def follow_order(m: Manifest, names: dict[str, str]) -> list[str]:
    """Resolve followed components before their followers."""
    order: list[str] = []
    for n in sorted(names):
        chain = []
        cur: str | None = n
        while cur is not None and cur in names and cur not in order and cur not in chain:
            chain.append(cur)
            cur = m.components[cur].follows
        order.extend(reversed(chain))
    return order


def followed_ref(
    name: str, spec: ComponentSpec, leader: LockedSource, store: Store, m: Manifest
) -> str:
    """The revision of ``name`` that the followed Xen's Config.mk names."""
    var = CONFIG_MK_VARS.get(spec.recipe or "") or CONFIG_MK_VARS.get(name)
    key = f"components.{name}.follows"
    if var is None:
        raise m.error(
            key,
            f"cannot follow {spec.follows!r}: no Config.mk revision is known for {name!r} "
            f"(known: {', '.join(sorted(CONFIG_MK_VARS))}); pin 'ref' instead",
        )
    config = store.host_path(leader.store_path) / "Config.mk"
    try:
        text = config.read_text(errors="replace")
    except OSError:
        raise m.error(
            key, f"{spec.follows!r} has no Config.mk to follow; pin 'ref' instead"
        ) from None
    for v in (var, CONFIG_MK_LEGACY_VARS.get(var)):
        for found in (
            re.finditer(rf"^[ \t]*{v}[ \t]*[:?]?=[ \t]*([^\s#]+)", text, re.MULTILINE) if v else ()
        ):
            if "$" not in found.group(1):
                return found.group(1)
    raise m.error(key, f"{spec.follows!r}'s Config.mk does not set {var}; pin 'ref' instead")
