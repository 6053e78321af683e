"""A shell in a component's exact build environment (``raisin develop``).

The same sandbox as a build (no network, no home, the fixed paths,
variables and toolchain, the dependencies' outputs and nothing else of the
store), with two differences: the working directory is the developer's own
tree, read-write (a ``path`` source's checkout itself, or a kept copy of
any other source), and the command is the developer's (``-c CMD``, or an
interactive shell that keeps the terminal). ``$out`` points at a scratch
directory, so ``make install DESTDIR=$out`` works as in a build; nothing is
registered in the store.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from raisin_lock.build.sandbox import (
    BuildSpec,
    build_env,
    bwrap_argv,
    cached_probe,
    collect_output,
    prepare_dirs,
)
from raisin_lock.errors import BuildError


def run_shell(spec: BuildSpec, command: str | None) -> int:
    """Run ``command`` (``sh -c``), or an interactive shell, in ``spec``'s environment; its exit code."""
    interactive = command is None
    inner = ["/bin/sh", "-c", command] if command is not None else [_shell(), "-i"]
    prepare_dirs(spec)
    env = build_env(spec)
    env["PS1"] = f"[raisin develop {spec.name}] \\w $ "
    if spec.sandbox == "none":
        cwd = spec.workdir_host or os.path.join(spec.build_dir_host, "src")
        return _wait(subprocess.Popen(inner, env=env, cwd=cwd))
    bwrap = cached_probe()
    info, info_w = os.pipe()
    own = [info, info_w]
    try:
        argv = bwrap_argv(spec, bwrap, env, info_w, own, session=not interactive)
        proc = subprocess.Popen([*argv, *inner], env={}, pass_fds=tuple(own[1:]))
        code = _wait(proc)
    finally:
        for fd in own:
            os.close(fd)
    collect_output(spec)
    return code


def _shell() -> str:
    return "/bin/bash" if shutil.which("bash", path="/usr/bin:/bin") else "/bin/sh"


def _wait(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the shell got the Ctrl-C too (same terminal); wait for it
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise BuildError(f"the develop shell did not stop (pid {proc.pid})") from None
