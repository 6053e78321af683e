"""A CAS client: FindMissingBlobs, uploads (batch or ByteStream), verified downloads.

Digests are REAPI's: SHA-256 of the bytes (hex) and the size. Every blob
read back is checked against its digest; a mismatch raises
:class:`BlobMismatch` and nothing is returned (a file being written is
removed).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from raisin_lock.remote.channel import RemoteUrl, call_metadata, rpc, translate
from raisin_lock.remote.errors import BlobMismatch, RemoteError
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
    remote_execution_pb2_grpc as re_grpc,
)
from raisin_lock.remote.proto.google.bytestream import bytestream_pb2 as bs
from raisin_lock.remote.proto.google.bytestream import bytestream_pb2_grpc as bs_grpc

CHUNK = 1 << 20
BATCH_LIMIT = 2 << 20  # total bytes per Batch{Update,Read}Blobs (servers cap at 4 MiB)
FIND_LIMIT = 5000  # digests per FindMissingBlobs


def digest_of(data: bytes) -> re.Digest:
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def digest_of_file(path: Path) -> re.Digest:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return re.Digest(hash=h.hexdigest(), size_bytes=size)


def key(d: re.Digest) -> tuple[str, int]:
    return (d.hash, d.size_bytes)


def _check(d: re.Digest, data: bytes, remote: RemoteUrl) -> bytes:
    if len(data) != d.size_bytes or hashlib.sha256(data).hexdigest() != d.hash:
        raise BlobMismatch(
            f"remote {remote.url}: blob {d.hash}/{d.size_bytes} does not match its digest "
            "(rejected)"
        )
    return data


class Cas:
    """The CAS (and ByteStream) of one instance of a remote."""

    def __init__(self, channel: grpc.Channel, remote: RemoteUrl) -> None:
        self.remote = remote
        self.instance = remote.instance
        self.md = call_metadata(remote)
        self.cas: Any = re_grpc.ContentAddressableStorageStub(channel)  # type: ignore[no-untyped-call]
        self.bytestream: Any = bs_grpc.ByteStreamStub(channel)  # type: ignore[no-untyped-call]

    # --- what is missing -------------------------------------------------------------

    def find_missing(self, digests: Iterable[re.Digest]) -> list[re.Digest]:
        uniq = list({key(d): d for d in digests}.values())
        missing: list[re.Digest] = []
        for i in range(0, len(uniq), FIND_LIMIT):
            req = re.FindMissingBlobsRequest(
                instance_name=self.instance, blob_digests=uniq[i : i + FIND_LIMIT]
            )
            resp = rpc(
                self.remote,
                "FindMissingBlobs",
                partial(self.cas.FindMissingBlobs, req, metadata=self.md),
            )
            missing.extend(resp.missing_blob_digests)
        return missing

    # --- uploads ------------------------------------------------------------------------

    def upload(self, blobs: dict[tuple[str, int], bytes | Path]) -> None:
        """Upload blobs (bytes, or a file to stream), keyed by (hash, size): small ones batched."""
        batch: list[re.BatchUpdateBlobsRequest.Request] = []
        size = 0
        for (h, n), blob in blobs.items():
            d = re.Digest(hash=h, size_bytes=n)
            if n > BATCH_LIMIT // 2:
                self._write(d, blob)
                continue
            data = blob if isinstance(blob, bytes) else blob.read_bytes()
            if size + n > BATCH_LIMIT:
                self._batch_update(batch)
                batch, size = [], 0
            batch.append(re.BatchUpdateBlobsRequest.Request(digest=d, data=data))
            size += n
        if batch:
            self._batch_update(batch)

    def upload_missing(self, blobs: dict[tuple[str, int], bytes | Path]) -> int:
        """Upload only what FindMissingBlobs says is missing; the number uploaded."""
        missing = self.find_missing(re.Digest(hash=h, size_bytes=n) for h, n in blobs)
        self.upload({key(d): blobs[key(d)] for d in missing})
        return len(missing)

    def _batch_update(self, reqs: list[re.BatchUpdateBlobsRequest.Request]) -> None:
        req = re.BatchUpdateBlobsRequest(instance_name=self.instance, requests=reqs)
        resp = rpc(
            self.remote,
            "BatchUpdateBlobs",
            lambda: self.cas.BatchUpdateBlobs(req, metadata=self.md),
        )
        bad = [r for r in resp.responses if r.status.code != 0]
        if bad:
            r = bad[0]
            raise RemoteError(
                f"remote {self.remote.url}: upload of {r.digest.hash}/{r.digest.size_bytes} "
                f"refused: {r.status.message or r.status.code}"
            )

    def _write(self, d: re.Digest, blob: bytes | Path) -> None:
        prefix = f"{self.instance}/" if self.instance else ""
        name = f"{prefix}uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"

        def chunks() -> Iterator[bs.WriteRequest]:
            offset = 0
            if isinstance(blob, bytes):
                pieces: Iterable[bytes] = (
                    blob[i : i + CHUNK] for i in range(0, max(len(blob), 1), CHUNK)
                )
            else:
                pieces = _file_chunks(blob)
            for piece in pieces:
                last = offset + len(piece) >= d.size_bytes
                yield bs.WriteRequest(
                    resource_name=name if offset == 0 else "",
                    write_offset=offset,
                    data=piece,
                    finish_write=last,
                )
                offset += len(piece)

        resp = rpc(
            self.remote,
            "ByteStream.Write",
            lambda: self.bytestream.Write(chunks(), metadata=self.md),
        )
        if resp.committed_size not in (d.size_bytes, -1):
            raise RemoteError(
                f"remote {self.remote.url}: ByteStream.Write of {d.hash} committed "
                f"{resp.committed_size} of {d.size_bytes} bytes"
            )

    # --- downloads ----------------------------------------------------------------------

    def read(self, d: re.Digest) -> bytes:
        """One blob, checked against its digest."""
        return self.read_many([d])[key(d)]

    def read_many(self, digests: Iterable[re.Digest]) -> dict[tuple[str, int], bytes]:
        out: dict[tuple[str, int], bytes] = {}
        batch: list[re.Digest] = []
        size = 0
        for d in {key(d): d for d in digests}.values():
            if d.size_bytes == 0:
                out[key(d)] = _check(d, b"", self.remote)
            elif d.size_bytes > BATCH_LIMIT // 2:
                out[key(d)] = _check(d, b"".join(self._read_stream(d)), self.remote)
            else:
                if size + d.size_bytes > BATCH_LIMIT:
                    out.update(self._batch_read(batch))
                    batch, size = [], 0
                batch.append(d)
                size += d.size_bytes
        if batch:
            out.update(self._batch_read(batch))
        return out

    def read_to_file(self, d: re.Digest, path: Path) -> None:
        """Stream one blob into ``path`` (new file); removed again if it does not match."""
        h = hashlib.sha256()
        n = 0
        try:
            with path.open("xb") as f:
                for piece in self._read_stream(d) if d.size_bytes else []:
                    h.update(piece)
                    n += len(piece)
                    f.write(piece)
            if n != d.size_bytes or h.hexdigest() != d.hash:
                raise BlobMismatch(
                    f"remote {self.remote.url}: blob {d.hash}/{d.size_bytes} does not match "
                    "its digest (rejected)"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def _batch_read(self, ds: list[re.Digest]) -> dict[tuple[str, int], bytes]:
        req = re.BatchReadBlobsRequest(instance_name=self.instance, digests=ds)
        resp = rpc(
            self.remote, "BatchReadBlobs", lambda: self.cas.BatchReadBlobs(req, metadata=self.md)
        )
        out: dict[tuple[str, int], bytes] = {}
        for r in resp.responses:
            if r.status.code != 0:
                raise RemoteError(
                    f"remote {self.remote.url}: blob {r.digest.hash}/{r.digest.size_bytes} "
                    f"not readable: {r.status.message or r.status.code}"
                )
            out[key(r.digest)] = _check(r.digest, r.data, self.remote)
        missing = [d for d in ds if key(d) not in out]
        if missing:
            raise RemoteError(f"remote {self.remote.url}: blob {missing[0].hash} not returned")
        return out

    def _read_stream(self, d: re.Digest) -> Iterator[bytes]:
        prefix = f"{self.instance}/" if self.instance else ""
        req = bs.ReadRequest(resource_name=f"{prefix}blobs/{d.hash}/{d.size_bytes}")
        try:
            for resp in self.bytestream.Read(req, metadata=self.md):
                yield resp.data
        except grpc.RpcError as e:
            raise translate(self.remote, "ByteStream.Read", e) from None


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        piece = f.read(CHUNK)
        yield piece  # at least one request, even for an empty file
        while piece := f.read(CHUNK):
            yield piece
