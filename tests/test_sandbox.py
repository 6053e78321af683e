"""The build sandbox, with real bubblewrap and real make: what a build can and cannot see."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest

from raisin_lock.build.jobserver import Jobserver
from raisin_lock.build.sandbox import BuildResult, BuildSpec, check_sandbox, run
from raisin_lock.errors import SandboxUnavailable

STORE = "/raisin/store"
GREET = "a" * 32 + "-greet-1.0"  # the one declared dependency
SECRET = "b" * 32 + "-secret-1.0"  # in the host store, not an input
SOURCE = "c" * 32 + "-hello-source"
OUT = "d" * 32 + "-hello-1.2"
PROJECT = Path(__file__).resolve().parents[1]

FIXED_KEYS = {
    "PATH", "HOME", "TMPDIR", "TMP", "TEMP", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH",
    "MAKEFLAGS", "RAISIN_BUILD_CORES", "out", "src", "greet",
    "CCACHE_DISABLE",  # a host ccache is never used behind raisin's back (build/ccache.py)
}  # fmt: skip
SHELL_KEYS = {"PWD"}  # /bin/sh exports the working directory itself

pytestmark = pytest.mark.timeout(60)


class World:
    """A host store with a dependency, a path that is not an input, and a source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        greet = self.store / GREET
        (greet / "bin").mkdir(parents=True)
        (greet / "bin" / "greet").write_text("#!/bin/sh\necho hello from greet\n")
        (greet / "bin" / "greet").chmod(0o755)
        (self.store / SECRET).mkdir()
        (self.store / SECRET / "key").write_text("secret\n")
        src = self.store / SOURCE
        src.mkdir()
        (src / "data.txt").write_text("data\n")
        (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
        (src / "link").symlink_to("data.txt")
        (src / "sub").mkdir()
        (src / "sub" / "f").write_text("f\n")
        # Store contents are read-only; the build's copy must still be writable.
        for path in (src / "data.txt", src / "sub" / "f"):
            path.chmod(0o444)
        (src / "run.sh").chmod(0o555)
        (src / "sub").chmod(0o555)
        src.chmod(0o555)
        self._count = itertools.count()

    def spec(
        self,
        steps: tuple[str, ...],
        *,
        sandbox: str = "bwrap",
        env: dict[str, str] | None = None,
        jobs: int = 2,
    ) -> BuildSpec:
        n = next(self._count)
        build = self.root / f"build-{n}"
        build.mkdir()
        return BuildSpec(
            name="hello",
            steps=steps,
            env=env or {},
            out=f"{STORE}/{OUT}",
            out_host=str(self.root / f"out-{n}" / OUT),
            src=f"{STORE}/{SOURCE}",
            src_host=str(self.store / SOURCE),
            inputs={f"{STORE}/{GREET}": str(self.store / GREET)},
            dep_vars={"greet": f"{STORE}/{GREET}"},
            build_dir_host=str(build),
            log_path=str(self.root / "logs" / f"hello-{n}.log"),
            source_date_epoch=1_700_000_000,
            jobs=jobs,
            sandbox=sandbox,  # type: ignore[arg-type]
        )

    def build(self, steps: tuple[str, ...], **kwargs: object) -> tuple[BuildResult, Path]:
        # Like a Nix builder, $out does not exist at the start: create it first.
        spec = self.spec(("mkdir $out",) + tuple(steps), **kwargs)  # type: ignore[arg-type]
        (Path(spec.out_host).parent).mkdir()
        result = run(spec)
        return result, Path(spec.out_host)


@pytest.fixture
def world(tmp_path: Path) -> World:
    check_sandbox()
    return World(tmp_path)


def log_of(result: BuildResult) -> str:
    return Path(result.log_path).read_text()


def test_build_writes_out_from_a_writable_copy_of_the_source(world: World) -> None:
    result, out = world.build(
        (
            'test "$(pwd)" = /build/src',
            'test -x run.sh && test -L link && test "$(readlink link)" = data.txt',
            "echo changed >> data.txt && touch sub/new",
            'if touch "$src/new" 2>/dev/null; then exit 9; fi',
            "greet > greeting",  # the dependency's bin/ is on PATH
            "install -Dm644 greeting $out/share/greeting && ./run.sh > $out/ran",
        )
    )
    assert result.exit_code == 0, log_of(result)
    assert (out / "share" / "greeting").read_text() == "hello from greet\n"
    assert (out / "ran").read_text() == "ran\n"
    assert (world.store / SOURCE / "data.txt").read_text() == "data\n"  # pristine
    assert "+ greet > greeting\n" in log_of(result)


def test_no_network_not_even_the_hosts_loopback(world: World) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    port = server.getsockname()[1]
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('failed', e)\n"
    )
    try:
        result, out = world.build((f'python3 -c "{probe}" > $out/net',))
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody ever reached the host's listener
    finally:
        server.close()
    assert result.exit_code == 0, log_of(result)
    assert (out / "net").read_text().startswith("failed"), (out / "net").read_text()


def test_host_home_project_tmp_and_store_are_invisible(world: World) -> None:
    home_file = Path.home() / f".raisin-sandbox-test-{uuid.uuid4().hex}"
    home_file.write_text("private\n")
    hidden = [home_file, PROJECT / "pyproject.toml", world.store / SECRET, world.root]
    try:
        checks = [f'if cat "{p}" >/dev/null 2>&1; then echo "LEAK {p}"; fi' for p in hidden]
        result, out = world.build(
            (
                "{ " + "; ".join(checks) + "; } > $out/report",
                'if test -e "$HOME" || mkdir -p "$HOME"; then echo LEAK HOME; fi >> $out/report',
                "if touch /new-file 2>/dev/null; then echo LEAK root writable; fi >> $out/report",
            )
        )
    finally:
        home_file.unlink()
    assert result.exit_code == 0, log_of(result)
    assert (out / "report").read_text() == ""


def test_store_shows_only_inputs_source_and_out(world: World) -> None:
    result, out = world.build(
        (
            "ls -A /raisin/store > $out/listing",
            f"test ! -e /raisin/store/{SECRET}",
            "if touch $greet/x 2>/dev/null || touch $src/x 2>/dev/null; then exit 9; fi",
        )
    )
    assert result.exit_code == 0, log_of(result)
    assert (out / "listing").read_text().split() == sorted([GREET, SOURCE, OUT])


def test_environment_is_exactly_the_fixed_one(world: World) -> None:
    user_env = {"CFLAGS": "-O2", "out": "/evil", "greet": "/evil", "src": "/evil"}
    result, out = world.build(
        ("env > $out/env", "cat > $out/stdin", "test ! -e $HOME"), env=user_env, jobs=3
    )
    assert result.exit_code == 0, log_of(result)
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    assert set(env) == FIXED_KEYS | SHELL_KEYS | {"CFLAGS"}
    assert env == {
        "PATH": f"{STORE}/{GREET}/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": "/homeless-shelter",
        "TMPDIR": "/build/tmp",
        "TMP": "/build/tmp",
        "TEMP": "/build/tmp",
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "SOURCE_DATE_EPOCH": "1700000000",
        "MAKEFLAGS": "-j3",
        "RAISIN_BUILD_CORES": "3",
        "out": f"{STORE}/{OUT}",
        "src": f"{STORE}/{SOURCE}",
        "greet": f"{STORE}/{GREET}",
        "CFLAGS": "-O2",
        "PWD": "/build/src",
        "CCACHE_DISABLE": "1",
    }
    assert (out / "stdin").read_text() == ""


def test_fixed_hostname_timezone_and_locale(world: World) -> None:
    result, out = world.build(
        (
            "uname -n > $out/hostname",
            "date +%Z > $out/tz",
            "locale charmap > $out/charmap",
            "id -un > $out/user",
        )
    )
    assert result.exit_code == 0, log_of(result)
    assert (out / "hostname").read_text() == "raisin\n"
    assert (out / "tz").read_text() == "UTC\n"
    assert (out / "charmap").read_text() == "UTF-8\n"
    assert (out / "user").read_text().strip() in {"raisin", "root"}  # root: no user namespace


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_umask_is_022_whatever_the_callers(world: World, mode: str) -> None:
    old = os.umask(0o077)
    try:
        result, out = world.build(
            ("umask > $out/umask", "touch $out/file", "mkdir $out/dir"), sandbox=mode
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, log_of(result)
    assert (out / "umask").read_text() == "0022\n"
    assert stat.S_IMODE((out / "file").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "dir").stat().st_mode) == 0o755
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_failing_step_stops_the_build_and_the_log_names_it(world: World) -> None:
    result, out = world.build(("echo first step", "test -e no-such-file", "echo never > $out/x"))
    assert result.exit_code == 1
    assert not result.ok
    log = log_of(result)
    assert "+ echo first step\nfirst step\n+ test -e no-such-file\n" in log
    assert "raisin: step 3/4 failed with exit status 1: test -e no-such-file" in log
    assert "echo never" not in log
    assert not (out / "x").exists()


def test_syntax_error_in_a_step_fails_the_build(world: World) -> None:
    result, _ = world.build(("if then",))
    assert result.exit_code == 2
    assert "step 2/2 failed with exit status 2" in log_of(result)


def _processes_with(arg: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if arg.encode() in cmdline.split(b"\0"):
                found.append(int(entry))
    return found


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_cancel_kills_the_whole_build_within_a_second(world: World, mode: str) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    spec = world.spec((f"sleep {marker} & sleep {marker}",), sandbox=mode)
    Path(spec.out_host).parent.mkdir()
    cancel = threading.Event()
    results: list[BuildResult] = []
    thread = threading.Thread(target=lambda: results.append(run(spec, cancel=cancel)))
    thread.start()
    deadline = time.monotonic() + 10
    while len(_processes_with(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_processes_with(marker)) == 2  # both sleeps started
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()  # run() returned: the build was killed, not waited for
    assert results and results[0].cancelled and results[0].exit_code != 0
    assert "cancelled" in log_of(results[0])
    if mode == "bwrap":  # the pid namespace is empty before run() returns
        assert _processes_with(marker) == []
    deadline = time.monotonic() + 1
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _processes_with(marker) == []  # the background sleep died too


def test_keyboard_interrupt_kills_the_build_and_propagates(world: World) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    spec = world.spec((f"sleep {marker}",))
    Path(spec.out_host).parent.mkdir()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(spec)
    finally:
        timer.cancel()
    assert _processes_with(marker) == []
    assert "interrupted" in Path(spec.log_path).read_text()


def test_none_mode_uses_host_paths_and_the_same_fixed_env(world: World) -> None:
    result, out = world.build(
        (
            "env > $out/env",
            "echo changed >> data.txt && test -x run.sh && test -L link",
            'greet > $out/greeting && test "$(pwd)" = "$PWD"',
        ),
        sandbox="none",
    )
    assert result.exit_code == 0, log_of(result)
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    assert set(env) == FIXED_KEYS | SHELL_KEYS
    assert env["out"] == str(out)
    assert env["src"] == str(world.store / SOURCE)
    assert env["greet"] == str(world.store / GREET)
    assert env["PATH"].startswith(str(world.store / GREET / "bin") + ":")
    assert env["PWD"].startswith(str(world.root)) and env["PWD"].endswith("/src")
    assert env["HOME"] == "/homeless-shelter" and env["TZ"] == "UTC"
    assert (out / "greeting").read_text() == "hello from greet\n"
    assert (world.store / SOURCE / "data.txt").read_text() == "data\n"


# Each job records when it ran; plain `make` (MAKEFLAGS carries -jN and the
# jobserver: a `-j` on make's command line would make it ignore the jobserver).
MAKEFILE = """\
JOBS := t1 t2 t3 t4
all: $(JOBS)
$(JOBS):
\t@s=$$(date +%s.%N); sleep 0.3; e=$$(date +%s.%N); echo "$$s $$e" >> $$out/times
"""


def _max_concurrency(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:  # ends sort before starts at equal times
        running += delta
        peak = max(peak, running)
    return peak


def _two_concurrent_make_builds(world: World, jobserver: Jobserver | None) -> list[str]:
    specs = [
        world.spec(("mkdir $out", "cat > Makefile <<'EOF'\n" + MAKEFILE + "EOF", "make"), jobs=4)
    ]
    specs.append(world.spec(specs[0].steps, jobs=4))
    results: list[BuildResult] = []

    def build(spec: BuildSpec) -> None:
        Path(spec.out_host).parent.mkdir()
        if jobserver is not None:
            jobserver.acquire()  # as the scheduler does: one token per running build
        try:
            results.append(run(spec, jobserver=jobserver))
        finally:
            if jobserver is not None:
                jobserver.release()

    threads = [threading.Thread(target=build, args=(spec,)) for spec in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and all(r.exit_code == 0 for r in results), [
        log_of(r) for r in results
    ]
    intervals = []
    for spec in specs:
        for line in (Path(spec.out_host) / "times").read_text().splitlines():
            start, end = line.split()
            intervals.append((float(start), float(end)))
    assert len(intervals) == 8
    return [str(_max_concurrency(intervals)), *(log_of(r) for r in results)]


def test_jobserver_caps_jobs_across_concurrent_sandboxed_builds(world: World) -> None:
    with Jobserver(2) as jobserver:
        peak, *logs = _two_concurrent_make_builds(world, jobserver)
        assert int(peak) <= 2
        assert all("jobserver" not in log for log in logs), logs
        assert jobserver.available() == 2  # every token came back


def test_without_jobserver_the_same_builds_oversubscribe(world: World) -> None:
    peak, *_ = _two_concurrent_make_builds(world, None)
    assert int(peak) > 2


def test_jobserver_recovers_tokens_lost_with_a_killed_make() -> None:
    with Jobserver(3) as jobserver:
        jobserver.acquire()
        os.read(jobserver.fds[0], 1)  # a make took a token and was SIGKILLed
        assert jobserver.available() == 1
        jobserver.release()  # no build running any more: the pipe is refilled
        assert jobserver.available() == 3
        assert (
            jobserver.makeflags(5) == f"-j5 --jobserver-auth={jobserver.fds[0]},{jobserver.fds[1]}"
        )


def test_missing_bwrap_names_the_install_command_and_the_alternative(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as missing:
        check_sandbox(str(tmp_path / "no-bwrap"))
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable) as broken:
        check_sandbox(str(fake))
    assert "No permissions to create new namespace" in str(broken.value)
    for exc in (missing.value, broken.value):
        text = str(exc)
        assert "apt-get install bubblewrap" in text
        assert "dnf install bubblewrap" in text
        assert "--sandbox none" in text


def test_a_dependency_outside_the_inputs_is_refused(world: World) -> None:
    spec = world.spec(("true",))
    with pytest.raises(ValueError, match="not among the inputs"):
        BuildSpec(**{**spec.__dict__, "dep_vars": {"secret": f"{STORE}/{SECRET}"}})


def test_concurrent_builds_see_the_jobserver_on_the_same_descriptors(world: World) -> None:
    # The jobserver's pipe has other numbers in raisin while other pipes (an
    # earlier build's, a second build's) are open; what a build sees must not.
    with Jobserver(3) as jobserver:
        specs = [
            world.spec(("mkdir $out", "echo $MAKEFLAGS > $out/flags", "sleep 0.5"))
            for _ in range(2)
        ]
        extra = os.pipe()  # shifts the numbers of anything opened later
        results: list[BuildResult] = []

        def build(spec: BuildSpec) -> None:
            Path(spec.out_host).parent.mkdir()
            jobserver.acquire()
            try:
                results.append(run(spec, jobserver=jobserver))
            finally:
                jobserver.release()

        try:
            threads = [threading.Thread(target=build, args=(s,)) for s in specs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            for fd in extra:
                os.close(fd)
        assert [r.exit_code for r in results] == [0, 0], [log_of(r) for r in results]
        flags = [(Path(s.out_host) / "flags").read_text() for s in specs]
        assert flags == ["-j2 --jobserver-auth=3,4\n"] * 2


@pytest.mark.parametrize("jobserver", [False, True])
def test_pid_1_of_the_build_is_the_build_itself(world: World, jobserver: bool) -> None:
    js = Jobserver(2) if jobserver else None
    try:
        spec = world.spec(
            ("mkdir $out", "tr '\\0' ' ' < /proc/1/cmdline > $out/cmdline", "echo $$ > $out/pid")
        )
        Path(spec.out_host).parent.mkdir()
        result = run(spec, jobserver=js)
    finally:
        if js is not None:
            js.close()
    assert result.exit_code == 0, log_of(result)
    cmdline = (Path(spec.out_host) / "cmdline").read_text()
    assert cmdline.startswith("/bin/sh -c "), cmdline
    assert "bwrap" not in cmdline and str(world.root) not in cmdline
    assert (Path(spec.out_host) / "pid").read_text() == "1\n"
