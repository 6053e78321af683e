"""The sandbox: run one resolved derivation's build steps, hermetically.

A build must depend on nothing but its declared inputs, or the same lock
would give different bytes on another machine (invariant 5 of the contract).
Like Nix's Linux sandbox, raisin runs every build in fresh namespaces made
by bubblewrap (``bwrap``), and inside them the build sees:

- ``/usr`` and the ``/bin``, ``/lib*``, ``/sbin`` links of the host, read-only:
  the host toolchain, which the lock records by version;
- a tmpfs root holding nothing else, made read-only once set up, so the
  host's ``/home``, ``/root``, ``/tmp``, the project and the store directory
  are simply not there, and ``HOME=/homeless-shelter`` cannot be created;
- ``/etc`` with only what a compiler needs: ``ld.so.cache``, ``ld.so.conf*``,
  ``alternatives`` from the host, and generated ``passwd``, ``group``,
  ``hosts`` and ``nsswitch.conf`` (see :mod:`.etc`);
- ``/proc``, a minimal ``/dev`` (null, zero, random, tty, shm, pts);
- ``/raisin/store`` (:data:`~raisin_lock.store_path.VIRTUAL_STORE`) holding
  exactly the inputs' closure (read-only), the pristine source (read-only)
  and the output (read-write) -- nothing else of the host's store;
- ``/build``: the host build directory, read-write, with ``/build/src`` a
  writable copy of the source (the working directory) and ``/build/tmp``
  (``TMPDIR``, also mounted at ``/tmp``);
- a network namespace with only loopback, hostname ``raisin``, a new
  session, its own pid/ipc/uts/cgroup namespaces (the build's shell is pid 1
  there, so /proc/1 shows nothing of the host), and -- when user
  namespaces work -- uid/gid 1000 ("raisin"), so ``id`` and file ownership
  do not depend on who runs raisin;
- a fixed environment (:func:`build_env`) and ``umask 022``.

Steps run in one ``/bin/sh`` with ``set -eu``, in order, like the lines of a
script (a ``cd`` or ``export`` in one step holds for the next). Before each
step the log gets ``+ <step>``; when a step fails the log gets which one and
its exit status, and the build stops.

``sandbox = "none"`` runs the same script with the same environment but on
the host, with ``$out``, ``$src`` and the dependency variables set to host
paths. It exists for machines where bubblewrap cannot run; the caller warns
and marks the output unsandboxed.

The one piece of process-wide state is the cached bubblewrap probe: probing
costs a sandbox start (~10 ms) and the answer cannot change while raisin
runs, so :func:`check_sandbox` probes once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from raisin_lock.build import ccache
from raisin_lock.build.buildlog import DEFAULT_MAX_LOG_SIZE, LogPump
from raisin_lock.build.etc import etc_args
from raisin_lock.build.jobserver import Jobserver
from raisin_lock.build.killer import Killer
from raisin_lock.errors import BuildError, SandboxUnavailable
from raisin_lock.store_path import VIRTUAL_STORE

SandboxMode = Literal["bwrap", "none"]

HOSTNAME = "raisin"
HOMELESS = "/homeless-shelter"
BUILD_DIR = "/build"
BUILD_UID = 1000
BUILD_GID = 1000
BASE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"

# Host toolchain entries at the root: bind read-only when a directory,
# reproduce when a symlink (merged-/usr systems), skip when absent.
_ROOT_ENTRIES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, "
    "Fedora: `dnf install bubblewrap`), or build without a sandbox with "
    "`--sandbox none` (outputs are then marked unsandboxed)"
)

# The builder: a fixed script, so no quoting of user text ever happens.
# $1 is the directory to copy the source from ("" for none), the remaining
# arguments are the steps. Variables are prefixed so steps do not collide.
_BUILDER = r"""set -eu
umask 022
__raisin_src=$1
shift
__raisin_n=0
__raisin_total=$#
__raisin_step=
trap '__raisin_rc=$?
if [ "$__raisin_rc" -ne 0 ]; then
  if [ "$__raisin_n" -eq 0 ]; then
    printf "raisin: copying the source into the build directory failed (exit status %s)\n" "$__raisin_rc" >&2
  else
    printf "raisin: step %s/%s failed with exit status %s: %s\n" "$__raisin_n" "$__raisin_total" "$__raisin_rc" "$__raisin_step" >&2
  fi
fi' EXIT
if [ -n "$__raisin_src" ]; then
  cp -a -- "$__raisin_src/." .
  chmod -R u+w .
fi
for __raisin_step in "$@"; do
  set --
  __raisin_n=$((__raisin_n + 1))
  printf '+ %s\n' "$__raisin_step" >&2
  eval "$__raisin_step"
done
"""


# Every build sees the jobserver pipe on these descriptors, whatever numbers
# it has in raisin (which depend on how many builds run at once), so
# ``MAKEFLAGS`` -- part of what a build can record -- is always the same.
JOBSERVER_FDS = (3, 4)

# Moves the jobserver pipe from $1,$2 to 3,4 and runs the rest of the
# arguments. bash, because dash cannot name descriptors above 9; through
# temporaries ({a},{b} >= 10), so any overlap of the old and new numbers is
# fine; ``env -u SHLVL`` because bash would export one.
_REMAP = r"""r=$1 w=$2
shift 2
exec {a}<&"$r" {b}>&"$w"
exec {r}<&- {w}>&-
exec 3<&"$a" 4>&"$b"
exec {a}<&- {b}>&-
exec /usr/bin/env -u SHLVL -- "$@"
"""


def _remap(jobserver: Jobserver | None) -> list[str]:
    if jobserver is None:
        return []
    r, w = jobserver.fds
    return ["/bin/bash", "--norc", "--noprofile", "-c", _REMAP, "raisin-jobserver", str(r), str(w)]


@dataclass(frozen=True)
class BuildSpec:
    """Everything the sandbox needs to run one build; virtual paths are as seen inside."""

    name: str
    steps: tuple[str, ...]
    env: Mapping[str, str]
    out: str
    out_host: str
    src: str | None
    src_host: str | None
    inputs: Mapping[str, str]
    dep_vars: Mapping[str, str]
    build_dir_host: str
    log_path: str
    source_date_epoch: int
    jobs: int
    sandbox: SandboxMode
    network: bool = False  # fetch steps only: the host's network
    workdir_host: str | None = None  # bound read-write at /build/src instead of a copy
    ccache_host: str | None = None  # the compiler cache's directory (build/ccache.py), or none
    copy_src: bool = (
        True  # False: /build/src is prepared already (a checkpoint, build/checkpoint.py)
    )
    max_log_size: int = DEFAULT_MAX_LOG_SIZE  # bytes, 0: no cap

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"BuildSpec for {self.name!r}: {what}")

        if self.sandbox not in ("bwrap", "none"):
            raise bad(f"unknown sandbox mode {self.sandbox!r}")
        if not _in_store(self.out):
            raise bad(f"out {self.out!r} is not under {VIRTUAL_STORE}")
        for path in (self.out_host, self.build_dir_host, self.log_path):
            if not os.path.isabs(path):
                raise bad(f"host path {path!r} is not absolute")
        if (self.src is None) != (self.src_host is None):
            raise bad("src and src_host must both be set or both be None")
        if self.src is not None and not os.path.isabs(self.src):
            raise bad(f"src {self.src!r} is not absolute")
        for virtual, host in self.inputs.items():
            if not _in_store(virtual) or not os.path.isabs(host):
                raise bad(f"input {virtual!r} -> {host!r} is not a store path and a host path")
            if virtual == self.out:
                raise bad(f"the output {virtual!r} is also an input")
        for var, virtual in self.dep_vars.items():
            if virtual not in self.inputs:
                raise bad(f"dependency ${var} = {virtual!r} is not among the inputs")
        if any("\0" in step for step in self.steps):
            raise bad("a step contains a NUL byte")


@dataclass(frozen=True)
class BuildResult:
    exit_code: int  # the builder's exit status; negative: killed by that signal
    duration: float  # wall-clock seconds, sandbox start to exit
    log_path: str
    cancelled: bool = False
    failure: str | None = None  # raisin stopped it: log over the cap, or unwritable

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.cancelled and self.failure is None


@dataclass(frozen=True)
class Bwrap:
    """What the probe found: the binary, and whether user namespaces work."""

    path: str
    userns: bool


_probe_lock = threading.Lock()
_probe_result: Bwrap | SandboxUnavailable | None = None


def check_sandbox(bwrap: str | None = None) -> None:
    """Raise :class:`SandboxUnavailable` unless bubblewrap can run builds here.

    Without an argument the answer is probed once and cached for the process;
    an explicit ``bwrap`` path is always probed afresh (for tests and ``doctor``).
    """
    if bwrap is not None:
        _probe(bwrap)
        return
    cached_probe()


def select_sandbox(mode: str) -> Literal["bwrap", "none"]:
    """'auto'/'bwrap' -> 'bwrap' if it works here (else SandboxUnavailable); 'none' -> 'none'."""
    if mode == "none":
        return "none"
    check_sandbox()
    return "bwrap"


def cached_probe() -> Bwrap:
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            try:
                _probe_result = _probe(shutil.which("bwrap") or "/usr/bin/bwrap")
            except SandboxUnavailable as exc:
                _probe_result = exc
        result = _probe_result
    if isinstance(result, SandboxUnavailable):
        raise result
    return result


def _probe(path: str) -> Bwrap:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SandboxUnavailable(
            f"bubblewrap (bwrap) is not installed: {path} not found", hint=_INSTALL_HINT
        )
    errors = []
    # Prefer a user namespace with a fixed build uid; fall back to the
    # caller's uid where bwrap may make the other namespaces but not that
    # one (root without user namespaces, setuid bwrap).
    for userns in (True, False):
        argv = [path, *_namespace_args(userns), *_root_args(), "--", "/bin/true"]
        try:
            proc = subprocess.run(
                argv, check=False, stdin=subprocess.DEVNULL, capture_output=True, env={}, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        if proc.returncode == 0:
            return Bwrap(path, userns)
        errors.append(
            proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        )
    raise SandboxUnavailable(
        f"bubblewrap ({path}) cannot create the namespaces a build needs: {errors[-1]}",
        hint="user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, "
        "kernel.apparmor_restrict_unprivileged_userns, or a container without them); "
        + _INSTALL_HINT,
    )


def _namespace_args(userns: bool, network: bool = False, session: bool = True) -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--clearenv", "--hostname", HOSTNAME]
    if session:  # a new session (no terminal); `raisin develop`'s shell keeps the user's
        args.append("--new-session")
    if network:
        args.append("--share-net")
    if userns:
        args += ["--unshare-user", "--uid", str(BUILD_UID), "--gid", str(BUILD_GID)]
    return args


def _root_args() -> list[str]:
    """The host toolchain, read-only, plus /proc and /dev."""
    args = ["--ro-bind", "/usr", "/usr"]
    for entry in _ROOT_ENTRIES:
        host = "/" + entry
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    args += ["--proc", "/proc", "--dev", "/dev"]
    return args


def build_env(spec: BuildSpec, *, jobserver: Jobserver | None = None) -> dict[str, str]:
    """The complete environment of a build: fixed variables, then user env, then paths.

    In ``none`` mode ``$out``, ``$src``, the dependency variables, ``PATH``
    and ``TMPDIR`` point at host paths; in ``bwrap`` mode at what the
    sandbox shows. The user's env may override anything but ``out``,
    ``src`` and the dependency variables.
    """
    host = spec.sandbox == "none"
    tmp = os.path.join(spec.build_dir_host, "tmp") if host else f"{BUILD_DIR}/tmp"
    bins = []
    for virtual in spec.dep_vars.values():
        base = spec.inputs[virtual]
        for sub in ("bin", "usr/bin"):
            if os.path.isdir(os.path.join(base, sub)):
                bins.append(os.path.join(base if host else virtual, sub))
    jobs = max(1, spec.jobs)
    env = {
        "PATH": ":".join([*bins, BASE_PATH]),
        "HOME": HOMELESS,
        "TMPDIR": tmp,
        "TMP": tmp,
        "TEMP": tmp,
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "SOURCE_DATE_EPOCH": str(spec.source_date_epoch),
        "MAKEFLAGS": (
            f"-j{jobs} --jobserver-auth={JOBSERVER_FDS[0]},{JOBSERVER_FDS[1]}"
            if jobserver is not None
            else f"-j{jobs}"
        ),
        "RAISIN_BUILD_CORES": str(jobs),
    }
    if spec.ccache_host is None:
        env["CCACHE_DISABLE"] = "1"  # meson picks up a host ccache by itself: never behind our back
    else:
        ccache.add_env(
            env, *((spec.ccache_host, spec.build_dir_host) if host else (ccache.MOUNT, BUILD_DIR))
        )
    env.update(spec.env)
    env["out"] = spec.out_host if host else spec.out
    if spec.src is not None:
        env["src"] = (spec.src_host or "") if host else spec.src
    else:
        env.pop("src", None)
    for var, virtual in spec.dep_vars.items():
        env[var] = spec.inputs[virtual] if host else virtual
    return env


def run(
    spec: BuildSpec,
    *,
    jobserver: Jobserver | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Run ``spec``'s steps; the log goes to ``spec.log_path``, the output to ``spec.out_host``.

    A failing step is a result with a non-zero ``exit_code``, not an
    exception; :class:`BuildError` means the build could not be started,
    :class:`SandboxUnavailable` that bubblewrap cannot run here. Setting
    ``cancel`` (or a KeyboardInterrupt in the calling thread, re-raised)
    kills the build's whole process tree.
    """
    bwrap = cached_probe() if spec.sandbox == "bwrap" else None
    prepare_dirs(spec)
    env = build_env(spec, jobserver=jobserver)
    pass_fds: list[int] = list(jobserver.fds) if jobserver is not None else []
    own_fds: list[int] = []  # closed when the build is over
    try:
        info = None
        if bwrap is not None:
            info, info_w = os.pipe()
            own_fds += [info, info_w]
            os.set_blocking(info, False)
            argv = bwrap_argv(spec, bwrap, env, info_w, own_fds)
            pass_fds += own_fds[1:]  # all but our end of the info pipe
            argv += _remap(jobserver)
            argv += [
                "/bin/sh",
                "-c",
                _BUILDER,
                "raisin-builder",
                (spec.src or "") if spec.copy_src else "",
                *spec.steps,
            ]
            popen_env: dict[str, str] = {}
            cwd = None
        else:
            argv = _remap(jobserver)
            argv += [
                "/bin/sh",
                "-c",
                _BUILDER,
                "raisin-builder",
                (spec.src_host or "") if spec.copy_src else "",
                *spec.steps,
            ]
            popen_env = env
            cwd = os.path.join(spec.build_dir_host, "src")
        result = _spawn(spec, argv, popen_env, cwd, pass_fds, cancel, info)
        if bwrap is not None:
            collect_output(spec)
        return result
    finally:
        for fd in own_fds:
            os.close(fd)


def _in_store(path: str) -> bool:
    return path.startswith(VIRTUAL_STORE + "/") and "/" not in path[len(VIRTUAL_STORE) + 1 :]


STORE_VIEW = "store-view"


def _store_view(spec: BuildSpec) -> str:
    """Host dir mounted writable at the virtual store: the build creates ``$out`` in it."""
    return os.path.join(spec.build_dir_host, STORE_VIEW)


def prepare_dirs(spec: BuildSpec) -> None:
    # $out does not exist when the build starts (builders may `mkdir $out`,
    # or make it a single file); in bwrap mode it is created in the store
    # view and moved to out_host afterwards (same filesystem: one rename).
    if os.path.lexists(spec.out_host):
        raise BuildError(f"{spec.name}: output path {spec.out_host} already exists")
    try:
        for sub in ("src", "tmp") + ((STORE_VIEW,) if spec.sandbox == "bwrap" else ()):
            path = os.path.join(spec.build_dir_host, sub)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        os.makedirs(os.path.dirname(spec.out_host), exist_ok=True)
        os.makedirs(os.path.dirname(spec.log_path), exist_ok=True)
    except OSError as exc:
        raise BuildError(f"{spec.name}: cannot prepare the build: {exc}") from exc


def collect_output(spec: BuildSpec) -> None:
    """Move ``$out`` from the store view to ``out_host`` (bwrap mode)."""
    made = os.path.join(_store_view(spec), spec.out.rsplit("/", 1)[-1])
    if os.path.lexists(made):
        os.rename(made, spec.out_host)


def bwrap_argv(
    spec: BuildSpec,
    bwrap: Bwrap,
    env: Mapping[str, str],
    info_fd: int | None,
    data_fds: list[int],
    *,
    session: bool = True,
    etc_dir: str | None = None,
) -> list[str]:
    """bwrap's command line; the pipes it reads files from are appended to ``data_fds``.

    A remote action's wrapper (remote/wrapper.py) passes host paths under a
    root prefix, no info fd, and ``etc_dir`` holding the generated /etc files.
    """
    argv = [bwrap.path] + (["--info-fd", str(info_fd)] if info_fd is not None else [])
    argv += _namespace_args(bwrap.userns, spec.network, session)
    # The build's own command is pid 1 of its pid namespace (--unshare-all
    # made one): otherwise pid 1 is bwrap's init, whose /proc/1/cmdline is
    # bwrap's whole command line, host paths included.
    argv += ["--as-pid-1"]
    argv += _root_args()

    uid, gid = (BUILD_UID, BUILD_GID) if bwrap.userns else (os.getuid(), os.getgid())
    argv += etc_args(
        uid, gid, HOSTNAME, HOMELESS, network=spec.network, data_fds=data_fds, files_dir=etc_dir
    )

    tmp_host = os.path.join(spec.build_dir_host, "tmp")
    argv += ["--bind", spec.build_dir_host, BUILD_DIR, "--bind", tmp_host, "/tmp"]
    if spec.workdir_host is not None:  # `raisin develop` on a path source: the checkout itself
        argv += ["--bind", spec.workdir_host, f"{BUILD_DIR}/src"]
    if spec.ccache_host is not None:
        argv += ["--bind", spec.ccache_host, ccache.MOUNT]

    argv += ["--bind", _store_view(spec), VIRTUAL_STORE]
    for virtual in sorted(spec.inputs):
        argv += ["--ro-bind", spec.inputs[virtual], virtual]
    if spec.src is not None and spec.src_host is not None and spec.src not in spec.inputs:
        argv += ["--ro-bind", spec.src_host, spec.src]

    # Everything is mounted: freeze the tmpfs root, so nothing can be created
    # outside /build, /tmp, $out, /dev (HOME stays absent, the store listing fixed).
    argv += ["--remount-ro", "/", "--chdir", f"{BUILD_DIR}/src"]
    for key in sorted(env):
        argv += ["--setenv", key, env[key]]
    argv.append("--")
    return argv


def _spawn(
    spec: BuildSpec,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    pass_fds: Sequence[int],
    cancel: threading.Event | None,
    info_fd: int | None,
) -> BuildResult:
    start = time.monotonic()
    try:
        log = LogPump(spec.log_path, spec.max_log_size)
    except OSError as exc:
        raise BuildError(f"{spec.name}: cannot open the build log: {exc}") from exc
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log.write_fd,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            pass_fds=tuple(pass_fds),
            start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:
        log.abandon()
        raise BuildError(f"{spec.name}: cannot start the build: {exc}") from exc

    killer = Killer(proc.pid, info_fd)
    log.on_stop = killer.kill
    log.start()
    watcher = None
    if cancel is not None:
        watcher = threading.Thread(
            target=killer.watch, args=(cancel,), name=f"cancel-{spec.name}", daemon=True
        )
        watcher.start()
    try:
        # Wait without reaping: until we reap, the pid (= process group id)
        # cannot be reused, so the watcher can never kill a stranger.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    except BaseException:  # KeyboardInterrupt, or anything else: leave nothing running
        killer.kill()
        killer.finish()
        proc.wait()
        log.finish()
        _append(spec.log_path, f"raisin: build of {spec.name} interrupted\n")
        raise
    killer.finish()
    code = proc.wait()
    log.finish()
    duration = time.monotonic() - start
    if log.failure is not None:
        _append(spec.log_path, f"\nraisin: build of {spec.name} killed: {log.failure}\n")
        return BuildResult(code, duration, spec.log_path, failure=log.failure)
    if killer.killed:
        _append(spec.log_path, f"raisin: build of {spec.name} cancelled\n")
    elif code < 0:
        _append(spec.log_path, f"raisin: build of {spec.name} killed by signal {-code}\n")
    return BuildResult(code, duration, spec.log_path, cancelled=killer.killed)


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(text)
    except OSError:
        pass


def builder_command(src: str, steps: Sequence[str]) -> list[str]:
    """The command run in the sandbox: the fixed builder script, the source to copy, the steps."""
    return ["/bin/sh", "-c", _BUILDER, "raisin-builder", src, *steps]
