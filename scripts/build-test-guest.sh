#!/usr/bin/env bash
# Build the small Linux test guest that in-guest checks boot under QEMU/TCG.
#
#   scripts/build-test-guest.sh OUTDIR
#
# Writes OUTDIR/vmlinuz (Debian's kernel), OUTDIR/initrd.img (gzip cpio: busybox-static,
# the needed kernel modules, qemu-guest-agent and the libraries it links), OUTDIR/disk.ext4
# (a 64 MiB ext4 image with a marker file) and OUTDIR/manifest.json (versions, sha256 of
# each output, build date). Everything comes from Debian 12's packages, fetched with
# apt-get download and unpacked with dpkg-deb -x into a staging directory: nothing is
# installed on the host. Needs apt-get, dpkg-deb, kmod (modprobe/depmod), cpio, gzip,
# mkfs.ext4 (e2fsprogs) and the qemu-guest-agent libraries (scripts/setup.sh --tests).
#
# Cached: when the package versions, this script and scripts/test-guest/* are unchanged
# and the outputs still match the manifest, it does nothing (about a second). The .debs
# are kept in OUTDIR/.debs. Debian 12 only. See docs/test-guest.md.
set -euo pipefail

die() { printf 'Error: %s\n' "$*" >&2; exit 1; }
log() { printf 'build-test-guest: %s\n' "$*"; }

case "${1:-}" in
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") die "usage: scripts/build-test-guest.sh OUTDIR" ;;
esac
[ "$#" -eq 1 ] || die "usage: scripts/build-test-guest.sh OUTDIR"

ID='' VERSION_ID=''
# shellcheck disable=SC1091
[ -r /etc/os-release ] && . /etc/os-release
if [ "$ID" != debian ] || [ "$VERSION_ID" != 12 ]; then
    die "the test guest is built from Debian 12 packages and only on Debian 12 (this host: ${PRETTY_NAME:-unknown})"
fi
for tool in apt-get apt-cache dpkg-deb dpkg-query modprobe depmod cpio gzip mkfs.ext4 ldd flock python3 sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup.sh --tests (Debian packages kmod, cpio, e2fsprogs)"
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES="$HERE/test-guest"
OUT=$1
# 0755: QEMU may run as libvirt-qemu and must reach the images. An existing OUTDIR keeps its mode.
[ -d "$OUT" ] || install -d -m 0755 "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
DEBS="$OUT/.debs"
mkdir -p "$DEBS"
T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# One build at a time per OUTDIR (two test sessions may share the cache).
exec 9>"$OUT/.lock"
flock 9
rm -rf "$OUT"/.build.* "$DEBS"/.dl.*  # left by a killed build: nobody else holds the lock

# apt-get update once, as root, then start over: for empty lists (images often drop them)
# or stale ones (the mirror no longer has the files they name).
refresh_and_restart() {
    if [ "$(id -u)" != 0 ] || [ -n "${VIRTSCENARIO_GUEST_APT_UPDATED:-}" ]; then
        die "$1 (as root, run apt-get update)"
    fi
    log "$1; running apt-get update and starting over"
    apt-get update -q >/dev/null || die "apt-get update failed"
    exec 9>&-
    VIRTSCENARIO_GUEST_APT_UPDATED=1 exec bash "${BASH_SOURCE[0]}" "$OUT"
}

# -- inputs: candidate versions from the apt lists (one apt-cache call: ~0.7 s) -----------
# linux-image-amd64 depends on the exact kernel package: "linux-image-6.1.0-57-amd64 (= 6.1.192-3)".
declare -A VER
while read -r pkg ver deps; do
    VER[$pkg]=$ver
    [ "$pkg" = linux-image-amd64 ] && META_DEPS=$deps
done < <(apt-cache show --no-all-versions linux-image-amd64 busybox-static qemu-guest-agent 2>/dev/null \
         | awk '/^Package: /{p=$2} /^Version: /{v=$2} /^Depends: /{sub(/^Depends: /, ""); d=$0}
                /^$/ && p {print p, v, d; p=v=d=""} END {if (p) print p, v, d}')
KPKG=$(printf '%s\n' "${META_DEPS:-}" | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\) *(= *\([^)]*\)).*/\1 \2/p' | head -n1)
[ -n "$KPKG" ] || refresh_and_restart "apt knows no linux-image-amd64 depending on an exact kernel package"
VER[${KPKG% *}]=${KPKG#* }
KPKG=${KPKG% *}
KVER=${KPKG#linux-image-}
PKGS=("$KPKG" busybox-static qemu-guest-agent)
for p in "${PKGS[@]}"; do
    [ -n "${VER[$p]:-}" ] || refresh_and_restart "apt knows no package $p"
done

# What the outputs depend on, besides the host libraries (checked against the manifest).
# Paths relative to scripts/, so the key is the same however the script is invoked.
inputs_key=$( {
    for p in "${PKGS[@]}"; do echo "$p=${VER[$p]}"; done
    cd "$HERE" && sha256sum "$(basename "${BASH_SOURCE[0]}")" test-guest/*
} | sha256sum | cut -d' ' -f1)

# -- cache check ---------------------------------------------------------------------------------
# Fresh when the manifest has this key, every output still has its recorded sha256 and
# each host library copied into the initrd is unchanged.
if [ -f "$OUT/manifest.json" ] && python3 - "$OUT" "$inputs_key" <<'EOF'
import hashlib, json, sys
from pathlib import Path
out, key = Path(sys.argv[1]), sys.argv[2]
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
try:
    m = json.loads((out / "manifest.json").read_text())
    ok = m["inputs_key"] == key and all(sha(out / n) == f["sha256"] for n, f in m["files"].items()) \
        and all(sha(lib["path"]) == lib["sha256"] for lib in m["libraries"])
except (OSError, ValueError, KeyError, TypeError):
    ok = False
sys.exit(0 if ok else 1)
EOF
then
    log "up to date in $OUT (kernel $KVER), checked in $(elapsed) s"
    exit 0
fi

# -- download (cached in OUTDIR/.debs) -----------------------------------------------------------
deb_of() { echo "$DEBS/${1}_${VER[$1]//:/%3a}_amd64.deb"; }
fetch() {
    local tmp
    tmp=$(mktemp -d "$DEBS/.dl.XXXXXX")
    # apt drops privileges to _apt for downloads: let it write there.
    id _apt >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && chown _apt "$tmp"
    (cd "$tmp" && apt-get download -q "$@") >"$tmp.log" 2>&1
    local rc=$?
    if [ "$rc" = 0 ]; then
        for f in "$tmp"/*.deb; do mv -f "$f" "$DEBS/"; done
    fi
    rm -rf "$tmp"
    return "$rc"
}
MISSING=()
for p in "${PKGS[@]}"; do
    [ -s "$(deb_of "$p")" ] || MISSING+=("$p=${VER[$p]}")
done
if [ "${#MISSING[@]}" -gt 0 ]; then
    log "downloading ${MISSING[*]}"
    if ! fetch "${MISSING[@]}"; then
        why=$(grep -h '^E:' "$DEBS"/.dl.*.log 2>/dev/null | head -n1)
        rm -f "$DEBS"/.dl.*.log
        refresh_and_restart "apt-get download ${MISSING[*]} failed: ${why:-no message}"
    fi
    rm -f "$DEBS"/.dl.*.log
fi
for p in "${PKGS[@]}"; do
    [ -s "$(deb_of "$p")" ] || die "apt-get download gave no $(basename "$(deb_of "$p")")"
done

# -- staging -------------------------------------------------------------------------------------
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/stage"   # unpacked packages
ROOT="$WORK/root"     # the initramfs tree
mkdir -p "$STAGE" "$ROOT"
for p in "${PKGS[@]}"; do dpkg-deb -x "$(deb_of "$p")" "$STAGE"; done
[ -f "$STAGE/boot/vmlinuz-$KVER" ] || die "$KPKG has no boot/vmlinuz-$KVER"
[ -x "$STAGE/usr/sbin/qemu-ga" ] || die "qemu-guest-agent has no usr/sbin/qemu-ga"
[ -x "$STAGE/bin/busybox" ] || die "busybox-static has no bin/busybox"

mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc/virtscenario,etc/acpi/PWRF,usr/share/udhcpc,lib/modules/"$KVER"} \
         "$ROOT"/{proc,sys,dev,run,tmp,root,mnt/disk,mnt/cdrom,mnt/share,lib64}
mkdir -p "$ROOT"/var/{log,tmp}
ln -s ../run "$ROOT/var/run"

# busybox and its applets (as /bin/busybox links; /init is ours, not linuxrc).
cp "$STAGE/bin/busybox" "$ROOT/bin/busybox"
while read -r applet; do
    case "$applet" in linuxrc|bin/busybox) continue ;; esac
    [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done < <("$STAGE/bin/busybox" --list-full)

# Kernel modules: what the checks need (virtio devices, virtiofs, ext4, a SATA CD-ROM
# with iso9660, SCSI disks, the ACPI power button, the pvpanic device that reports a
# panic to QEMU and the i6300esb watchdog), plus their dependencies and soft
# dependencies in load order. TPM TIS/CRB are built in (=y) on Debian 6.1; pvpanic-mmio
# and i6300esb are modules (=m) that a distribution's udev loads from their modalias,
# and this guest has no udev.
WANT_MODULES=(
    virtio_pci virtio_blk virtio_net virtio_console virtio_scsi virtio_balloon virtio_rng
    fuse virtiofs ext4 crc32c_generic isofs cdrom sr_mod sd_mod ahci tpm_tis tpm_crb
    button evdev pvpanic_mmio i6300esb
)
depmod -b "$STAGE" "$KVER"
MODULE_LIST="$ROOT/etc/virtscenario/modules"
: >"$MODULE_LIST"
BUILTIN=()
declare -A SEEN
for m in "${WANT_MODULES[@]}"; do
    deps=$(modprobe -S "$KVER" -d "$STAGE" --show-depends "$m" 2>&1) || die "kernel $KVER has no module $m: $deps"
    while read -r verb path _; do
        case "$verb" in
            builtin) BUILTIN+=("$path") ;;
            insmod)
                rel=${path#"$STAGE/lib/modules/$KVER/"}
                [ -z "${SEEN[$rel]:-}" ] || continue
                SEEN[$rel]=1
                mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$rel")"
                cp "$path" "$ROOT/lib/modules/$KVER/$rel"
                echo "$rel" >>"$MODULE_LIST"
                ;;
        esac
    done <<<"$deps"
done
# modules.dep for the guest's busybox modprobe (e.g. a later "modprobe vfat" fails clearly).
cp "$STAGE/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$ROOT/lib/modules/$KVER/"
depmod -b "$ROOT" "$KVER"
rm -f "$ROOT/lib/modules/$KVER"/*.bin

# qemu-guest-agent and the shared libraries ldd names, copied with the loader. ldd
# resolves them on this host (Debian 12, the same release as the agent's package).
cp "$STAGE/usr/sbin/qemu-ga" "$ROOT/usr/sbin/qemu-ga"
LIBS=()
ldd_out=$(ldd "$STAGE/usr/sbin/qemu-ga") || die "ldd failed on qemu-ga"
if grep -q 'not found' <<<"$ldd_out"; then
    die "qemu-ga needs libraries this host lacks ($(grep 'not found' <<<"$ldd_out" | awk '{print $1}' | tr '\n' ' '));" \
        "install qemu-guest-agent (scripts/setup.sh --tests)"
fi
while read -r lib; do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
    LIBS+=("$lib")
done < <(awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' <<<"$ldd_out")
[ "${#LIBS[@]}" -gt 1 ] || die "ldd named no libraries for qemu-ga"

# Guest-side files from scripts/test-guest/.
install -m 0755 "$FILES/init" "$ROOT/init"
install -m 0644 "$FILES/inittab" "$ROOT/etc/inittab"
install -m 0755 "$FILES/on-shutdown" "$ROOT/etc/virtscenario/on-shutdown"
install -m 0755 "$FILES/shutdown" "$ROOT/sbin/shutdown"
install -m 0755 "$FILES/power-button" "$ROOT/etc/acpi/PWRF/00000080"
install -m 0755 "$FILES/udhcpc.script" "$ROOT/usr/share/udhcpc/default.script"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$ROOT/etc/group"
echo virtscenario-test-guest >"$ROOT/etc/hostname"
ln -s /proc/self/mounts "$ROOT/etc/mtab"
cat >"$ROOT/etc/os-release" <<EOF
PRETTY_NAME="virtscenario test guest (Debian 12 kernel $KVER)"
NAME="virtscenario test guest"
ID=virtscenario-test-guest
ID_LIKE=debian
VERSION_ID="1"
EOF

# -- outputs (written beside their final names, renamed at the end) --------------------------
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cp "$STAGE/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) \
    | gzip -n -6 >"$WORK/initrd.img"

DISK_MARKER="virtscenario-test-disk kernel=$KVER built=$BUILD_DATE"
DISK="$WORK/disk"
mkdir -p "$DISK/data"
echo "$DISK_MARKER" >"$DISK/virtscenario-test-disk"
head -c 1048576 /dev/urandom >"$DISK/data/random-1MiB"
(cd "$DISK/data" && sha256sum random-1MiB >SHA256SUMS)
truncate -s 64M "$WORK/disk.ext4"
mkfs.ext4 -q -F -L vs-test-disk -E root_owner=0:0 -d "$DISK" "$WORK/disk.ext4" \
    || die "mkfs.ext4 -d failed"

# Host package of each copied library, for the manifest.
lib_rows=()
for lib in "${LIBS[@]}"; do
    real=$(readlink -f "$lib")
    owner=
    for candidate_path in "$lib" "$real" "/usr$real" "${real#/usr}"; do
        owner=$(dpkg-query -S "$candidate_path" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    owner=${owner:-unknown}
    owner_version=$(dpkg-query -W -f='${Version}' "$owner" 2>/dev/null || echo unknown)
    lib_rows+=("$lib	$owner	$owner_version")
done

# The manifest is the commit point: drop the old one first, write the new one last.
chmod 0644 "$WORK"/{vmlinuz,initrd.img,disk.ext4}
sync "$WORK"/{vmlinuz,initrd.img,disk.ext4}
rm -f "$OUT/manifest.json"
for f in vmlinuz initrd.img disk.ext4; do mv -f "$WORK/$f" "$OUT/$f"; done

# Values reach Python through the environment, never spliced into its source.
VS_OUT=$OUT VS_KEY=$inputs_key VS_DATE=$BUILD_DATE VS_KVER=$KVER VS_MARKER=$DISK_MARKER \
VS_PACKAGES=$(for p in "${PKGS[@]}"; do printf '%s\t%s\n' "$p" "${VER[$p]}"; done) \
VS_LIBS=$(printf '%s\n' "${lib_rows[@]}") \
VS_MODULES=$(sed 's#.*/##; s#\.ko$##' "$MODULE_LIST") \
VS_BUILTIN=$(printf '%s\n' "${BUILTIN[@]}" | sort -u) \
python3 - <<'EOF'
import hashlib, json, os
from pathlib import Path
env = os.environ
out = Path(env["VS_OUT"])
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
def rows(name):
    return [line.split("\t") for line in env[name].splitlines() if line]
manifest = {
    "format": 1,
    "builder": "scripts/build-test-guest.sh",
    "inputs_key": env["VS_KEY"],
    "build_date": env["VS_DATE"],
    "kernel_version": env["VS_KVER"],
    "packages": dict(rows("VS_PACKAGES")),
    "libraries": [{"path": path, "package": pkg, "version": ver, "sha256": sha(path)}
                  for path, pkg, ver in rows("VS_LIBS")],
    "modules": {"insmod_order": env["VS_MODULES"].split(), "builtin": env["VS_BUILTIN"].split()},
    "disk": {"marker_path": "/virtscenario-test-disk", "marker": env["VS_MARKER"], "label": "vs-test-disk",
             "mountpoint": "/mnt/disk", "size_mib": 64},
    "agent_channel": "org.qemu.guest_agent.0",
    "ready_line": "virtscenario-test-guest: ready",
    "files": {name: {"sha256": sha(out / name), "size": (out / name).stat().st_size}
              for name in ("vmlinuz", "initrd.img", "disk.ext4")},
}
tmp = out / ".manifest.json.tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
    f.flush()
    os.fsync(f.fileno())
os.chmod(tmp, 0o644)
os.replace(tmp, out / "manifest.json")
EOF

# Keep only the .debs of this build.
for f in "$DEBS"/*.deb; do
    keep=0
    for p in "${PKGS[@]}"; do [ "$f" = "$(deb_of "$p")" ] && keep=1; done
    [ "$keep" = 1 ] || rm -f "$f"
done

log "built $OUT in $(elapsed) s:" \
    "kernel $KVER, initrd $(du -k "$OUT/initrd.img" | cut -f1) KiB, $(wc -l <"$MODULE_LIST") modules"
