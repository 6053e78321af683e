"""The wrapper a remote action runs: raisin's own sandbox, inside the action.

A REAPI worker materialises the input root in some directory and runs the
command there; outputs must be relative paths. A build must see
``/raisin/store``. So the action's command is ``sh .raisin/run.sh``, a
script in the input root that runs ``bwrap`` with the same arguments as a
local build (:func:`raisin_lock.build.sandbox.bwrap_argv`), every host path
under ``$PWD``: the inputs at ``$PWD/raisin/store/<base>``, the build
directory at ``$PWD/.raisin/build``, the generated ``/etc`` files from
``$PWD/.raisin/etc``. When the build succeeds it moves ``$out`` to ``out``
(the action's one output path).

Input root layout::

    raisin/store/<base>/...      the source and the dependencies' closure
    .raisin/run.sh               this wrapper
    .raisin/etc/{passwd,...}     the build's generated /etc files
    .raisin/build/{src,tmp,store-view}/   empty: the build directory
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from raisin_lock.build import sandbox
from raisin_lock.build.etc import etc_files
from raisin_lock.build.sandbox import BUILD_GID, BUILD_UID, HOMELESS, HOSTNAME, BuildSpec, Bwrap
from raisin_lock.remote.tree import InputRoot
from raisin_lock.store_path import VIRTUAL_STORE

ROOT = "/@RAISIN-ACTION-ROOT@"  # a placeholder absolute path, replaced by "$R" in the script
OUTPUT = "out"
BUILD = ".raisin/build"
ETC = ".raisin/etc"
SCRIPT = ".raisin/run.sh"


JOBS = "@RAISIN-JOBS@"  # the worker's core count, read by the script ("$J")


def _word(arg: str) -> str:
    if arg.startswith(ROOT):
        return '"$R"' + _word(arg[len(ROOT) :])
    if JOBS in arg:
        return '"$J"'.join(shlex.quote(part) if part else "" for part in arg.split(JOBS))
    return shlex.quote(arg)


def script(spec: BuildSpec) -> str:
    """``run.sh`` for ``spec`` (host paths of ``spec`` are real; only names are used)."""
    env = sandbox.build_env(spec)
    # The client's -j is not part of the action (else clients with other core
    # counts never share its ActionCache entry): the worker's cores are, at
    # run time, unless the component's own env sets them.
    jobs = str(max(1, spec.jobs))
    for var, default in (("MAKEFLAGS", f"-j{jobs}"), ("RAISIN_BUILD_CORES", jobs)):
        if var not in spec.env and env.get(var) == default:
            env[var] = default.replace(jobs, JOBS)
    moved = replace(
        spec,
        inputs={v: ROOT + v.replace(VIRTUAL_STORE, "/raisin/store", 1) for v in spec.inputs},
        src_host=(ROOT + spec.src.replace(VIRTUAL_STORE, "/raisin/store", 1)) if spec.src else None,
        build_dir_host=f"{ROOT}/{BUILD}",
        out_host=f"{ROOT}/{OUTPUT}",
        log_path=f"{ROOT}/{BUILD}/log",
        workdir_host=None,
        ccache_host=None,
    )
    data_fds: list[int] = []
    argv = sandbox.bwrap_argv(
        moved, Bwrap("bwrap", True), env, None, data_fds, etc_dir=f"{ROOT}/{ETC}"
    )
    assert not data_fds
    argv += sandbox.builder_command(spec.src or "", spec.steps)
    base = spec.out.rsplit("/", 1)[-1]
    return (
        "#!/bin/sh\n# raisin's sandbox for one remote action (remote/wrapper.py)\nset -eu\n"
        'R=$PWD\nJ=$(nproc 2>/dev/null || echo 1)\nrm -rf "$R/out"\n'
        + " ".join(_word(a) for a in argv)
        + "\n"
        + f'mv "$R/{BUILD}/store-view/{base}" "$R/{OUTPUT}"\n'
    )


def add_to_root(root: InputRoot, spec: BuildSpec) -> None:
    """Add the wrapper, the /etc files and the empty build dirs to ``root``."""
    root.add_file(SCRIPT, script(spec).encode())
    for name, text in etc_files(BUILD_UID, BUILD_GID, HOSTNAME, HOMELESS).items():
        root.add_file(f"{ETC}/{name}", text.encode())
    for sub in ("src", "tmp", "store-view"):
        root.add_dir(f"{BUILD}/{sub}")
