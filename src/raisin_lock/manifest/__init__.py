"""The manifest, ``raisin.toml``: what the user wants built, and the recipes it names.

- :mod:`.model` — the validated manifest (pydantic; imported only when a
  manifest must really be read, since it costs start-up time);
- :mod:`.quick` — declaration fingerprints straight from the TOML, for the
  fast "is the lock still current" path;
- :mod:`.recipe` and ``recipes/`` — the built-in recipes; ``templates/`` —
  what ``raisin init`` writes;
- :mod:`.actions` — the host configuration actions components declare;
- :mod:`.legacy` and :mod:`.shellvars` — importing a 2015 Raisin bash config.
"""

from __future__ import annotations

MANIFEST_NAME = "raisin.toml"
