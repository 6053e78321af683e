"""The repo-root Xen stack manifest, locked and realized against fake upstream mirrors.

``raisin.toml`` at the repository root names the real upstream https URLs.
Here a ``GIT_CONFIG_GLOBAL`` file rewrites ``https://`` to a directory of tiny
fake repositories laid out like those URLs (``mirrors/xenbits.xen.org/
git-http/xen.git`` ...), so the manifest is used unchanged and any URL that is
not mirrored fails instead of reaching the network. Each fake implements just
the interface its built-in recipe calls (configure, make targets, build.sh,
grub-mkimage, scripts/config, a meson project) and records what it was given,
so the realized outputs show the wiring between the components. The fake
Xen's Config.mk is laid out like the real one (the "legacy options" block
that assigns ``$(SEABIOS_UPSTREAM_TAG)`` comes first), and every companion has
a newer decoy tag on its default branch, so a follower that took anything but
the Config.mk revision is caught. The real build is the Debian one
(``test_real_stack.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import git, raisin

ROOT = Path(__file__).resolve().parent.parent
REPO_MANIFEST = ROOT / "raisin.toml"
VSTORE = "/raisin/store"

UPSTREAM = {
    "xen": "xenbits.xen.org/git-http/xen.git",
    "seabios": "xenbits.xen.org/git-http/seabios.git",
    "ovmf": "xenbits.xen.org/git-http/ovmf.git",
    "qemu-xen": "xenbits.xen.org/git-http/qemu-xen.git",
    "qemu-traditional": "xenbits.xen.org/git-http/qemu-xen-traditional.git",
    "grub": "git.savannah.gnu.org/git/grub.git",
    "libvirt": "gitlab.com/libvirt/libvirt.git",
    "linux": "git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git",
}
HAVE_PKG_CONFIG = shutil.which("pkg-config") is not None
HAVE_MESON = HAVE_PKG_CONFIG and all(shutil.which(t) for t in ("meson", "ninja"))
NO_MESON = "libvirt's recipe needs meson, ninja and pkg-config on the host (Debian: apt-get install meson pkg-config)"

# ---------------------------------------------------------------- the fakes

XEN_CONFIGURE = r"""#!/bin/sh
# Fake Xen configure: records its arguments; the firmware it is given must exist.
set -eu
: > config.args
for a in "$@"; do
  printf '%s\n' "$a" >> config.args
  case $a in
    --with-system-seabios=*|--with-system-ovmf=*)
      [ -f "${a#*=}" ] || { echo "configure: ${a#*=}: no such file" >&2; exit 1; } ;;
  esac
done
"""

XEN_MAKEFILE = """\
# Fake Xen top-level Makefile: dist-xen and dist-tools stage into dist/install.
D := dist/install
V := $(shell cat VERSION)
R := $(D)/usr/share/raisin-fake

dist-xen:
\tmkdir -p $(D)/boot
\tprintf 'Xen version %s (%s@%s) %s %s on %s\\n' '$(V)' "$$XEN_WHOAMI" "$$XEN_DOMAIN" "$$XEN_BUILD_DATE" "$$XEN_BUILD_TIME" "$$XEN_BUILD_HOST" | gzip -n9 > $(D)/boot/xen.gz

dist-tools: config.args
\tmkdir -p $(D)/usr/sbin $(D)/usr/include $(D)/usr/lib/pkgconfig $(R)
\tprintf '#!/bin/sh\\necho "xl (fake Xen %s)"\\n' '$(V)' > $(D)/usr/sbin/xl
\tprintf '#!/bin/sh\\necho xenstored\\n' > $(D)/usr/sbin/xenstored
\tchmod 755 $(D)/usr/sbin/xl $(D)/usr/sbin/xenstored
\tprintf '#define XENCTRL_FAKE_VERSION "%s"\\n' '$(V)' > $(D)/usr/include/xenctrl.h
\tprintf '#define LIBXL_FAKE_VERSION "%s"\\n' '$(V)' > $(D)/usr/include/libxl.h
\tfor pc in xencontrol xenlight; do printf 'prefix=/usr\\nincludedir=$${prefix}/include\\nlibdir=$${prefix}/lib\\n\\nName: %s\\nDescription: fake\\nVersion: %s\\nCflags: -I$${includedir}\\nLibs: -L$${libdir}\\n' $$pc '$(V)' > $(D)/usr/lib/pkgconfig/$$pc.pc; done
\tcp config.args $(R)/configure.args
\tenv | grep -E '^(XEN_[A-Z_]*|QEMU_TRADITIONAL_LOC|SOURCE_DATE_EPOCH)=' | sort > $(R)/build.env
\techo '$(PYTHON)' > $(R)/python
\tif grep -qx -- --enable-qemu-traditional config.args; then test -x "$$QEMU_TRADITIONAL_LOC/xen-setup" && ls "$$QEMU_TRADITIONAL_LOC" > $(R)/qemu-traditional.files; fi
"""

SEABIOS_MAKEFILE = """\
# Fake SeaBIOS Makefile: make defconfig; make [EXTRAVERSION=...]
EXTRAVERSION ?=

all: .config
\tmkdir -p out
\tprintf 'SeaBIOS (version %s%s)\\n' "$$(cat VERSION)" '$(EXTRAVERSION)' > out/bios.bin

defconfig:
\tprintf 'CONFIG_QEMU=y\\nCONFIG_XEN=y\\n' > .config
"""

OVMF_BASETOOLS_MAKEFILE = """\
# Fake EDK II BaseTools
all:
\tmkdir -p Source/C/bin
\tprintf '#!/bin/sh\\n' > Source/C/bin/GenFw
\tchmod 755 Source/C/bin/GenFw
"""

OVMF_EDKSETUP = """\
# Fake edksetup.sh (sourced): points EDK_TOOLS_PATH at BaseTools, like the real one.
EDK_TOOLS_PATH="$WORKSPACE/BaseTools"
CONF_PATH="$WORKSPACE/Conf"
export EDK_TOOLS_PATH CONF_PATH
mkdir -p "$CONF_PATH"
"""

OVMF_BUILD_SH = r"""#!/bin/sh
# Fake OvmfPkg/build.sh: -a ARCH -b TARGET -n JOBS [build options]
set -eu
[ -x "$EDK_TOOLS_PATH/Source/C/bin/GenFw" ] || { echo "build.sh: BaseTools are not built" >&2; exit 1; }
args="$*"
arch= target=
while [ $# -gt 0 ]; do
  case $1 in
    -a) arch=$2; shift 2 ;;
    -b) target=$2; shift 2 ;;
    -n) shift 2 ;;
    *) shift ;;
  esac
done
[ "$arch" = X64 ] || { echo "build.sh: unexpected arch $arch" >&2; exit 1; }
fv="$WORKSPACE/Build/OvmfX64/${target}_GCC5/FV"
mkdir -p "$fv"
printf 'OVMF %s (%s)\n' "$(cat OvmfPkg/VERSION)" "$args" > "$fv/OVMF.fd"
"""

QEMU_CONFIGURE = r"""#!/bin/sh
# Fake qemu-xen configure: records its arguments; Xen's headers must be where it is told.
set -eu
: > config.args
bindir= datadir=
for a in "$@"; do
  printf '%s\n' "$a" >> config.args
  case $a in
    --bindir=*) bindir=${a#*=} ;;
    --datadir=*) datadir=${a#*=} ;;
    --extra-cflags=*)
      for w in ${a#*=}; do
        case $w in -I*) [ -f "${w#-I}/xenctrl.h" ] || { echo "configure: no xenctrl.h in ${w#-I}" >&2; exit 1; } ;; esac
      done ;;
  esac
done
if command -v pkg-config >/dev/null; then pkg-config --cflags xencontrol; else echo no-pkg-config; fi > pkg-config.cflags
printf 'bindir=%s\ndatadir=%s\n' "$bindir" "$datadir" > config.mak
"""

QEMU_MAKEFILE = """\
# Fake qemu-xen Makefile
include config.mak

all:
\tprintf '#!/bin/sh\\necho "QEMU emulator version %s (qemu-xen)"\\n' "$$(cat VERSION)" > qemu-system-i386
\tchmod 755 qemu-system-i386

install: all
\tinstall -Dm755 qemu-system-i386 $(DESTDIR)$(bindir)/qemu-system-i386
\tinstall -Dm644 config.args $(DESTDIR)$(datadir)/configure.args
\tinstall -Dm644 pkg-config.cflags $(DESTDIR)$(datadir)/pkg-config.cflags
"""

GRUB_AUTOGEN = """#!/bin/sh
# Fake autogen.sh: generates ./configure
set -eu
cp configure.fake configure
chmod 755 configure
"""

GRUB_CONFIGURE = r"""#!/bin/sh
# Fake GRUB configure, run from a build directory: --target=T --with-platform=xen|xen_pvh
set -eu
srcdir=$(cd "$(dirname "$0")" && pwd)
target= platform=
for a in "$@"; do
  case $a in
    --target=*) target=${a#*=} ;;
    --with-platform=*) platform=${a#*=} ;;
  esac
done
case $platform in xen|xen_pvh) ;; *) echo "configure: unexpected platform '$platform'" >&2; exit 1 ;; esac
printf '%s\n' "$@" > config.args
sed -e "s|@target@|$target-$platform|g" -e "s|@srcdir@|$srcdir|g" "$srcdir/Makefile.in" > Makefile
"""

GRUB_MAKEFILE_IN = """\
# Fake GRUB Makefile (configured for @target@)
all:
\tmkdir -p grub-core
\tfor m in normal memdisk tar search configfile; do echo "$$m.mod for @target@" > grub-core/$$m.mod; done
\tcp @srcdir@/grub-mkimage.in grub-mkimage
\tchmod 755 grub-mkimage
"""

GRUB_MKIMAGE = r"""#!/bin/sh
# Fake grub-mkimage: writes down what it would pack.
set -eu
fmt= dir= cfg= mem= out=
while [ $# -gt 0 ]; do
  case $1 in
    -O) fmt=$2; shift 2 ;;
    -d) dir=$2; shift 2 ;;
    -c) cfg=$2; shift 2 ;;
    -m) mem=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    -*) echo "grub-mkimage: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ -d "$dir" ]
{
  echo "format: $fmt"
  echo "modules:" $(for m in "$@"; do basename "$m" .mod; done)
  echo "bootstrap: $(cat "$cfg")"
  echo "memdisk:" $(tar -tf "$mem")
  tar -xOf "$mem" grub.cfg
} > "$out"
"""

LINUX_MAKEFILE = """\
# Fake Linux Makefile
VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 58
KERNELRELEASE = $(VERSION).$(PATCHLEVEL).$(SUBLEVEL)

kernelrelease:
\t@echo $(KERNELRELEASE)

defconfig:
\tprintf 'CONFIG_64BIT=y\\nCONFIG_X86_64=y\\n# CONFIG_XEN is not set\\n' > .config

olddefconfig: .config
\techo '# olddefconfig' >> .config

bzImage: .config
\tgrep -qx CONFIG_XEN_DOM0=y .config
\tmkdir -p arch/x86/boot
\tprintf 'Linux version %s (%s@%s) #1 SMP %s\\n' '$(KERNELRELEASE)' "$$KBUILD_BUILD_USER" "$$KBUILD_BUILD_HOST" "$$KBUILD_BUILD_TIMESTAMP" > arch/x86/boot/bzImage

modules: .config
\tmkdir -p drivers/xen
\techo 'xen-blkback for $(KERNELRELEASE)' > drivers/xen/xen-blkback.ko

modules_install:
\ttest '$(DEPMOD)' = true
\tinstall -Dm644 drivers/xen/xen-blkback.ko $(INSTALL_MOD_PATH)/lib/modules/$(KERNELRELEASE)/kernel/drivers/xen/xen-blkback.ko
"""

LINUX_SCRIPTS_CONFIG = r"""#!/bin/sh
# Fake scripts/config: --enable|--disable|--module OPTION ...
set -eu
while [ $# -gt 0 ]; do
  case $1 in
    --enable|-e) v=y ;;
    --disable|-d) v=n ;;
    --module|-m) v=m ;;
    *) echo "scripts/config: unknown command $1" >&2; exit 1 ;;
  esac
  o=${2#CONFIG_}
  grep -v -e "^CONFIG_$o=" -e "^# CONFIG_$o is not set" .config > .config.tmp || true
  if [ $v = n ]; then echo "# CONFIG_$o is not set"; else echo "CONFIG_$o=$v"; fi >> .config.tmp
  mv .config.tmp .config
  shift 2
done
"""

LIBVIRT_DRIVERS = [
    "libxl",
    "libvirtd",
    "qemu",
    "lxc",
    "vbox",
    "esx",
    "vmware",
    "openvz",
    "ch",
    "bhyve",
]
LIBVIRT_OPTIONS = [f"driver_{d}" for d in LIBVIRT_DRIVERS] + [
    "driver_remote",
    "yajl",
    "docs",
    "tests",
]
LIBVIRT_MESON = """\
project('libvirt', 'c', version: '11.9.0', meson_version: '>= 0.56.0')
xenlight = dependency('xenlight')
conf = configuration_data()
foreach opt : {}
  conf.set(opt, get_option(opt).enabled() ? 'enabled' : 'disabled')
endforeach
configure_file(input: 'options.txt.in', output: 'options.txt', configuration: conf,
               install: true, install_dir: get_option('datadir') / 'libvirt')
executable('libvirtd', 'libvirtd.c', dependencies: xenlight,
           install: true, install_dir: get_option('sbindir'))
""".format(json.dumps(LIBVIRT_OPTIONS).replace('"', "'"))
LIBVIRT_MESON_OPTIONS = "".join(
    f"option('{o}', type: 'feature', value: 'auto')\n" for o in LIBVIRT_OPTIONS
) + (
    "option('init_script', type: 'combo', choices: ['systemd', 'openrc', 'check', 'none'], value: 'check')\n"
    "option('runstatedir', type: 'string', value: '')\n"
)
LIBVIRT_OPTIONS_IN = "".join(f"{o}=@{o}@\n" for o in LIBVIRT_OPTIONS)
LIBVIRTD_C = """\
#include <stdio.h>
#include <libxl.h>
int main(void) { puts("libvirtd (fake) with libxl " LIBXL_FAKE_VERSION); return 0; }
"""


def config_mk(*, qemu: str, seabios: str, ovmf: str, minios: str, trad: str | None = None) -> str:
    """A Config.mk laid out like Xen's: the legacy-options block assigns first."""
    legacy_trad = (
        "ifneq (,$(QEMU_TAG))\nQEMU_TRADITIONAL_REVISION ?= $(QEMU_TAG)\nendif\n" if trad else ""
    )
    text = f"""\
# Fake Xen Config.mk (the companion-revision part of the real one)
XEN_EXTFILES_URL ?= https://xenbits.xen.org/xen-extfiles

# Where to look for inlined subtrees (for example, from a tarball)
QEMU_UPSTREAM_INTREE ?= $(XEN_ROOT)/tools/qemu-xen

# Handle legacy options
ifneq (,$(SEABIOS_UPSTREAM_TAG))
SEABIOS_UPSTREAM_REVISION ?= $(SEABIOS_UPSTREAM_TAG)
endif
{legacy_trad}
OVMF_UPSTREAM_URL ?= https://xenbits.xen.org/git-http/ovmf.git
OVMF_UPSTREAM_REVISION ?= {ovmf}

QEMU_UPSTREAM_URL ?= https://xenbits.xen.org/git-http/qemu-xen.git
QEMU_UPSTREAM_REVISION ?= {qemu}

MINIOS_UPSTREAM_URL ?= https://xenbits.xen.org/git-http/mini-os.git
MINIOS_UPSTREAM_REVISION ?= {minios}

SEABIOS_UPSTREAM_URL ?= https://xenbits.xen.org/git-http/seabios.git
SEABIOS_UPSTREAM_REVISION ?= {seabios}

ETHERBOOT_NICS ?= rtl8139 8086100e
"""
    if trad:
        text += f"""
QEMU_TRADITIONAL_URL ?= https://xenbits.xen.org/git-http/qemu-xen-traditional.git
QEMU_TRADITIONAL_REVISION ?= {trad}
# Wed Jul 15 10:01:40 2020 +0100
# qemu-trad: remove Xen path dependencies
"""
    return text


# ---------------------------------------------------------------- the mirrors


def commit(repo: Path, files: dict[str, str], *, date: int, tags: tuple[str, ...] = ()) -> str:
    """Commit ``files`` (scripts starting with #! executable); annotated ``tags`` on it."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "master")
    for name, content in files.items():
        f = repo / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
        f.chmod(0o755 if content.startswith("#!") else 0o644)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"commit at {date}", date=date)
    for t in tags:
        git(repo, "tag", "-a", t, "-m", f"release {t}", date=date)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Mirrors:
    root: Path
    gitconfig: Path
    rev: dict[tuple[str, str], str] = field(default_factory=dict)  # (component, tag) -> commit
    date: dict[tuple[str, str], int] = field(default_factory=dict)
    ovmf: dict[str, str] = field(
        default_factory=dict
    )  # xen release -> the ovmf commit its Config.mk names

    @property
    def env(self) -> dict[str, str]:
        return {
            "GIT_CONFIG_GLOBAL": str(self.gitconfig),
            "RAISIN_SKIP_BUILDDEP_CHECK": "1",  # the fakes need none of the real packages
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        }

    def repo(self, name: str) -> Path:
        return self.root / UPSTREAM[name]

    def add(self, name: str, files: dict[str, str], date: int, *tags: str) -> str:
        sha = commit(self.repo(name), files, date=date, tags=tags)
        for t in tags:
            self.rev[(name, t)] = sha
            self.date[(name, t)] = date
        return sha


T0 = 1_700_000_000
DAY = 86_400


def build_mirrors(base: Path) -> Mirrors:
    root = base / "mirrors"
    gitconfig = base / "gitconfig"
    gitconfig.write_text(f'[url "file://{root}/"]\n\tinsteadOf = https://\n')
    m = Mirrors(root, gitconfig)

    # seabios: the releases Config.mk names, then a newer decoy on master
    sb = {"Makefile": SEABIOS_MAKEFILE}
    for i, v in enumerate(["1.16.0", "1.16.2", "1.16.3", "1.17.0"]):
        m.add("seabios", {**sb, "VERSION": v + "\n"}, T0 + i * DAY, f"rel-{v}")
        sb = {}

    # ovmf: pinned by commit id in Config.mk; a newer decoy tag on master
    ov = {
        "BaseTools/Makefile": OVMF_BASETOOLS_MAKEFILE,
        "edksetup.sh": OVMF_EDKSETUP,
        "OvmfPkg/build.sh": OVMF_BUILD_SH,
    }
    for i, rel in enumerate(["4.17", "4.20", "4.21"]):
        m.ovmf[rel] = commit(
            m.repo("ovmf"), {**ov, "OvmfPkg/VERSION": f"for-xen-{rel}\n"}, date=T0 + i * DAY
        )
        ov = {}
    m.add("ovmf", {"OvmfPkg/VERSION": "edk2-stable202511\n"}, T0 + 9 * DAY, "edk2-stable202511")

    # qemu-xen: an old release (for the compat-flags variant), the ones Config.mk names, a decoy
    qx = {"configure": QEMU_CONFIGURE, "Makefile": QEMU_MAKEFILE}
    for i, v in enumerate(["4.6.0", "4.17.0", "4.20.0", "4.21.0", "4.22.0"]):
        m.add("qemu-xen", {**qx, "VERSION": v + "\n"}, T0 + i * DAY, f"qemu-xen-{v}")
        qx = {}

    # qemu-xen-traditional: the 4.17 tag, then a decoy
    m.add("qemu-traditional", {"xen-setup": "#!/bin/sh\n", "VERSION": "4.17.0\n"}, T0, "xen-4.17.0")
    m.add("qemu-traditional", {"VERSION": "4.18.0\n"}, T0 + DAY, "xen-4.18.0")

    # xen: three releases whose Config.mk name different companions
    xen = {
        "configure": XEN_CONFIGURE,
        "Makefile": XEN_MAKEFILE,
        "config.guess": "#!/bin/sh\necho x86_64-pc-linux-gnu\n",
        "config.sub": '#!/bin/sh\necho "$1"\n',
    }
    releases = [
        ("4.17.0", {"qemu": "qemu-xen-4.17.0", "seabios": "rel-1.16.0", "trad": "xen-4.17.0"}),
        ("4.20.0", {"qemu": "qemu-xen-4.20.0", "seabios": "rel-1.16.2"}),
        ("4.21.0", {"qemu": "qemu-xen-4.21.0", "seabios": "rel-1.16.3"}),
    ]
    for i, (v, names) in enumerate(releases):
        rel = v.rsplit(".", 1)[0]
        cfg = config_mk(ovmf=m.ovmf[rel], minios=f"xen-RELEASE-{v}", **names)  # type: ignore[arg-type]
        m.add(
            "xen",
            {**xen, "VERSION": v + "\n", "Config.mk": cfg},
            T0 + (10 + i) * DAY,
            f"RELEASE-{v}",
        )
        xen = {}
    m.add(
        "xen",
        {
            "VERSION": "4.22-unstable\n",
            "Config.mk": config_mk(
                qemu="master",
                seabios="rel-1.17.0",
                ovmf=m.rev[("ovmf", "edk2-stable202511")],
                minios="master",
            ),
        },
        T0 + 20 * DAY,
    )

    # grub, linux, libvirt: pinned by the manifest; a newer commit after each tag
    m.add(
        "grub",
        {
            "autogen.sh": GRUB_AUTOGEN,
            "configure.fake": GRUB_CONFIGURE,
            "Makefile.in": GRUB_MAKEFILE_IN,
            "grub-mkimage.in": GRUB_MKIMAGE,
        },
        T0 + 30 * DAY,
        "grub-2.12",
    )
    m.add("grub", {"NEWS": "2.14~rc1\n"}, T0 + 31 * DAY, "grub-2.14-rc1")
    m.add(
        "linux",
        {"Makefile": LINUX_MAKEFILE, "scripts/config": LINUX_SCRIPTS_CONFIG},
        T0 + 32 * DAY,
        "v6.12.58",
    )
    m.add("linux", {"README": "next\n"}, T0 + 33 * DAY, "v6.12.59")
    m.add(
        "libvirt",
        {
            "meson.build": LIBVIRT_MESON,
            "meson_options.txt": LIBVIRT_MESON_OPTIONS,
            "options.txt.in": LIBVIRT_OPTIONS_IN,
            "libvirtd.c": LIBVIRTD_C,
        },
        T0 + 34 * DAY,
        "v11.9.0",
    )
    m.add("libvirt", {"NEWS.rst": "v11.10.0\n"}, T0 + 35 * DAY, "v11.10.0")
    return m


# ---------------------------------------------------------------- helpers


def project(base: Path, text: str | None = None) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "raisin.toml").write_text(REPO_MANIFEST.read_text() if text is None else text)
    return base


def read_lock(proj: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((proj / "raisin.lock").read_text())["components"]


def outs(proj: Path, env: dict[str, str], *extra: str) -> dict[str, Path]:
    r = raisin(*extra, "show", "--json", cwd=proj, env=env)
    assert r.code == 0, r
    return {n: Path(c["out"]) for n, c in json.loads(r.out)["components"].items()}


def virtual(out: Path) -> str:
    """The path a build sees a store path at."""
    return f"{VSTORE}/{out.name}"


def date_u(epoch: int, fmt: str | None = None) -> str:
    argv = ["date", "-u", "-d", f"@{epoch}"] + ([fmt] if fmt else [])
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, env={"LC_ALL": "C", "TZ": "UTC"}
    ).stdout.strip()


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Mirrors:
    return build_mirrors(tmp_path_factory.mktemp("upstream"))


@pytest.fixture(scope="module")
def stack(mirrors: Mirrors, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo-root raisin.toml, locked against the mirrors."""
    proj = project(tmp_path_factory.mktemp("stack") / "proj")
    r = raisin("lock", cwd=proj, env=mirrors.env)
    assert r.code == 0, r
    return proj


@pytest.fixture(scope="module")
def built(stack: Path, mirrors: Mirrors) -> dict[str, Path]:
    """The stack realized (libvirt only when meson is there)."""
    names = sorted(read_lock(stack)) if HAVE_MESON else sorted(set(read_lock(stack)) - {"libvirt"})
    r = raisin("realize", *names, cwd=stack, env=mirrors.env)
    assert r.code == 0, r
    return outs(stack, mirrors.env)


def args_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


# ---------------------------------------------------------------- the manifest, offline


def test_manifest_names_the_mirrored_upstreams() -> None:
    """The fake mirrors are laid out exactly like the URLs the repo-root manifest names."""
    comps = tomllib.loads(REPO_MANIFEST.read_text())["components"]
    assert {n: c["source"]["git"] for n, c in comps.items()} == {
        n: f"https://{UPSTREAM[n]}" for n in comps
    }
    assert {n for n, c in comps.items() if c.get("follows") == "xen"} == {
        "seabios",
        "ovmf",
        "qemu-xen",
    }


def test_repo_manifest_validates_and_shows_the_stack_offline(tmp_path: Path) -> None:
    proj = project(tmp_path / "proj")
    # Any git or HTTP access would fail: unmirrored rewrite target, dead proxies.
    poison = tmp_path / "gitconfig"
    poison.write_text(f'[url "file://{tmp_path}/nowhere/"]\n\tinsteadOf = https://\n')
    env = {
        "GIT_CONFIG_GLOBAL": str(poison),
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }
    names = {"xen", "seabios", "ovmf", "qemu-xen", "grub", "libvirt", "linux"}

    r = raisin("show", cwd=proj, env=env)
    assert r.code == 0, r
    shown = set(re.findall(r"^(\S+) ", r.out, re.MULTILINE))
    assert shown == names, r.out
    for follower in ("seabios", "ovmf", "qemu-xen"):
        assert re.search(
            rf"^{follower} .*\n  source   git https://\S+ follows xen$", r.out, re.MULTILINE
        ), r.out
    assert "RELEASE-4.21.0" in r.out

    r = raisin("show", "--json", cwd=proj, env=env)
    assert r.code == 0, r
    comps = json.loads(r.out)["components"]
    assert set(comps) == names
    assert comps["xen"]["deps"] == ["ovmf", "seabios"] and comps["qemu-xen"]["deps"] == ["xen"]
    assert all(c["rev"] is None and not c["built"] for c in comps.values())

    r = raisin("show", "qemu-xen", cwd=proj, env=env)
    assert r.code == 0 and r.out.startswith("qemu-xen "), r

    r = raisin("graph", cwd=proj, env=env)
    assert r.code == 0, r
    assert set(re.findall(r'^\s*"([^"]+)" \[label', r.out, re.MULTILINE)) == names
    edges = set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";', r.out, re.MULTILINE))
    assert edges == {
        ("xen", "seabios"),
        ("xen", "ovmf"),
        ("qemu-xen", "xen"),
        ("grub", "xen"),
        ("libvirt", "xen"),
    }

    r = raisin("graph", "--format", "json", cwd=proj, env=env)
    assert r.code == 0, r
    data = json.loads(r.out)
    assert {n["id"] for n in data["nodes"]} == names
    assert len(data["edges"]) == 5

    # show and graph wrote nothing: no lock, no store
    assert sorted(p.name for p in proj.iterdir()) == ["raisin.toml"]


# ---------------------------------------------------------------- lock


def test_stack_locks_against_the_mirrors(stack: Path, mirrors: Mirrors) -> None:
    lock = read_lock(stack)
    want = {  # component -> (ref, the mirror tag whose commit it must be)
        "xen": ("RELEASE-4.21.0", "RELEASE-4.21.0"),
        "seabios": ("rel-1.16.3", "rel-1.16.3"),
        "qemu-xen": ("qemu-xen-4.21.0", "qemu-xen-4.21.0"),
        "grub": ("grub-2.12", "grub-2.12"),
        "libvirt": ("v11.9.0", "v11.9.0"),
        "linux": ("v6.12.58", "v6.12.58"),
    }
    assert set(lock) == set(want) | {"ovmf"}
    for name, (ref, tag) in want.items():
        src = lock[name]["source"]
        assert src["url"] == f"https://{UPSTREAM[name]}", (
            name
        )  # the manifest's URL, not the mirror's
        assert src["ref"] == ref, name
        assert src["rev"] == git(mirrors.repo(name), "rev-parse", f"{tag}^{{commit}}"), name
        assert src["date"] == mirrors.date[(name, tag)], name
    # ovmf: Config.mk names a full commit id
    assert lock["ovmf"]["source"]["ref"] == lock["ovmf"]["source"]["rev"] == mirrors.ovmf["4.21"]
    # not the newer decoys on the companions' default branches
    for name, decoy in (
        ("seabios", "rel-1.17.0"),
        ("qemu-xen", "qemu-xen-4.22.0"),
        ("ovmf", "edk2-stable202511"),
    ):
        assert lock[name]["source"]["rev"] != mirrors.rev[(name, decoy)], name
    assert {n: lock[n]["version"] for n in lock} == {
        "xen": "4.21.0",
        "seabios": "1.16.3",
        "qemu-xen": "4.21.0",
        "ovmf": mirrors.ovmf["4.21"][:7],
        "grub": "2.12",
        "libvirt": "11.9.0",
        "linux": "6.12.58",
    }
    # the recipes expanded for these versions: no compat flags for qemu-xen 4.21 on Xen 4.21
    assert not any("XC_WANT_COMPAT" in s for s in lock["qemu-xen"]["build"])
    assert any("--disable-qemu-traditional" in s for s in lock["xen"]["build"])
    # the lock is current, also offline
    for args in (("lock", "--check"), ("lock", "--check", "--offline")):
        r = raisin(*args, cwd=stack, env=mirrors.env)
        assert r.code == 0, r


def test_changing_xen_re_resolves_the_followers(mirrors: Mirrors, tmp_path: Path) -> None:
    proj = project(tmp_path / "proj")
    env = mirrors.env
    assert raisin("lock", cwd=proj, env=env).code == 0
    before = read_lock(proj)
    # --update re-reads Config.mk: the followers stay on its revisions, not on the newer decoys
    r = raisin("lock", "--update", cwd=proj, env=env)
    assert r.code == 0, r
    assert {n: c["source"]["rev"] for n, c in read_lock(proj).items()} == {
        n: c["source"]["rev"] for n, c in before.items()
    }

    text = (proj / "raisin.toml").read_text()
    assert text.count('ref = "RELEASE-4.21.0"') == 1
    (proj / "raisin.toml").write_text(
        text.replace('ref = "RELEASE-4.21.0"', 'ref = "RELEASE-4.20.0"')
    )
    lock_bytes = (proj / "raisin.lock").read_bytes()

    r = raisin("lock", "--check", cwd=proj, env=env)
    assert r.code == 1, r
    said = r.out + r.err
    assert re.search(r"^\s*xen: changed in raisin.toml$", said, re.MULTILINE), r
    for name in ("seabios", "ovmf", "qemu-xen"):
        assert re.search(rf"^\s*{name}: follows xen", said, re.MULTILINE), r
    for name in ("grub", "linux", "libvirt"):
        assert not re.search(rf"^\s*{name}\b", said, re.MULTILINE), r
    assert (proj / "raisin.lock").read_bytes() == lock_bytes

    r = raisin("lock", cwd=proj, env=env)
    assert r.code == 0, r
    after = read_lock(proj)
    refs = {n: after[n]["source"]["ref"] for n in ("xen", "seabios", "qemu-xen", "ovmf")}
    assert refs == {
        "xen": "RELEASE-4.20.0",
        "seabios": "rel-1.16.2",
        "qemu-xen": "qemu-xen-4.20.0",
        "ovmf": mirrors.ovmf["4.20"],
    }
    for name, tag in (
        ("xen", "RELEASE-4.20.0"),
        ("seabios", "rel-1.16.2"),
        ("qemu-xen", "qemu-xen-4.20.0"),
    ):
        assert after[name]["source"]["rev"] == mirrors.rev[(name, tag)], name
    assert after["ovmf"]["source"]["rev"] == mirrors.ovmf["4.20"]
    for name in (
        "grub",
        "linux",
        "libvirt",
    ):  # untouched pins; grub and libvirt get a new xen input
        assert after[name]["source"] == before[name]["source"], name
    assert after["linux"]["out"] == before["linux"]["out"]
    assert after["grub"]["out"] != before["grub"]["out"]
    assert raisin("lock", "--check", cwd=proj, env=env).code == 0


# ---------------------------------------------------------------- realize


def test_realize_builds_xen_with_the_firmware_wired_in(
    built: dict[str, Path], mirrors: Mirrors
) -> None:
    xen = built["xen"]
    conf = args_of(xen / "usr/share/raisin-fake/configure.args")
    assert f"--with-system-seabios={virtual(built['seabios'])}/usr/share/seabios/bios.bin" in conf
    assert "--enable-ovmf" in conf
    assert f"--with-system-ovmf={virtual(built['ovmf'])}/usr/share/ovmf/OVMF.fd" in conf
    for flag in (
        "--prefix=/usr",
        "--disable-stubdom",
        "--disable-qemu-traditional",
        "--with-system-qemu=/usr/lib/xen/bin/qemu-system-i386",
    ):
        assert flag in conf, conf
    assert "--enable-qemu-traditional" not in conf
    epoch = mirrors.date[("xen", "RELEASE-4.21.0")]
    env = dict(line.split("=", 1) for line in args_of(xen / "usr/share/raisin-fake/build.env"))
    assert env == {
        "SOURCE_DATE_EPOCH": str(epoch),
        "XEN_BUILD_DATE": date_u(epoch),
        "XEN_BUILD_TIME": date_u(epoch, "+%T"),
        "XEN_WHOAMI": "raisin",
        "XEN_DOMAIN": "raisin.invalid",
        "XEN_BUILD_HOST": "raisin",
    }
    assert (xen / "usr/share/raisin-fake/python").read_text().strip() == "python3"
    import gzip

    banner = gzip.decompress((xen / "boot/xen.gz").read_bytes()).decode()
    assert banner.startswith(f"Xen version 4.21.0 (raisin@raisin.invalid) {date_u(epoch)}")
    for tool in ("usr/sbin/xl", "usr/sbin/xenstored"):
        assert os.access(xen / tool, os.X_OK), tool
    bios = (built["seabios"] / "usr/share/seabios/bios.bin").read_text()
    assert bios == "SeaBIOS (version 1.16.3-raisin)\n"
    ovmf = (built["ovmf"] / "usr/share/ovmf/OVMF.fd").read_text()
    assert ovmf.startswith("OVMF for-xen-4.21 (-a X64 -b RELEASE -n ")


def test_realize_builds_qemu_xen_against_xen(built: dict[str, Path]) -> None:
    q, x = built["qemu-xen"], virtual(built["xen"])
    conf = args_of(q / "usr/share/qemu-xen/configure.args")
    assert f"--extra-cflags=-I{x}/usr/include" in conf  # no compat flags: qemu-xen 4.21
    assert f"--extra-ldflags=-L{x}/usr/lib -Wl,-rpath-link={x}/usr/lib" in conf
    for flag in (
        "--enable-xen",
        "--target-list=i386-softmmu",
        "--prefix=/usr",
        "--bindir=/usr/lib/xen/bin",
        "--datadir=/usr/share/qemu-xen",
        "--disable-kvm",
    ):
        assert flag in conf, conf
    if HAVE_PKG_CONFIG:  # it found xen's .pc files through the sysroot
        assert (q / "usr/share/qemu-xen/pkg-config.cflags").read_text().split() == [
            f"-I{x}/usr/include"
        ]
    assert os.access(q / "usr/lib/xen/bin/qemu-system-i386", os.X_OK)


def test_realize_builds_pv_grub_images(built: dict[str, Path]) -> None:
    boot = built["grub"] / "usr/lib/xen/boot"
    assert sorted(p.name for p in boot.iterdir()) == ["grub-i386-xen_pvh", "grub-x86_64-xen"]
    for fmt in ("i386-xen_pvh", "x86_64-xen"):
        image = (boot / f"grub-{fmt}").read_text()
        assert image.startswith(
            f"format: {fmt}\nmodules: configfile memdisk normal search tar\n"
        ), image
        assert "bootstrap: normal (memdisk)/grub.cfg\nmemdisk: grub.cfg\n" in image
        assert (
            "search -s -f /boot/grub/grub.cfg\n" in image and "configfile /grub/grub.cfg" in image
        )


def test_realize_builds_a_kernel_without_a_timestamp_in_its_name(
    built: dict[str, Path], mirrors: Mirrors
) -> None:
    linux = built["linux"]
    assert sorted(p.name for p in (linux / "boot").iterdir()) == [
        "config-6.12.58",
        "vmlinuz-6.12.58",
    ]
    stamp = date_u(mirrors.date[("linux", "v6.12.58")])
    assert (
        linux / "boot/vmlinuz-6.12.58"
    ).read_text() == f"Linux version 6.12.58 (raisin@raisin) #1 SMP {stamp}\n"
    config = (linux / "boot/config-6.12.58").read_text().splitlines()
    for opt in (
        "XEN",
        "XEN_DOM0",
        "XEN_PVH",
        "XEN_BLKDEV_BACKEND",
        "XEN_NETDEV_BACKEND",
        "HVC_XEN",
        "XEN_GNTDEV",
        "BRIDGE",
    ):
        assert f"CONFIG_{opt}=y" in config, opt
    assert "# CONFIG_XEN is not set" not in config
    assert (linux / "usr/lib/modules/6.12.58/kernel/drivers/xen/xen-blkback.ko").is_file()


@pytest.mark.skipif(not HAVE_MESON, reason=NO_MESON)
def test_realize_builds_libvirt_with_libxl(built: dict[str, Path]) -> None:
    lv = built["libvirt"]
    out = subprocess.run(
        [str(lv / "usr/sbin/libvirtd")], capture_output=True, text=True, check=True
    ).stdout
    assert (
        out == "libvirtd (fake) with libxl 4.21.0\n"
    )  # compiled against xen's libxl.h via pkg-config
    opts = dict(line.split("=", 1) for line in args_of(lv / "usr/share/libvirt/options.txt"))
    assert opts["driver_libxl"] == opts["driver_libvirtd"] == "enabled"
    assert {opts[f"driver_{d}"] for d in LIBVIRT_DRIVERS[2:]} == {"disabled"}
    assert (
        opts["driver_remote"] == opts["yajl"] == "enabled"
    )  # libvirtd needs them; everything else is pinned off
    assert opts["docs"] == opts["tests"] == "disabled"


def test_realize_again_is_a_no_op(stack: Path, built: dict[str, Path], mirrors: Mirrors) -> None:
    names = list(built) if HAVE_MESON else [n for n in built if n != "libvirt"]
    r = raisin("realize", *names, cwd=stack, env=mirrors.env)
    assert r.code == 0, r
    assert "building" not in r.err, r


def test_old_qemu_xen_on_new_xen_gets_the_compat_flags(
    stack: Path, built: dict[str, Path], mirrors: Mirrors, tmp_path: Path
) -> None:
    """A user pin wins over the Config.mk revision; qemu-xen < 4.7 on Xen >= 4.7 gets XC_WANT_COMPAT_*."""
    text = REPO_MANIFEST.read_text()
    src = 'source = { git = "https://xenbits.xen.org/git-http/qemu-xen.git" }'
    assert text.count(src) == 1
    proj = project(tmp_path / "proj", text.replace(src, src[:-2] + ', ref = "qemu-xen-4.6.0" }'))
    store = ("--store", str(stack / "store"))  # xen is already built there
    r = raisin(*store, "lock", cwd=proj, env=mirrors.env)
    assert r.code == 0, r
    lock = read_lock(proj)
    assert lock["qemu-xen"]["source"]["rev"] == mirrors.rev[("qemu-xen", "qemu-xen-4.6.0")]
    assert lock["qemu-xen"]["version"] == "4.6.0"
    assert lock["xen"]["out"] == read_lock(stack)["xen"]["out"]
    r = raisin(*store, "realize", "qemu-xen", cwd=proj, env=mirrors.env)
    assert r.code == 0, r
    assert "building xen" not in r.err
    q = outs(proj, mirrors.env, *store)["qemu-xen"]
    x = virtual(built["xen"])
    conf = args_of(q / "usr/share/qemu-xen/configure.args")
    assert (
        f"--extra-cflags=-I{x}/usr/include -DXC_WANT_COMPAT_EVTCHN_API=1 "
        "-DXC_WANT_COMPAT_GNTTAB_API=1 -DXC_WANT_COMPAT_MAP_FOREIGN_API=1"
    ) in conf, conf


# ---------------------------------------------------------------- raisin init --template xen


def test_template_for_an_old_xen_adds_qemu_traditional_and_locks(
    mirrors: Mirrors, tmp_path: Path
) -> None:
    proj = tmp_path / "old"
    proj.mkdir()
    r = raisin(
        "-C", str(proj), "init", "--template", "xen", "--xen", "RELEASE-4.17.0", env=mirrors.env
    )
    assert r.code == 0, r
    text = (proj / "raisin.toml").read_text()
    comps = tomllib.loads(text)["components"]
    assert comps["xen"]["source"]["ref"] == "RELEASE-4.17.0"
    assert comps["qemu-traditional"] == {
        "source": {"git": f"https://{UPSTREAM['qemu-traditional']}"},
        "follows": "xen",
        "recipe": "qemu-traditional",
    }
    r = raisin("lock", cwd=proj, env=mirrors.env)
    assert r.code == 0, r
    lock = read_lock(proj)
    for name, tag in (
        ("xen", "RELEASE-4.17.0"),
        ("seabios", "rel-1.16.0"),
        ("qemu-xen", "qemu-xen-4.17.0"),
        ("qemu-traditional", "xen-4.17.0"),
    ):
        assert lock[name]["source"]["ref"] == tag, (
            name
        )  # past Config.mk's `$(QEMU_TAG)` legacy line
        assert lock[name]["source"]["rev"] == mirrors.rev[(name, tag)], name
    assert lock["ovmf"]["source"]["rev"] == mirrors.ovmf["4.17"]

    # Turn the legacy device model on, as the template's comment says, and build Xen with it.
    old = '[components.xen]\nsource = { git = "https://xenbits.xen.org/git-http/xen.git", ref = "RELEASE-4.17.0" }\nrecipe = "xen"\ndeps = ["seabios", "ovmf"]\n'
    assert text.count(old) == 1
    (proj / "raisin.toml").write_text(
        text.replace(
            old,
            old.replace('["seabios", "ovmf"]', '["seabios", "ovmf", "qemu-traditional"]')
            + "options = { qemu_traditional = true }\n",
        )
    )
    r = raisin("realize", "xen", cwd=proj, env=mirrors.env)
    assert r.code == 0, r
    xen = outs(proj, mirrors.env)["xen"]
    conf = args_of(xen / "usr/share/raisin-fake/configure.args")
    assert "--enable-qemu-traditional" in conf and "--disable-qemu-traditional" not in conf
    assert (xen / "usr/share/raisin-fake/qemu-traditional.files").read_text().split() == [
        "VERSION",
        "xen-setup",
    ]
    assert "QEMU_TRADITIONAL_LOC=" in (xen / "usr/share/raisin-fake/build.env").read_text()


def test_template_refuses_xen_older_than_4_5(tmp_path: Path) -> None:
    proj = tmp_path / "ancient"
    proj.mkdir()
    r = raisin("-C", str(proj), "init", "--template", "xen", "--xen", "RELEASE-4.4.0")
    assert r.code == 2, r
    assert "4.5" in r.err and "Traceback" not in r.err, r
    assert not (proj / "raisin.toml").exists()


def test_template_for_the_current_xen_has_no_qemu_traditional(
    mirrors: Mirrors, tmp_path: Path
) -> None:
    proj = tmp_path / "new"
    proj.mkdir()
    r = raisin("-C", str(proj), "init", "--template", "xen", env=mirrors.env)
    assert r.code == 0, r
    comps = tomllib.loads((proj / "raisin.toml").read_text())["components"]
    assert "qemu-traditional" not in comps
    # the default template is the repo-root manifest's stack
    assert comps == tomllib.loads(REPO_MANIFEST.read_text())["components"]


# ---------------------------------------------------------------- found while building the stack


def test_jobserver_acquire_waits_on_a_pipe_make_left_non_blocking() -> None:
    """GNU make sets the shared jobserver pipe O_NONBLOCK; realizing the stack then hit EAGAIN."""
    import fcntl
    import threading
    import time

    from raisin_lock.build.jobserver import Jobserver

    with Jobserver(1) as js:
        r, _w = js.fds
        fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)
        js.acquire()  # the only token
        errors: list[BaseException] = []

        def second() -> None:
            try:
                js.acquire()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=second, daemon=True)
        t.start()
        time.sleep(0.2)
        assert not errors and t.is_alive(), errors
        js.release()
        t.join(5)
        assert not t.is_alive() and not errors, errors
        js.release()
        assert js.available() == 1
