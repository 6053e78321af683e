"""raisin test: functional tests of the realized stack, through the real CLI.

The framework tests use a small fake stack (a "guest" that is a shell
script printing a banner and then hanging, exiting or panicking) so they
run in seconds; one uses the real QEMU with the host's SeaBIOS. The real
boot tests of examples/xen-debian (a ~5-minute Xen build) are marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import RAISIN, install_builddeps, raisin

ROOT = Path(__file__).resolve().parent.parent

VM = """#!/bin/sh
# a fake guest: a banner, then what it is told to do
echo "FakeVM version 3.2.1 booting"
case "${1:-hang}" in
  hang) [ -n "${PIDFILE:-}" ] && echo $$ > "$PIDFILE"; echo "waiting forever"; exec sleep 1000 ;;
  exit) echo "bye"; exit "${2:-0}" ;;
  panic) echo "Kernel panic - not syncing: fake"; exec sleep 1000 ;;
  noise) printf 'ansi \\033[2J\\033[1;1H clear, bell \\007, nul \\000 end\\n'; echo "noise done" ;;
esac
"""


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test directories raisin keeps (failed tests) land in pytest's tmp, not /tmp."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))


def make_stack(tmp_path: Path, tests: str, extra: str = "") -> Path:
    proj = tmp_path / "proj"
    (proj / "vm").mkdir(parents=True)
    (proj / "vm" / "vm.sh").write_text(VM)
    (proj / "raisin.toml").write_text(
        f"""
[components.vm]
source = {{ path = "vm" }}
version = "3.2.1+rc1"
build = ["install -Dm755 vm.sh $out/bin/fake-vm"]
{extra}
{tests}
"""
    )
    return proj


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("pass", "FAIL", "ERROR", "skip"):
            rows[parts[0]] = parts
    return rows


# ---------------------------------------------------------------- pass / fail


def test_failing_expectation_exits_1_and_shows_the_console_tail(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.boots]
needs = ["vm"]
run = ["$vm/bin/fake-vm hang"]
expect = ["FakeVM version @vm.release@ booting", "waiting forever"]
timeout = 30

[tests.wrong-version]
needs = ["vm"]
run = ["$vm/bin/fake-vm exit 0"]
expect = ["FakeVM version 9.9.9"]
timeout = 30
""",
    )
    r = raisin("test", cwd=proj, timeout=120)  # the hanging guest is stopped, or this times out
    assert r.code == 1, r
    rows = _rows(r.out)
    assert rows["boots"][1] == "pass" and rows["wrong-version"][1] == "FAIL", r.out
    assert "1 passed, 1 failed" in r.out
    assert (
        "error: wrong-version: the steps ended before 'FakeVM version 9.9.9' appeared (0/1 expected patterns seen)"
        in r.err
    )
    tail = r.err.split("console lines of wrong-version ---", 1)[1]
    assert "  FakeVM version 3.2.1 booting" in tail and "  bye" in tail
    log = proj / "store/.raisin/test-logs/wrong-version.log"
    assert f"full log: {log}" in r.err and "+ $vm/bin/fake-vm exit 0" in log.read_text()
    # only the passing test runs: exit 0
    r = raisin("test", "boots", cwd=proj)
    assert r.code == 0 and "1 passed" in r.out, r


def test_a_hung_guest_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pidfile, bgpid = tmp_path / "vm.pid", tmp_path / "bg.pid"
    proj = make_stack(
        tmp_path,
        f"""
[tests.hangs]
needs = ["vm"]
run = [
  "sleep 1000 & echo $! > {bgpid}",
  "PIDFILE={pidfile} $vm/bin/fake-vm hang",
]
expect = ["FakeVM version", "login:"]
timeout = 2
""",
    )
    assert raisin("realize", cwd=proj).code == 0
    r = raisin("test", cwd=proj, timeout=120)
    assert r.code == 1, r
    assert "timed out after 2s waiting for 'login:' (1/2 expected patterns seen)" in r.err
    assert "  waiting forever" in r.err
    for f in (pidfile, bgpid):
        pid = int(f.read_text())
        assert not _alive(pid), f"{f.name}: process {pid} outlived the test"


def test_fail_on_pattern_fails_at_once(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.panics]
needs = ["vm"]
run = ["$vm/bin/fake-vm panic"]
expect = ["login:"]
fail-on = ["Kernel panic", { regex = "Oops: \\\\d+" }]
timeout = 120
""",
    )
    r = raisin("test", cwd=proj, timeout=110)  # fail-on stops it at once, long before its 120 s
    assert r.code == 1, r
    assert "the console printed 'Kernel panic': Kernel panic - not syncing: fake" in r.err


def test_step_results_and_headers(tmp_path: Path) -> None:
    """The failing step is named; a step's own text never satisfies an expectation; no expect = exit status."""
    proj = make_stack(
        tmp_path,
        """
[tests.step-fails]
run = ["echo one", "false", "echo never"]
expect = ["never"]
timeout = 30

[tests.header-only]
run = [": READY", "true"]
expect = ["READY"]
timeout = 30

[tests.status-ok]
run = ["true"]

[tests.unterminated]
run = ["printf 'no newline'", "printf 'again'", "true"]
expect = [{ regex = '^no newline$' }, { regex = '^again$' }]

[tests.status-bad]
run = ["echo about to fail", "exit 3"]
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 1, r
    rows = _rows(r.out)
    assert [
        rows[n][1] for n in ("step-fails", "header-only", "status-ok", "unterminated", "status-bad")
    ] == [
        "FAIL",
        "FAIL",
        "pass",
        "pass",
        "FAIL",
    ]
    assert (
        "error: step-fails: step 2/3 failed with exit status 1: false before 'never' appeared"
        in r.err
    )
    assert "error: header-only: the steps ended before 'READY' appeared" in r.err
    assert "error: status-bad: step 2/2 failed with exit status 3: exit 3" in r.err


def test_the_unfinished_line_that_passed_the_test_is_in_the_log(tmp_path: Path) -> None:
    """A guest stopped mid-line (a prompt, a marker whose newline has not come yet): the log still shows it."""
    proj = make_stack(
        tmp_path,
        """
[tests.prompt]
run = ["printf 'booted\\nlogin: '; exec sleep 1000"]
expect = ["booted", "login:"]
timeout = 30
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 0, r
    log = (proj / "store/.raisin/test-logs/prompt.log").read_text().splitlines()
    assert "login: " in log, log
    assert log.index("login: ") < next(
        i for i, ln in enumerate(log) if ln.startswith("raisin: stopped")
    ), log


def test_files_placeholders_and_environment(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.files]
needs = ["vm"]
files."bin/check.sh" = '''#!/bin/sh
echo "version=@vm.version@ release=@vm.release@ in=$PWD home=$HOME tz=$TZ"
'''
files."data.txt" = "plain @vm.release@"
run = ["./bin/check.sh", "cat data.txt", "test -x bin/check.sh", "test ! -x data.txt", "test $RAISIN_TEST_DIR = $PWD"]
expect = [
  "version=3.2.1+rc1 release=3.2.1 in=",
  { regex = 'home=\\S+/files tz=UTC' },
  { regex = '^plain @vm.release@$' },
]
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 0, r


def test_regex_placeholders_are_escaped(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.escaped]
needs = ["vm"]
run = ["echo 'version 3.2.1Xrc1'"]
expect = [{ regex = 'version @vm.version@' }]
timeout = 2
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 1, r  # '+' is literal, so 3.2.1Xrc1 does not match 3.2.1+rc1


# ---------------------------------------------------------------- skips, ordering


def test_skips_are_reported_with_reasons_never_passed(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.no-qemu]
needs = ["vm"]
tools = ["qemu-system-raisin-nonexistent"]
run = ["true"]

[tests.no-linux]
needs = ["linux"]
run = ["true"]

[tests.told-to]
skip = "flaky on this runner"

[tests.stacked]
after = ["no-qemu"]
run = ["true"]
""",
    )
    r = raisin("test", "--junit", str(tmp_path / "j.xml"), cwd=proj)
    assert r.code == 0, r
    rows = _rows(r.out)
    assert {n: row[1] for n, row in rows.items()} == {
        n: "skip" for n in ("no-qemu", "no-linux", "told-to", "stacked")
    }
    assert "qemu-system-raisin-nonexistent not installed" in r.out
    assert "needs component 'linux', which this stack does not have" in r.out
    assert "flaky on this runner" in r.out
    assert "comes after no-qemu, which was skipped" in r.out
    assert "0 passed, 4 skipped" in r.out
    # nothing needed building: the skipped tests' components were not realized
    assert not any((proj / "store").glob("*-vm-3.2.1+rc1"))
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "4" and suite.get("tests") == "4"


def test_after_runs_first_shares_its_directory_and_gates(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.use]
after = ["prep"]
run = ["cat $prep_dir/artifact"]
expect = ["made by prep"]
timeout = 30

[tests.prep]
run = ["echo 'made by prep' > artifact"]
""",
    )
    r = raisin("test", "use", cwd=proj)
    assert r.code == 0, r
    assert list(_rows(r.out)) == ["prep", "use"]
    assert not list((tmp_path / "tmp").glob("raisin-test-*"))  # passed: directories removed
    text = (proj / "raisin.toml").read_text().replace("echo 'made by prep' > artifact", "exit 1")
    (proj / "raisin.toml").write_text(text)
    r = raisin("test", "use", cwd=proj)
    assert r.code == 1, r
    assert _rows(r.out)["use"][1] == "skip" and "comes after prep, which did not pass" in r.out
    kept = re.search(r"test directory kept: (\S+)\)", r.err)
    assert (
        kept
        and Path(kept.group(1)).is_dir()
        and Path(kept.group(1)).is_relative_to(tmp_path / "tmp")
    )


def test_component_that_does_not_build_is_an_error(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.needs-broken]
needs = ["broken"]
run = ["true"]

[tests.fine]
needs = ["vm"]
run = ["true"]
""",
        extra="""
[components.broken]
source = { path = "vm" }
build = ["echo cannot build >&2", "false"]
""",
    )
    r = raisin("test", cwd=proj)
    assert r.code == 1, r
    rows = _rows(r.out)
    assert rows["needs-broken"][1] == "ERROR" and rows["fine"][1] == "pass", r.out
    assert "broken did not build (raisin log broken)" in r.out


# ---------------------------------------------------------------- JUnit


def test_junit_xml_parses_and_carries_results(tmp_path: Path) -> None:
    proj = make_stack(
        tmp_path,
        """
[tests.ok]
needs = ["vm"]
run = ["$vm/bin/fake-vm noise"]
expect = ["noise done"]

[tests.bad]
needs = ["vm"]
run = ["$vm/bin/fake-vm exit 0"]
expect = ["never"]

[tests.skipped]
skip = "not today"
""",
    )
    out = tmp_path / "reports" / "junit.xml"
    r = raisin("test", "--junit", str(out), cwd=proj)
    assert r.code == 1, r
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    s = suites[0]
    assert (
        s.get("name"),
        s.get("tests"),
        s.get("failures"),
        s.get("errors"),
        s.get("skipped"),
    ) == ("raisin", "3", "1", "0", "1")
    float(s.get("time", "x"))
    cases = {c.get("name"): c for c in s.findall("testcase")}
    assert set(cases) == {"ok", "bad", "skipped"}
    for c in cases.values():
        assert c.get("classname") == "raisin.manifest"
        float(c.get("time", "x"))
    assert cases["ok"].find("failure") is None and cases["ok"].find("skipped") is None
    assert "noise done" in (cases["ok"].findtext("system-out") or "")
    failure = cases["bad"].find("failure")
    assert failure is not None and "before 'never' appeared" in failure.get("message", "")
    assert "bye" in (failure.text or "")
    skipped = cases["skipped"].find("skipped")
    assert skipped is not None and skipped.get("message") == "not today"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("tests", "message"),
    [
        ('[tests.t]\nrun = ["true"]\ntimeot = 3\n', "raisin.toml:9: tests.t: unknown key 'timeot'"),
        ('[tests.t]\nrun = ["true"]\nafter = ["nope"]\n', "tests.t.after: unknown test 'nope'"),
        (
            '[tests.a]\nrun = ["true"]\nafter = ["b"]\n[tests.b]\nrun = ["true"]\nafter = ["a"]\n',
            "cycle: a -> b -> a",
        ),
        (
            '[tests.t]\nneeds = ["vm"]\nrun = ["echo @vm.verison@"]\n',
            "tests.t.run.0: unknown placeholder @vm.verison@",
        ),
        ('[tests.t]\ndoc = "no steps"\n', "tests.t: missing 'run'"),
        (
            '[tests.t]\nrun = ["true"]\nexpect = [{ regex = "(" }]\n',
            "tests.t.expect.0.regex: invalid regular expression",
        ),
        (
            '[tests.t]\nrun = ["true"]\nfiles."../x" = ""\n',
            "must be a relative path inside the test directory",
        ),
        (
            '[tests.t]\nrun = ["true"]\ninputs.k = { debian-binary = "x", hash = "sha256-AAAA" }\n',
            "'hash' needs 'version' too",
        ),
    ],
)
def test_bad_declarations_exit_2(tmp_path: Path, tests: str, message: str) -> None:
    proj = make_stack(tmp_path, tests)
    r = raisin("test", cwd=proj)
    assert r.code == 2, r
    assert message in r.err, r.err
    assert "Traceback" not in r.err


def test_unknown_test_name_exits_2(tmp_path: Path) -> None:
    proj = make_stack(tmp_path, '[tests.real]\nrun = ["true"]\n')
    r = raisin("test", "imaginary", cwd=proj)
    assert r.code == 2 and "unknown test 'imaginary' (known: real)" in r.err, r


def test_interrupt_kills_the_guest(tmp_path: Path) -> None:
    pidfile = tmp_path / "vm.pid"
    proj = make_stack(
        tmp_path,
        f'[tests.long]\nneeds = ["vm"]\nrun = ["PIDFILE={pidfile} $vm/bin/fake-vm hang"]\nexpect = ["never"]\ntimeout = 300\n',
    )
    assert raisin("realize", cwd=proj).code == 0
    env = {k: v for k, v in os.environ.items() if k != "RAISIN_STORE"}
    p = subprocess.Popen(
        [RAISIN, "test"],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pidfile.exists()
    time.sleep(0.2)
    pid = int(pidfile.read_text())
    assert _alive(pid)
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert not _alive(pid)


# ---------------------------------------------------------------- recipe tests (real QEMU, host SeaBIOS)


def _host_seabios() -> tuple[str, str]:
    bios = Path("/usr/share/seabios/bios.bin")
    if shutil.which("qemu-system-i386") is None or not bios.exists():
        pytest.skip("needs qemu-system-x86 and the host's seabios package")
    m = re.search(rb"\x00(\d+\.\d+\.\d+)(-[A-Za-z0-9.+~_\-]+)?\x00", bios.read_bytes())
    assert m, "no version string in the host's bios.bin"
    return m.group(1).decode(), (m.group(2) or b"").decode()


NO_BUILDDEP_CHECK = {
    "RAISIN_SKIP_BUILDDEP_CHECK": "1"
}  # the seabios recipe's build deps are not used here


def _seabios_stack(tmp_path: Path, extraversion: str, tests: str = "") -> Path:
    version, _ = _host_seabios()
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True, exist_ok=True)
    (proj / "src" / "README").write_text("the host's bios.bin stands in for a build\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.firmware]
source = {{ path = "src" }}
version = "{version}"
recipe = "seabios"
options = {{ extraversion = "{extraversion}" }}
build = ["install -Dm644 /usr/share/seabios/bios.bin $out/usr/share/seabios/bios.bin"]
{tests}
"""
    )
    return proj


def test_recipe_test_boots_real_seabios_under_qemu(tmp_path: Path) -> None:
    _version, extra = _host_seabios()
    proj = _seabios_stack(tmp_path, extra)
    r = raisin("test", "--list", cwd=proj, env=NO_BUILDDEP_CHECK)
    assert r.code == 0 and re.search(
        r"^seabios-boots\s+recipe seabios; needs seabios=firmware;", r.out, re.MULTILINE
    ), r
    r = raisin("test", "seabios-boots", cwd=proj, env=NO_BUILDDEP_CHECK)
    assert r.code == 0, r
    assert "seabios-boots  pass" in r.out
    assert not _qemu_running(proj)


def test_recipe_test_catches_a_version_mismatch_and_stops_qemu(tmp_path: Path) -> None:
    proj = _seabios_stack(tmp_path, "-raisin", "[tests.seabios-boots]\ntimeout = 3\n")
    r = raisin("test", cwd=proj, env=NO_BUILDDEP_CHECK)
    assert r.code == 1, r
    assert "-raisin)' (0/2 expected patterns seen)" in r.err and "timed out after 3s" in r.err
    assert "  No bootable device." in r.err  # the console tail
    log = (proj / "store/.raisin/test-logs/seabios-boots.log").read_text()
    assert re.search(r"^SeaBIOS \(version \d+\.\d+\.\d+", log, re.MULTILINE), log[
        :2000
    ]  # the banner it did print
    assert "recipe seabios + raisin.toml" in raisin("test", "--list", cwd=proj).out
    assert not _qemu_running(proj)


def test_manifest_can_skip_a_recipe_test(tmp_path: Path) -> None:
    proj = _seabios_stack(tmp_path, "", '[tests.seabios-boots]\nskip = "no emulator time today"\n')
    r = raisin("test", cwd=proj, env=NO_BUILDDEP_CHECK)
    assert r.code == 0 and "no emulator time today" in r.out, r


def _qemu_running(proj: Path) -> bool:
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if (
                str(proj) in stat.read_bytes().decode(errors="replace")
                and b"qemu" in stat.read_bytes()
            ):
                return True
        except OSError:
            pass
    return False


def test_readme_example_is_a_valid_test_table() -> None:
    import tomllib

    from raisin_lock.manifest.model import TestSpec

    text = (ROOT / "README.md").read_text()
    block = text.split("### Writing a test", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    doc = tomllib.loads(block)
    spec = TestSpec.model_validate(doc["tests"]["hello-runs"])
    assert spec.needs == ("hello",) and spec.timeout == 30


# ---------------------------------------------------------------- slow: the real stack


EXAMPLE = ROOT / "examples" / "xen-debian"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_debian_binary_input_is_fetched_pinned_and_checked(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get")
    unpinned = '{ debian-binary = "busybox-static", keep = ["bin/busybox"] }'
    proj = make_stack(
        tmp_path,
        f"""
[tests.bb]
run = ["$bb/bin/busybox echo hello from busybox", "test ! -e $bb/usr/share/doc"]
expect = ["hello from busybox"]
[tests.bb.inputs]
bb = {unpinned}
""",
    )
    manifest = proj / "raisin.toml"
    r = raisin("test", cwd=proj, timeout=600)
    assert r.code == 0, r
    pin = re.search(r"^    bb = (\{.*\})$", r.err, re.MULTILINE)
    assert pin and "version = " in pin.group(1), r.err
    manifest.write_text(manifest.read_text().replace(unpinned, pin.group(1)))
    r = raisin("test", "--offline", cwd=proj)
    assert r.code == 0 and "not pinned" not in r.err, r
    wrong = re.sub(r'hash = "sha256-[^"]+"', 'hash = "sha256-' + "A" * 43 + '="', pin.group(1))
    manifest.write_text(manifest.read_text().replace(pin.group(1), wrong))
    r = raisin("test", cwd=proj, timeout=600)
    assert r.code == 1 and "input bb: " in r.out and "not the pinned sha256-AAAA" in r.out, r


@pytest.mark.slow
@pytest.mark.timeout(3600)  # builds Xen first: ~5 min alone on 2 cores, much more on a busy machine
def test_real_stack_boots_under_qemu(tmp_path: Path) -> None:
    """Every recipe test on examples/xen-debian (builds it: ~5-7 min idle, ~18 min on busy cores)."""
    if shutil.which("qemu-system-x86_64") is None or shutil.which("apt-get") is None:
        pytest.skip("needs qemu-system-x86 and apt-get")
    proj = tmp_path / "xen-debian"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("store", "profiles"))
    install_builddeps(proj)  # this file runs before test_real_stack.py, which installs them too
    junit = tmp_path / "junit.xml"
    r = raisin("test", "-j", "2", "--junit", str(junit), cwd=proj, timeout=3600)
    assert r.code == 0, r
    rows = _rows(r.out)
    # the guests that need qemu-xen, PV-GRUB2, OVMF or libvirt are skipped by name here
    assert {n: row[1] for n, row in rows.items()} == {
        "seabios-boots": "pass",
        "xen-boots": "pass",
        "dom0-boots": "pass",
        "busybox-pv": "pass",
        "busybox-pvh": "pass",
        "busybox-hvm": "skip",
        "busybox-hvm-shadow": "skip",
        "xl-save-restore": "pass",
        "pvgrub-pv": "skip",
        "ovmf-hvm": "skip",
        "libvirt-xen": "skip",
    }, r.out
    assert re.search(
        r"^pvgrub-pv\s+skip\s+-\s+needs a component built with the 'grub' recipe",
        r.out,
        re.MULTILINE,
    )
    times = {
        c.get("name"): float(c.get("time", "0")) for c in ET.parse(junit).getroot().iter("testcase")
    }
    print("per-test seconds:", times)
    logs = proj / "store/.raisin/test-logs"
    assert "SeaBIOS (version 1.16.2-raisin)" in (logs / "seabios-boots.log").read_text()
    assert "Xen version 4.17.5 (" in (logs / "xen-boots.log").read_text()
    assert re.search(r"xen_version\s+: 4\.17\.5", (logs / "dom0-boots.log").read_text())
    assert re.search(
        r"guest: RAISIN-GUEST-OK: \S+ on xen PV", (logs / "busybox-pv.log").read_text()
    )
    # the same tests catch a stack that is not what the lock says
    (proj / "raisin.toml").write_text(
        (proj / "raisin.toml").read_text()
        + '\n[tests.xen-boots]\nexpect = ["Xen version 4.99.0 ("]\ntimeout = 20\n'
    )
    r = raisin("test", "xen-boots", cwd=proj, timeout=600)
    assert r.code == 1 and "Xen version 4.17.5 (" in r.err, r
