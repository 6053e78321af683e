"""Errors of the REAPI client (no grpc import: the app layer catches these)."""

from __future__ import annotations

from raisin_lock.errors import InputError, RaisinError


class RemoteError(RaisinError):
    """The remote execution service refused or failed an operation."""


class RemoteUnreachable(RemoteError):
    """The remote execution service does not answer (connection refused, DNS, timeout)."""


class BlobMismatch(RemoteError):
    """A blob downloaded from the CAS does not match its digest: rejected."""


class BadRemoteUrl(InputError):
    """A ``--remote`` / ``[remote] url`` that is not ``grpc[s]://HOST:PORT[/INSTANCE]``."""
