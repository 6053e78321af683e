"""The lock, ``raisin.lock``: exactly what a manifest resolved to.

- :mod:`.pins` — a pinned source (:class:`~.pins.LockedSource`);
- :mod:`.derivation` — one fully resolved build, whose hash names its output;
- :mod:`.lockfile` — the file: components, its versions, reading and writing;
- :mod:`.graph` — the component graph (networkx): cycles, order, closures;
- :mod:`.toolchain` — the host compiler, binutils, make and libc a lock records;
- :mod:`.freshness` — the one check of whether a lock still answers its manifest.

A lock alone rebuilds the stack: nothing here reads recipe files or the network.
"""
