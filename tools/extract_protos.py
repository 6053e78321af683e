"""Write the REAPI v2 protos (and the Bots API ones) as a FileDescriptorSet.

BuildGrid's wheel (the REAPI server the tests run) ships the protos compiled,
not as .proto text; each generated module embeds its FileDescriptorProto. This
collects the ones raisin speaks, with their dependencies (google.protobuf's
well-known types too, for protoc; gen_protos.sh does not compile those: the
protobuf runtime ships them), into
tools/protos/reapi.binpb, which tools/gen_protos.sh compiles with grpcio-tools.

Usage: .venv-buildgrid/bin/python tools/extract_protos.py OUT.binpb   (a Python with buildgrid)
"""

from __future__ import annotations

import importlib
import sys

from google.protobuf import descriptor_pb2

ROOTS = [
    "build.bazel.remote.execution.v2.remote_execution_pb2",
    "google.bytestream.bytestream_pb2",
    "google.longrunning.operations_pb2",
    "google.rpc.status_pb2",
    "google.rpc.code_pb2",
    "google.rpc.error_details_pb2",
    "google.devtools.remoteworkers.v1test2.bots_pb2",
    "google.devtools.remoteworkers.v1test2.tasks_pb2",
    "google.devtools.remoteworkers.v1test2.command_pb2",
    "google.devtools.remoteworkers.v1test2.worker_pb2",
]


def main(out: str) -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd: object) -> None:
        name = fd.name  # type: ignore[attr-defined]
        if name in seen:
            return
        seen.add(name)
        for dep in fd.dependencies:  # type: ignore[attr-defined]
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)  # type: ignore[attr-defined]
        fds.file.append(proto)  # dependencies first, as protoc wants

    for mod in ROOTS:
        add(importlib.import_module("buildgrid._protos." + mod).DESCRIPTOR)
    with open(out, "wb") as f:
        f.write(fds.SerializeToString(deterministic=True))
    for p in fds.file:
        print(p.name)


if __name__ == "__main__":
    main(sys.argv[1])
