#!/usr/bin/env bash
# Start or stop virtlogd + libvirtd by hand (no systemd on CI machines) for the tests.
#
#   scripts/libvirtd.sh start STATE_DIR   prepare the host, start the daemons, wait for qemu:///system
#   scripts/libvirtd.sh stop STATE_DIR    stop exactly what 'start' started and undo what it changed
#
# If a libvirtd already answers on qemu:///system (a developer's machine), it is reused
# and nothing on the host is touched. Otherwise 'start', as root:
#   - sets user/group and swtpm_user/swtpm_group to "root" in /etc/libvirt/qemu.conf
#     (root can open /dev/kvm, else libvirt re-probes QEMU on every call; swtpm as root
#     avoids the tss-owned /var/lib/swtpm-localca trap), restored on stop;
#   - creates /var/log/libvirt (libvirtd --daemon dies without it);
#   - mounts hugetlbfs on /dev/hugepages and reserves 512 x 2 MiB pages (VIRTSCENARIO_TEST_HUGEPAGES),
#     undone on stop (libvirt only sees hugetlbfs mounts that exist when it starts);
#   - starts virtlogd (libvirtd does not spawn it) and libvirtd with pid files in STATE_DIR;
#     libvirtd also listens on loopback TCP (--listen -f STATE_DIR/libvirtd.conf: the host's
#     libvirtd.conf plus listen_tcp=1, listen_addr=127.0.0.1, auth_tcp="none", no TLS) so the
#     fleet tests reach it through libvirt's remote transports (qemu+tcp://127.0.0.1/system,
#     and qemu+ssh:// through a private sshd); unauthenticated, so loopback only and only for
#     the time of the tests;
#   - waits until 'virsh -c qemu:///system version' answers (a cold QEMU probe takes ~8 s).
# Recipe and traps: ../shared/reference/libvirt-qemu-on-ci.md §3.
set -euo pipefail

URI=qemu:///system
TCP_URI=qemu+tcp://127.0.0.1/system
QEMU_CONF=/etc/libvirt/qemu.conf
LIBVIRTD_CONF=/etc/libvirt/libvirtd.conf
HUGEPAGES_WANTED=${VIRTSCENARIO_TEST_HUGEPAGES:-512}  # 2 MiB pages (1 GiB) for hugepage-backed test guests
HUGEPAGES_MOUNT=/dev/hugepages
START_TIMEOUT=${VIRTSCENARIO_LIBVIRTD_TIMEOUT:-120}

log() { printf 'libvirtd.sh: %s\n' "$*"; }
warn() { printf 'libvirtd.sh: warning: %s\n' "$*" >&2; }
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }

if [ $# -ne 2 ] || { [ "$1" != start ] && [ "$1" != stop ]; }; then
    die "usage: scripts/libvirtd.sh start|stop STATE_DIR"
fi
ACTION=$1
STATE=$2

answers() { timeout "${1:-20}" virsh -q -c "${2:-$URI}" version >/dev/null 2>&1; }

# A pid file's process, if it is alive and is the program we expect (guards against pid reuse).
live_pid() {
    local file=$1 comm=$2 pid state
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' < "$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    # PID 1 here reaps orphans late: a zombie counts as gone.
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
    [ "$state" != Z ] || return 1
    echo "$pid"
}

hugetlbfs_mounted() { awk '$3 == "hugetlbfs" {found=1} END {exit !found}' /proc/mounts; }

daemon_binary() {
    local name=$1 dir
    for dir in /usr/sbin /usr/bin /sbin; do
        [ -x "$dir/$name" ] && { echo "$dir/$name"; return 0; }
    done
    command -v "$name" 2>/dev/null
}

# -- qemu.conf ------------------------------------------------------------------------------
# Replace or append `key = "root"`, keeping the original for 'stop'. Written atomically
# (temp file + rename) in the same directory, with the original mode.
configure_qemu_conf() {
    [ -f "$QEMU_CONF" ] || die "$QEMU_CONF is missing: run scripts/setup.sh --tests (Debian: libvirt-daemon-system)"
    local tmp key
    tmp=$(mktemp "$QEMU_CONF.virtscenario.XXXXXX")
    cp -p "$QEMU_CONF" "$tmp"
    for key in user group swtpm_user swtpm_group; do
        if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$tmp"; then
            sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*|${key} = \"root\"|" "$tmp"
        else
            printf '%s = "root"\n' "$key" >> "$tmp"
        fi
    done
    if cmp -s "$tmp" "$QEMU_CONF"; then
        rm -f "$tmp"
        return 0
    fi
    cp -p "$QEMU_CONF" "$STATE/qemu.conf.orig"
    cp "$tmp" "$STATE/qemu.conf.ours"
    mv -f "$tmp" "$QEMU_CONF"
    log "set user, group, swtpm_user and swtpm_group to root in $QEMU_CONF (restored on stop)"
}

restore_qemu_conf() {
    [ -f "$STATE/qemu.conf.orig" ] || return 0
    # Only if nobody changed it since: never overwrite someone else's edit.
    if cmp -s "$QEMU_CONF" "$STATE/qemu.conf.ours"; then
        local tmp
        tmp=$(mktemp "$QEMU_CONF.virtscenario.XXXXXX")
        cp -p "$STATE/qemu.conf.orig" "$tmp"
        mv -f "$tmp" "$QEMU_CONF"
        log "restored $QEMU_CONF"
    else
        warn "$QEMU_CONF changed while the tests ran; left as it is (original in $STATE/qemu.conf.orig)"
        return 0
    fi
    rm -f "$STATE/qemu.conf.orig" "$STATE/qemu.conf.ours"
}

# -- libvirtd.conf for the test daemon -------------------------------------------------------
# libvirtd -f reads only the file it is given: start from the host's settings (unix socket
# permissions and the like), drop the keys set here (libvirt's conf parser takes the first
# occurrence of a key), then listen on loopback TCP without TLS or authentication.
write_libvirtd_conf() {
    local conf=$STATE/libvirtd.conf tmp
    tmp=$(mktemp "$conf.XXXXXX")
    if [ -f "$LIBVIRTD_CONF" ]; then
        grep -Ev '^[[:space:]]*(listen_tls|listen_tcp|listen_addr|tcp_port|auth_tcp)[[:space:]]*=' \
            "$LIBVIRTD_CONF" > "$tmp" || true
    fi
    cat >> "$tmp" <<'CONF'
# virtscenario tests (scripts/libvirtd.sh): loopback TCP for qemu+tcp://127.0.0.1/system
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
auth_tcp = "none"
CONF
    chmod 0600 "$tmp"
    mv -f "$tmp" "$conf"
}

# -- hugepages ------------------------------------------------------------------------------
prepare_hugepages() {
    if ! hugetlbfs_mounted; then
        [ -d "$HUGEPAGES_MOUNT" ] || { mkdir -p "$HUGEPAGES_MOUNT"; touch "$STATE/created-mountpoint"; }
        if mount -t hugetlbfs hugetlbfs "$HUGEPAGES_MOUNT" 2>"$STATE/mount.err"; then
            touch "$STATE/mounted-hugetlbfs"
            log "mounted hugetlbfs on $HUGEPAGES_MOUNT (unmounted on stop)"
        else
            warn "cannot mount hugetlbfs on $HUGEPAGES_MOUNT: $(cat "$STATE/mount.err"); hugepage-backed guests will not start"
        fi
    fi
    local nr=/proc/sys/vm/nr_hugepages before after
    [ -w "$nr" ] || { warn "$nr is not writable; hugepage-backed guests will not start"; return 0; }
    before=$(cat "$nr")
    if [ "$before" -lt "$HUGEPAGES_WANTED" ]; then
        echo "$before" > "$STATE/nr_hugepages.orig"
        echo "$HUGEPAGES_WANTED" > "$nr" || true
        after=$(cat "$nr")
        echo "$after" > "$STATE/nr_hugepages.ours"
        log "reserved $after x 2 MiB hugepages (was $before; restored on stop)"
        [ "$after" -ge "$HUGEPAGES_WANTED" ] || warn "only $after of $HUGEPAGES_WANTED hugepages could be reserved"
    fi
}

restore_hugepages() {
    if [ -f "$STATE/nr_hugepages.orig" ]; then
        local before
        before=$(cat "$STATE/nr_hugepages.orig")
        if [ "$(cat /proc/sys/vm/nr_hugepages)" != "$(cat "$STATE/nr_hugepages.ours" 2>/dev/null)" ]; then
            warn "nr_hugepages changed while the tests ran; left as it is (was $before before the tests)"
            rm -f "$STATE/nr_hugepages.orig" "$STATE/nr_hugepages.ours"
        elif echo "$before" > /proc/sys/vm/nr_hugepages; then
            log "restored nr_hugepages to $before"
            rm -f "$STATE/nr_hugepages.orig" "$STATE/nr_hugepages.ours"
        else
            warn "could not restore nr_hugepages to $before"
        fi
    fi
    if [ -f "$STATE/mounted-hugetlbfs" ]; then
        if umount "$HUGEPAGES_MOUNT"; then
            log "unmounted hugetlbfs from $HUGEPAGES_MOUNT"
            rm -f "$STATE/mounted-hugetlbfs"
            [ ! -f "$STATE/created-mountpoint" ] || rmdir "$HUGEPAGES_MOUNT" 2>/dev/null || true
            rm -f "$STATE/created-mountpoint"
        else
            warn "could not unmount $HUGEPAGES_MOUNT (still in use?)"
        fi
    fi
}

# -- processes ------------------------------------------------------------------------------
stop_pid() {
    local file=$1 comm=$2 pid
    pid=$(live_pid "$file" "$comm") || { rm -f "$file"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        live_pid "$file" "$comm" >/dev/null || break
        sleep 0.1
    done
    if live_pid "$file" "$comm" >/dev/null; then
        warn "$comm ($pid) ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $comm (pid $pid)"
    rm -f "$file"
}

start_daemons() {
    local virtlogd libvirtd t0 deadline pid
    virtlogd=$(daemon_binary virtlogd) || die "virtlogd is not installed: run scripts/setup.sh --tests"
    libvirtd=$(daemon_binary libvirtd) || die "libvirtd is not installed: run scripts/setup.sh --tests"
    # libvirtd does not spawn virtlogd; without it QEMU guests fail to start.
    if [ -S /run/libvirt/virtlogd-sock ] && pgrep -x virtlogd >/dev/null; then
        log "reusing the running virtlogd"
    else
        "$virtlogd" --daemon --pid-file="$STATE/virtlogd.pid"
        for _ in $(seq 1 50); do live_pid "$STATE/virtlogd.pid" virtlogd >/dev/null && break; sleep 0.1; done
        pid=$(live_pid "$STATE/virtlogd.pid" virtlogd) || die "virtlogd did not start"
        log "started virtlogd (pid $pid)"
    fi
    t0=$(date +%s.%N)
    write_libvirtd_conf
    "$libvirtd" --daemon --listen -f "$STATE/libvirtd.conf" --pid-file="$STATE/libvirtd.pid"
    for _ in $(seq 1 50); do live_pid "$STATE/libvirtd.pid" libvirtd >/dev/null && break; sleep 0.1; done
    pid=$(live_pid "$STATE/libvirtd.pid" libvirtd) \
        || die "libvirtd exited at start; last log lines: $(tail -n 5 /var/log/libvirt/libvirtd.log 2>/dev/null | tr '\n' ' ')"
    log "started libvirtd (pid $pid); waiting for $URI (the first answer probes QEMU, ~8 s)"
    deadline=$((SECONDS + START_TIMEOUT))
    until answers 30; do
        live_pid "$STATE/libvirtd.pid" libvirtd >/dev/null \
            || die "libvirtd died while starting; last log lines: $(tail -n 5 /var/log/libvirt/libvirtd.log 2>/dev/null | tr '\n' ' ')"
        [ $SECONDS -lt $deadline ] \
            || die "libvirtd (pid $pid) did not answer on $URI within $START_TIMEOUT s (see /var/log/libvirt/libvirtd.log)"
        sleep 0.5
    done
    log "$URI answers after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
    answers 30 "$TCP_URI" || die "libvirtd (pid $pid) does not answer on $TCP_URI (see /var/log/libvirt/libvirtd.log)"
    log "$TCP_URI answers"
}

do_start() {
    mkdir -p "$STATE"
    command -v virsh >/dev/null || die "virsh is not installed: run scripts/setup.sh --tests"
    if answers 60; then
        touch "$STATE/reused"
        log "a libvirtd already answers on $URI: reusing it, changing nothing on the host"
        answers 20 "$TCP_URI" || warn "that libvirtd does not listen on $TCP_URI: the fleet tests (tests/fleet)" \
            "will fail (start it with --listen and listen_tcp = 1, listen_addr = \"127.0.0.1\", auth_tcp = \"none\")"
        if ! hugetlbfs_mounted || [ "$(cat /proc/sys/vm/nr_hugepages)" -lt "$HUGEPAGES_WANTED" ]; then
            warn "hugetlbfs is not mounted or fewer than $HUGEPAGES_WANTED hugepages are reserved; guests backed by" \
                 "hugepages will fail to start (stop that libvirtd to let this script prepare the host)"
        fi
        return 0
    fi
    # A socket nobody answers on is left over from a killed daemon (libvirtd replaces it);
    # with a live libvirtd process it is a hung or still-probing daemon: never start a second.
    if [ -S /run/libvirt/libvirt-sock ] && pgrep -x libvirtd >/dev/null; then
        die "a libvirtd process is running but $URI does not answer; not starting a second one (stop it first)"
    fi
    [ "$(id -u)" = 0 ] || die "no libvirtd answers on $URI, and starting one needs root"
    mkdir -p /var/log/libvirt
    configure_qemu_conf
    prepare_hugepages
    start_daemons
}

do_stop() {
    [ -d "$STATE" ] || { log "nothing to stop ($STATE does not exist)"; return 0; }
    if [ -f "$STATE/reused" ]; then
        rm -f "$STATE/reused"
        log "left the pre-existing libvirtd running"
        return 0
    fi
    if live_pid "$STATE/libvirtd.pid" libvirtd >/dev/null; then
        local running
        running=$(timeout 20 virsh -q -c "$URI" list --name 2>/dev/null | sed '/^$/d' | tr '\n' ' ' || true)
        [ -z "$running" ] || warn "guests still running (a test did not clean up): $running"
    fi
    stop_pid "$STATE/libvirtd.pid" libvirtd
    rm -f "$STATE/libvirtd.conf"
    stop_pid "$STATE/virtlogd.pid" virtlogd
    restore_hugepages
    restore_qemu_conf
}

case "$ACTION" in
    start) do_start ;;
    stop) do_stop ;;
esac
