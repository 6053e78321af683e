"""Binary caches: signed store paths as plain files, in Nix's binary-cache layout.

A cache is a directory tree on any file or HTTP server::

    nix-cache-info                 StoreDir, WantMassQuery, Priority
    <digest>.narinfo               one per store path: hashes, size, references, signatures
    nar/<filehash>.nar.zst         the path's NAR, compressed (xz and bzip2 readable too)

One machine (or CI) builds and pushes (:mod:`.push`); every other one asks
the cache before building (:mod:`.substitute`) and accepts a path only when
its narinfo carries a signature by a trusted key (:mod:`.keys`) and the
download hashes to what the narinfo says. :mod:`.bundle` packs the same
files, plus the lock, into one file for hand-over without a server.

Modules: ``keys`` (Ed25519 in Nix's ``name:base64`` form), ``narinfo`` (the
text format and the signed fingerprint), ``compression`` (streaming
(de)compressors), ``transport`` (file://, http(s):// with timeouts,
retries and auth, and s3:// over the same client; the only HTTP in raisin
besides the url source), ``s3`` (S3 URLs, AWS credentials, SigV4 signing),
``push``, ``substitute``, ``bundle``.
"""

from __future__ import annotations
