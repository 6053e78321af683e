"""import-config: a legacy Raisin bash config becomes a raisin.toml that validates and locks."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from conftest import git, make_repo, raisin

from raisin_lock.manifest import model as manifest_mod
from raisin_lock.manifest.shellvars import parse_shell

LEGACY = Path(__file__).parent / "fixtures" / "raisin-legacy.config"
STACK = ["seabios", "ovmf", "xen", "qemu-xen", "qemu-traditional", "grub", "libvirt", "linux"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COMPONENTS"}
    env.update(extra)
    return env


def _import(tmp: Path, config: str, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (tmp / "config").write_text(config)
    return raisin("import-config", "config", *args, cwd=tmp, env=env or _env())


def _toml(tmp: Path, name: str = "raisin.toml") -> dict:  # type: ignore[type-arg]
    return tomllib.loads((tmp / name).read_text())


def _header(tmp: Path) -> str:
    text = (tmp / "raisin.toml").read_text()
    return text[: text.index("[components.")]


# ------------------------------------------------------------------ the XEN-STACK.md config


def test_legacy_config_from_xen_stack_md_maps_to_the_built_in_recipes(tmp_path: Path) -> None:
    r = _import(tmp_path, LEGACY.read_text())
    assert r.code == 0, r
    m = manifest_mod.load(tmp_path / "raisin.toml")  # validates
    assert list(m.components) == STACK
    for name, spec in m.components.items():
        assert spec.recipe == name
        assert spec.source.kind == "git"
    comps = _toml(tmp_path)["components"]
    # XEN_RELEASE=4.6 preset, origin/ stripped; GIT_TRANSPORT=http URL set
    assert comps["xen"]["source"] == {
        "git": "https://xenbits.xen.org/git-http/xen.git",
        "ref": "stable-4.6",
    }
    assert comps["qemu-xen"]["source"] == {
        "git": "https://xenbits.xen.org/git-http/qemu-xen.git",
        "ref": "stable-4.6",
    }
    assert (
        comps["qemu-traditional"]["source"]["git"]
        == "https://xenbits.xen.org/git-http/qemu-xen-traditional.git"
    )
    assert comps["seabios"]["source"]["ref"] == "rel-1.8.2"
    assert comps["ovmf"]["source"]["ref"] == "cb9a7ebabcd6b8a49dc0854b2f9592d732b5afbd"
    assert comps["grub"]["source"]["git"] == "https://git.savannah.gnu.org/git/grub.git"
    assert comps["libvirt"]["source"]["git"] == "https://libvirt.org/git/libvirt.git"
    assert comps["linux"]["source"] == {
        "git": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
        "ref": "v4.4",
    }
    # edges: firmware into xen, xen into qemu-xen / grub / libvirt; the built-in
    # qemu-traditional recipe is built inside xen's tree, so xen takes it
    assert comps["xen"]["deps"] == ["ovmf", "qemu-traditional", "seabios"]
    assert comps["xen"]["options"] == {"qemu_traditional": True}
    for name in ("qemu-xen", "grub", "libvirt"):
        assert comps[name]["deps"] == ["xen"]
    for name in ("seabios", "ovmf", "linux", "qemu-traditional"):
        assert "deps" not in comps[name]
    assert _toml(tmp_path)["profiles"]["default"]["components"] == STACK

    # what could not be mapped: at the top of the manifest and on stderr
    header = _header(tmp_path)
    for needle in ('MAKE="make -j2"', "raisin realize -j 2", 'DESTDIR="dist"', "ENABLED_TESTS="):
        assert needle in header
        assert needle in r.err
    assert "PREFIX" not in r.err  # /usr is what the recipes use
    assert "wrote raisin.toml (8 components" in r.err


def _mirror(
    root: Path, name: str, *, branch: str | None = None, tag: str | None = None
) -> tuple[str, str]:
    repo = root / name
    rev = make_repo(repo, {"README": f"{name}\n", "Makefile": "all:\n\ttrue\n"}, tag=tag)
    if branch:
        git(repo, "branch", branch)
    return f"file://{repo}", rev


def test_imported_manifest_locks_against_local_mirrors(tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    overrides: list[str] = []
    revs: dict[str, str] = {}
    layout = {  # what the XEN_RELEASE=4.6 preset (and LINUX_REVISION=v4.4) ask of each repository
        "SEABIOS": ("seabios", {"tag": "rel-1.8.2"}),
        "OVMF": ("ovmf", {}),
        "XEN": ("xen", {"branch": "stable-4.6"}),
        "QEMU": ("qemu-xen", {"branch": "stable-4.6"}),
        "QEMU_TRADITIONAL": ("qemu-xen-traditional", {"branch": "stable-4.6"}),
        "GRUB": ("grub", {"branch": "master"}),
        "LIBVIRT": ("libvirt", {"branch": "master"}),
        "LINUX": ("linux", {"tag": "v4.4"}),
    }
    for var, (repo, kw) in layout.items():
        url, rev = _mirror(mirrors, repo, **kw)  # type: ignore[arg-type]
        overrides.append(f'{var}_URL="{url}"')
        revs[var] = rev
    # the 4.6 preset pins OVMF to an upstream commit a test mirror cannot have
    overrides.append(f"OVMF_REVISION={revs['OVMF']}")
    proj = tmp_path / "proj"
    proj.mkdir()
    r = _import(proj, LEGACY.read_text() + "\n# local mirrors\n" + "\n".join(overrides) + "\n")
    assert r.code == 0, r

    locked = raisin("lock", cwd=proj)
    assert locked.code == 0, locked
    shown = raisin("show", "--json", cwd=proj)
    assert shown.code == 0, shown
    comps = json.loads(shown.out)["components"]
    assert sorted(comps) == sorted(STACK)
    assert comps["xen"]["rev"] == revs["XEN"] and comps["ovmf"]["rev"] == revs["OVMF"]
    assert comps["linux"]["rev"] == revs["LINUX"]
    assert sorted(comps["xen"]["deps"]) == ["ovmf", "qemu-traditional", "seabios"]
    assert comps["libvirt"]["deps"] == ["xen"]
    assert raisin("lock", "--check", cwd=proj).code == 0


# ------------------------------------------------------------------ choosing components


def test_components_env_overrides_and_required_xen_is_added(tmp_path: Path) -> None:
    r = _import(tmp_path, LEGACY.read_text(), env=_env(COMPONENTS="qemu seabios"))
    assert r.code == 0, r
    comps = _toml(tmp_path)["components"]
    assert list(comps) == ["seabios", "xen", "qemu-xen"]
    assert comps["xen"]["deps"] == ["seabios"]  # ovmf not enabled: no edge
    assert "options" not in comps["xen"]
    assert "COMPONENTS from the environment" in r.err
    assert "added xen: qemu-xen builds against it" in r.err
    # the overrides for components left out are reported, not silently dropped
    assert "LINUX_REVISION is set but linux is not enabled" in r.err


def test_unknown_component_is_reported_and_left_out(tmp_path: Path) -> None:
    r = _import(tmp_path, 'ENABLED_COMPONENTS="xen rumprun"\n')
    assert r.code == 0, r
    assert list(_toml(tmp_path)["components"]) == ["xen"]
    assert "component 'rumprun'" in r.err and "component 'rumprun'" in _header(tmp_path)


def test_no_component_at_all_is_bad_input(tmp_path: Path) -> None:
    r = _import(tmp_path, 'ENABLED_COMPONENTS="rumprun"\n')
    assert r.code == 2
    assert "config" in r.err and "no components to import" in r.err
    assert not (tmp_path / "raisin.toml").exists()


# ------------------------------------------------------------------ URLs and revisions


def test_git_transport_picks_the_url_set(tmp_path: Path) -> None:
    r = _import(
        tmp_path,
        'ENABLED_COMPONENTS="xen qemu_traditional grub libvirt linux"\nGIT_TRANSPORT=git\n',
    )
    assert r.code == 0, r
    comps = _toml(tmp_path)["components"]
    assert comps["xen"]["source"]["git"] == "git://xenbits.xen.org/xen.git"
    assert (
        comps["qemu-traditional"]["source"]["git"]
        == "git://xenbits.xen.org/qemu-xen-traditional.git"
    )
    assert comps["grub"]["source"]["git"] == "git://git.savannah.gnu.org/grub.git"
    assert comps["libvirt"]["source"]["git"] == "git://libvirt.org/libvirt.git"
    assert comps["linux"]["source"]["git"].startswith("git://git.kernel.org/")
    # defconfig defaults: XEN_RELEASE=master
    assert {c["source"]["ref"] for c in comps.values()} == {"master"}
    # qemu-traditional with a Xen that dropped it
    assert "Xen dropped it after 4.18" in r.err


@pytest.mark.parametrize(
    ("release", "xen", "seabios"),
    [
        ("4.5", "stable-4.5", "rel-1.7.5"),
        ("4.7", "stable-4.7", "rel-1.9.2"),
        ("master", "master", "master"),
    ],
)
def test_release_presets(tmp_path: Path, release: str, xen: str, seabios: str) -> None:
    r = _import(tmp_path, f'ENABLED_COMPONENTS="seabios xen"\nXEN_RELEASE={release}\n')
    assert r.code == 0, r
    comps = _toml(tmp_path)["components"]
    assert comps["xen"]["source"]["ref"] == xen and comps["seabios"]["source"]["ref"] == seabios


def test_unknown_release_is_reported(tmp_path: Path) -> None:
    r = _import(tmp_path, 'ENABLED_COMPONENTS="seabios xen"\nXEN_RELEASE=4.9\n')
    assert r.code == 0, r
    comps = _toml(tmp_path)["components"]
    assert comps["xen"]["source"]["ref"] == "stable-4.9"
    assert 'XEN_RELEASE="4.9": not one of Raisin\'s presets' in r.err
    assert "Config.mk" in _header(tmp_path)


# ------------------------------------------------------------------ the shell subset


def test_shell_quoting_references_and_comments(tmp_path: Path) -> None:
    config = r"""
# comment
BASE=https://mirror.example.org/xen   # trailing comment
export XEN_URL="${BASE}/xen.git"
SEABIOS_URL='${BASE} stays literal'"/x"
QEMU_URL=$BASE/qemu\ xen.git QEMU_REVISION="origin/my \"quoted\" branch"
OVMF_URL="${OVMF_MIRROR:-https://default.example.org/ovmf.git}"
GRUB_URL=https://a.example.org/\
grub.git
LIBVIRT_REVISION=v1
LIBVIRT_REVISION+=.2
ENABLED_COMPONENTS="seabios ovmf xen qemu grub libvirt"
"""
    r = _import(tmp_path, config)
    assert r.code == 0, r
    comps = _toml(tmp_path)["components"]
    assert comps["xen"]["source"]["git"] == "https://mirror.example.org/xen/xen.git"
    assert comps["seabios"]["source"]["git"] == "${BASE} stays literal/x"
    assert comps["qemu-xen"]["source"] == {
        "git": "https://mirror.example.org/xen/qemu xen.git",
        "ref": 'my "quoted" branch',
    }
    assert comps["ovmf"]["source"]["git"] == "https://default.example.org/ovmf.git"
    assert comps["grub"]["source"]["git"] == "https://a.example.org/grub.git"
    assert comps["libvirt"]["source"]["ref"] == "v1.2"
    assert "BASE" not in r.err  # a helper variable other settings use is not "unmapped"


def test_the_config_is_never_executed(tmp_path: Path) -> None:
    canary = tmp_path / "executed"  # where `touch executed` would land: the import runs in tmp_path
    config = """
ENABLED_COMPONENTS="xen"
touch executed
XEN_REVISION=$(touch executed; echo master)
XEN_URL=`touch executed`
source ./other-config
if true; then touch executed; fi
EXTRA=1 touch executed
"""
    r = _import(tmp_path, config)
    assert r.code == 0, r
    assert not canary.exists()
    comps = _toml(tmp_path)["components"]
    assert comps["xen"]["source"] == {"git": "git://xenbits.xen.org/xen.git", "ref": "master"}
    header = _header(tmp_path)
    assert "line 3: `touch executed`: not a variable assignment; not run" in header
    assert "line 4: XEN_REVISION: command substitution $(…) is not run" in header
    assert "line 5: XEN_URL: command substitution `…` is not run" in header
    assert "line 6: `source ./other-config`" in header
    assert "line 8:" in header and "a command with variables for it" in header


def test_parse_shell_values() -> None:
    sh = parse_shell(
        "A=1 B=\"$A$A\" C=${B:+set} D=${UNSET-dflt} E=${UNSET:=x} F=$E\nreadonly -x G='g'\nexport A\n"
    )
    assert {k: sh.variables[k] for k in "ABCDEFG"} == {
        "A": "1",
        "B": "11",
        "C": "set",
        "D": "dflt",
        "E": "x",
        "F": "x",
        "G": "g",
    }
    assert sh.problems == []
    sh = parse_shell("X=$NOPE/y\nARR=(a b)\n")
    assert sh.variables["X"] == "/y"
    assert any("uses $NOPE" in p for p in sh.problems)
    assert any("ARR: arrays are not supported" in p for p in sh.problems)


def test_prefix_and_unknown_settings_are_reported(tmp_path: Path) -> None:
    r = _import(tmp_path, "ENABLED_COMPONENTS=xen\nPREFIX=/opt/xen\nMAKE=gmake\nNO_DEPS=1\n")
    assert r.code == 0, r
    assert 'PREFIX="/opt/xen": the built-in recipes install with PREFIX=/usr' in r.err
    assert 'MAKE="gmake"' in r.err
    assert "line 4: NO_DEPS: not a setting import-config knows" in r.err


# ------------------------------------------------------------------ writing


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "raisin.toml").write_text("# mine\n")
    r = _import(tmp_path, 'ENABLED_COMPONENTS="xen"\n')
    assert r.code == 2
    assert "raisin.toml: already exists; not overwriting (use --force)" in r.err
    assert (tmp_path / "raisin.toml").read_text() == "# mine\n"
    r = _import(tmp_path, 'ENABLED_COMPONENTS="xen"\n', "--force")
    assert r.code == 0, r
    assert "[components.xen]" in (tmp_path / "raisin.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config",
        "raisin.toml",
    ]  # no temp file left


def test_output_option_and_directory(tmp_path: Path) -> None:
    (tmp_path / "config").write_text('ENABLED_COMPONENTS="seabios"\n')
    r = raisin("import-config", "config", "--output", "out/stack.toml", cwd=tmp_path, env=_env())
    assert r.code == 0, r
    assert _toml(tmp_path, "out/stack.toml")["components"]["seabios"]["recipe"] == "seabios"
    (tmp_path / "proj").mkdir()
    r = raisin("-C", "proj", "import-config", "config", cwd=tmp_path, env=_env())
    assert r.code == 0, r
    assert (tmp_path / "proj" / "raisin.toml").exists()


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    r = raisin("import-config", "nope.config", cwd=tmp_path, env=_env())
    assert r.code == 2
    assert "nope.config: cannot read" in r.err and "Traceback" not in r.err
