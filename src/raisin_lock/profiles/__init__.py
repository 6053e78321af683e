"""Profiles: generations of chosen stacks, and activating them into a root.

- :mod:`.generation` — a generation: the merged view of components' outputs;
- :mod:`.profile` — a profile: numbered links to generations, its state;
- :mod:`.journal` — every change an activation made, so rollback undoes exactly that;
- :mod:`.root_view` — the activation root, real or simulated for dry runs;
- :mod:`.host_actions` — services, boot entries, bridges: what activation asks of the host;
- :mod:`.activation` — putting a generation into a root and taking it out.
"""

from __future__ import annotations

PROFILES_DIR = "profiles"  # next to raisin.toml
