#!/usr/bin/env bash
# Set up a development checkout of virtscenario: system packages, .venv, editable installs.
#
#   scripts/setup.sh            what the CLI needs (libvirt-python builds against the system libvirt)
#   scripts/setup.sh --tests    also the real libvirtd + QEMU + OVMF + swtpm, strace, pytest, ruff, mypy and pexpect
#
# Idempotent: a second run installs nothing and takes about a second. Debian/Ubuntu
# (apt), openSUSE/SLES (zypper) and Fedora/RHEL (dnf) are handled; as non-root, missing
# system packages are listed with the command to install them.
# Environment: VIRTSCENARIO_PYTHON=/path/to/python3 picks the interpreter for .venv.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
TESTS=0
for arg in "$@"; do
    case "$arg" in
        --tests) TESTS=1 ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Error: unknown option $arg (usage: scripts/setup.sh [--tests])" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }
START=$SECONDS

# -- system packages ------------------------------------------------------------------
# Tier 1: build libvirt-python (headers + pkg-config), RelaxNG schemas (libvirt0/-libs),
#         virsh, xmllint for virt-xml-validate, qemu-img for disk images, xorriso for the
#         --cloud-init seed ISO, osinfo-db (libosinfo's OS database) for --os.
# Tier 2 (--tests): a real libvirtd with the QEMU driver (TCG is enough), UEFI firmware
#         and swtpm for TPM devices; sshd and ssh for the fleet tests' qemu+ssh:// transport.
#         Debian's libvirt-daemon-system creates the libvirt-qemu user that libvirtd needs
#         even with user=root in qemu.conf.
#         Also what scripts/build-test-guest.sh needs (Debian only, like that script):
#         kmod (modprobe --show-depends, depmod), cpio, e2fsprogs (mkfs.ext4 -d) and
#         qemu-guest-agent, whose libraries are copied into the guest's initrd; and
#         genisoimage for the ISO (a NoCloud seed's shape) its tests attach as a CD-ROM.
#         strace: the host tuning kill-point tests kill the CLI at each file change.
family=unknown
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
        *" debian "*|*" ubuntu "*) family=debian ;;
        *suse*|*" sles "*|*" sled "*) family=suse ;;
        *" fedora "*|*" rhel "*|*" centos "*) family=fedora ;;
    esac
fi

case "$family" in
    debian)
        BASE=(libvirt-dev pkg-config gcc python3-venv python3-dev libvirt-clients libxml2-utils qemu-utils xorriso osinfo-db)
        DAEMON=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 ovmf swtpm swtpm-tools
                kmod cpio e2fsprogs qemu-guest-agent genisoimage openssh-server openssh-client strace dnsmasq-base)
        ;;
    suse)
        BASE=(libvirt-devel pkgconf gcc python3-devel libvirt-client libxml2-tools qemu-tools xorriso osinfo-db)
        DAEMON=(libvirt-daemon-qemu qemu-x86 qemu-ovmf-x86_64 swtpm openssh-server strace dnsmasq)
        ;;
    fedora)
        BASE=(libvirt-devel pkgconf-pkg-config gcc python3-devel libvirt-client libxml2 qemu-img xorriso osinfo-db)
        DAEMON=(libvirt-daemon-driver-qemu libvirt-daemon-config-network qemu-kvm edk2-ovmf swtpm swtpm-tools
                openssh-server openssh-clients strace dnsmasq)
        ;;
    *)
        BASE=(); DAEMON=()
        ;;
esac
WANT=("${BASE[@]}")
[ "$TESTS" = 1 ] && WANT+=("${DAEMON[@]}")

is_installed() {
    case "$family" in
        debian) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' ;;
        suse|fedora) rpm -q --whatprovides "$1" >/dev/null 2>&1 ;;
        *) return 0 ;;
    esac
}

install_cmd() {
    case "$family" in
        debian) echo "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $*" ;;
        suse) echo "zypper --non-interactive install --no-recommends $*" ;;
        fedora) echo "dnf install -y $*" ;;
    esac
}

MISSING=()
for pkg in "${WANT[@]}"; do
    is_installed "$pkg" || MISSING+=("$pkg")
done

if [ "$family" = unknown ]; then
    log "unknown distribution (${PRETTY_NAME:-no /etc/os-release}): install by hand the development files of"
    log "libvirt, pkg-config, gcc, the Python 3 headers, virsh, xmllint and qemu-img (and for --tests: libvirtd"
    log "with the QEMU driver, qemu-system-x86_64, OVMF, swtpm and strace); see README.md"
elif [ "${#MISSING[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        die "missing system packages: ${MISSING[*]}; as root run: $(install_cmd "${MISSING[*]}")"
    fi
    log "installing ${MISSING[*]}"
    t0=$SECONDS
    case "$family" in
        debian)
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q
            # confdef/confold: never stop at a conffile prompt (there is no stdin in CI),
            # e.g. when /etc/libvirt/qemu.conf was edited before libvirt-daemon-system.
            apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${MISSING[@]}"
            ;;
        suse) zypper --non-interactive install --no-recommends "${MISSING[@]}" ;;
        fedora) dnf install -y "${MISSING[@]}" ;;
    esac
    log "system packages installed in $((SECONDS - t0)) s"
fi

command -v pkg-config >/dev/null || die "pkg-config is not installed (needed to build libvirt-python)"
LIBVIRT_VERSION=$(pkg-config --modversion libvirt 2>/dev/null) \
    || die "pkg-config does not find libvirt: install the libvirt development package (see README.md)"

# -- Python interpreter --------------------------------------------------------------------
# python3 first (pyenv or the distribution's), then versioned names: SLES 15's python3
# is 3.6, too old, while python311 is packaged beside it.
pick_python() {
    local candidates=("${VIRTSCENARIO_PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10 python3.9)
    local py
    for py in "${candidates[@]}"; do
        [ -n "$py" ] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null
}

if ! venv_ok; then
    PYTHON=$(pick_python) || die "no Python >= 3.9 with the venv module found (set VIRTSCENARIO_PYTHON)"
    [ -e "$VENV" ] && { log "recreating the broken $VENV"; rm -rf "$VENV"; }
    log "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)

# -- workspace members -------------------------------------------------------------------
mapfile -t MEMBERS < <("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
try:
    import tomllib
    members = tomllib.loads(text)["tool"]["virtscenario"]["workspace"]["members"]
except ImportError:  # Python < 3.11: the members list is a plain array of strings
    block = re.search(r"\[tool\.virtscenario\.workspace\][^\[]*?members\s*=\s*\[(.*?)\]", text, re.S)
    members = re.findall(r'"([^"]+)"', block.group(1)) if block else []
print("\n".join(members))
EOF
)
[ "${#MEMBERS[@]}" -gt 0 ] || die "no [tool.virtscenario.workspace] members in $ROOT/pyproject.toml"
for m in "${MEMBERS[@]}"; do
    [ -f "$ROOT/$m/pyproject.toml" ] || die "workspace member $m has no pyproject.toml"
done

# The binding's version follows the C library's (9.0.0 on Debian 12): a matching
# binding never uses API the library lacks. Newer bindings also build, as a fallback.
MAJOR_MINOR=$(echo "$LIBVIRT_VERSION" | cut -d. -f1,2)
LIBVIRT_PIN="libvirt-python==${MAJOR_MINOR}.*"
DEV_TOOLS=("pytest>=8" "ruff==0.17.6" "mypy==2.4.1" "pexpect==4.9.0")

# Skip pip when nothing that affects the install changed (pyproject files, the
# interpreter, the libvirt version, the tool list): editable installs follow the sources.
stamp_of() {
    {
        echo "libvirt=$LIBVIRT_VERSION python=$("$VENV/bin/python" -c 'import sys; print(sys.version)')"
        echo "tests=$1 tools=${DEV_TOOLS[*]}"
        (cd "$ROOT" && sha256sum pyproject.toml "${MEMBERS[@]/%//pyproject.toml}")
    } | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.virtscenario-setup"
want_stamp=$(stamp_of "$TESTS")
have_stamp=$(cat "$STAMP_FILE" 2>/dev/null || true)
tests_stamp=$(stamp_of 1)

imports_ok() {
    "$VENV/bin/python" -c 'import libvirt, virtscenario' 2>/dev/null && "$VENV/bin/virtscenario" --version >/dev/null 2>&1 \
        && { [ "$TESTS" = 0 ] || "$VENV/bin/python" -c 'import pytest, pexpect' 2>/dev/null; }
}

if { [ "$have_stamp" = "$want_stamp" ] || [ "$have_stamp" = "$tests_stamp" ]; } && imports_ok; then
    log "$VENV is up to date"
else
    t0=$SECONDS
    if ! "$VENV/bin/python" -c 'import libvirt' 2>/dev/null; then
        log "building $LIBVIRT_PIN against libvirt $LIBVIRT_VERSION"
        if ! "${PIP[@]}" install "$LIBVIRT_PIN"; then
            log "no $LIBVIRT_PIN release builds here; trying the newest libvirt-python"
            "${PIP[@]}" install libvirt-python || die "libvirt-python does not build (see the pip output above)"
        fi
    fi
    EDITABLE=()
    for m in "${MEMBERS[@]}"; do EDITABLE+=(-e "$ROOT/$m"); done
    log "installing ${MEMBERS[*]} (editable)"
    # The members only need setuptools to build: installing it once and building without
    # isolation halves the time (no throw-away build environment per member).
    "${PIP[@]}" install "setuptools>=64" wheel
    "${PIP[@]}" install --no-build-isolation "${EDITABLE[@]}"
    if [ "$TESTS" = 1 ]; then
        "${PIP[@]}" install "${DEV_TOOLS[@]}"
    fi
    imports_ok || die "the virtscenario command does not run after install (try: rm -rf .venv; scripts/setup.sh)"
    echo "$want_stamp" > "$STAMP_FILE"
    log "Python packages installed in $((SECONDS - t0)) s"
fi

log "ready in $((SECONDS - START)) s: $("$VENV/bin/virtscenario" --version) (libvirt $LIBVIRT_VERSION); CLI: .venv/bin/virtscenario"
