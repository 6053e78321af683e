"""The REAPI CAS client against a real BuildGrid (tests/reapi_server.py)."""

from __future__ import annotations

import os

import pytest
from reapi_server import buildgrid  # noqa: F401  (the session fixture)

from raisin_lock.remote.cas import BATCH_LIMIT, Cas, digest_of, key
from raisin_lock.remote.channel import open_channel, parse_url
from raisin_lock.remote.errors import BadRemoteUrl, RemoteUnreachable


@pytest.fixture
def cas(buildgrid):  # noqa: F811
    remote = parse_url(buildgrid.url + "/main")
    with open_channel(remote) as ch:
        yield Cas(ch, remote)


def test_find_missing_then_batch_upload_and_read(cas):
    blobs = {key(digest_of(b)): b for b in (b"hello raisin\n", os.urandom(1000), b"")}
    new = [d for d in blobs if d[1]]  # the empty blob is always present
    missing = {key(d) for d in cas.find_missing(digest_of(b) for b in blobs.values())}
    assert set(new) <= missing
    assert cas.upload_missing(blobs) >= len(new)
    assert cas.find_missing(digest_of(b) for b in blobs.values()) == []
    assert cas.upload_missing(blobs) == 0  # nothing uploaded twice
    got = cas.read_many(digest_of(b) for b in blobs.values())
    assert got == blobs


def test_bytestream_write_and_read_of_a_large_blob(cas, tmp_path):
    data = os.urandom(BATCH_LIMIT + 12345)  # past the batch limit: ByteStream both ways
    d = digest_of(data)
    assert cas.find_missing([d]) == [d]
    cas.upload({key(d): data})
    assert cas.find_missing([d]) == []
    assert cas.read(d) == data
    out = tmp_path / "blob"
    cas.read_to_file(d, out)
    assert out.read_bytes() == data
    src = tmp_path / "src"
    src.write_bytes(data[::-1])
    d2 = digest_of(data[::-1])
    cas.upload({key(d2): src})  # streamed from a file
    assert cas.read(d2) == data[::-1]


def test_unreachable_server_is_one_clear_error():
    remote = parse_url("grpc://127.0.0.1:1/main")
    with open_channel(remote) as ch, pytest.raises(RemoteUnreachable, match="does not answer"):
        Cas(ch, remote).find_missing([digest_of(b"x")])


@pytest.mark.parametrize("url", ["http://h:1", "grpc://host", "grpc://:5/x"])
def test_bad_remote_url(url):
    with pytest.raises(BadRemoteUrl):
        parse_url(url)
