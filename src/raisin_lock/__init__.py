"""raisin: build the Xen Project stack from pinned sources, reproducibly.

The package follows the flow, one package per noun, in layers that import
only downward (``tests/test_layering.py`` keeps it so):

- base: :mod:`.errors`, :mod:`.hashing`, :mod:`.store_path`, :mod:`.atomic`,
  :mod:`.display`;
- formats: :mod:`.nar`, :mod:`.manifest` (with recipes), :mod:`.lock`;
- I/O edges: :mod:`.sources`, :mod:`.store`, :mod:`.cache`;
- engines: :mod:`.build`, :mod:`.profiles`, :mod:`.testing`;
- use cases: :mod:`.app`; and the command line, :mod:`.cli`.
"""

__version__ = "0.1.0"
