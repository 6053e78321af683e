"""raisin: build the Xen Project stack from pinned sources, reproducibly.

The package is layered (see ``CONVENTIONS.md``): base values (errors, hashing,
store paths), formats (NAR, manifest, lock, derivation), I/O edges (sources,
store), engines (sandbox, scheduler), use cases (``api``) and the ``cli``.
Modules import only downward.
"""

__version__ = "0.1.0"
