"""The test guest boots under TCG on the real libvirtd and answers through its agent.

One guest is booted for the module (q35, direct kernel boot, 1 socket x 2 cores, a virtio
disk on a qcow2 overlay, a SATA CD-ROM, a virtiofs share, user networking, a tpm-crb
emulator, the agent channel); each test checks one fact from inside it with real agent
commands. The last test presses the ACPI power button and expects a clean poweroff, so
it runs last (file order). The build itself is checked without libvirtd.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
import uuid
from typing import Any, Iterator

import pytest
from lxml import etree

from .agent import agent_command, agent_exec, guest_read
from .guest import (
    BUILD_SCRIPT,
    READY_LINE,
    BootedGuest,
    BuildResult,
    define_and_boot,
    destroy_and_undefine,
    domain_xml,
    make_iso,
    make_overlay,
)

SOCKETS, CORES, THREADS = 1, 2, 1
BOOT_BUDGET_S = 60
SEED = {"meta-data": "instance-id: guest-test\n", "user-data": "#cloud-config\n"}  # a NoCloud seed's shape
SHARE_TAG = "vstest"


@pytest.fixture(scope="module")
def guest_xml(guest_build: BuildResult, guest_workdir) -> etree._Element:
    overlay = make_overlay(guest_build.image, guest_workdir / "overlay.qcow2")
    seed = make_iso(SEED, guest_workdir / "seed.iso")
    share = guest_workdir / "share"
    share.mkdir(mode=0o755)
    (share / "from-host").write_text("virtscenario virtiofs\n")
    return domain_xml(f"guest-test-guest-{uuid.uuid4().hex[:8]}", guest_build.image, overlay,
                      guest_workdir / "console.log", sockets=SOCKETS, cores=CORES, threads=THREADS, cdrom=seed,
                      share=(share, SHARE_TAG))


@pytest.fixture(scope="module")
def booted(guest_libvirtd: Any, guest_xml: etree._Element, guest_workdir) -> Iterator[BootedGuest]:
    try:
        guest = define_and_boot(guest_libvirtd, guest_xml, guest_workdir / "console.log")
    except RuntimeError as exc:
        pytest.fail(f"the test guest did not answer through its agent: {exc}", pytrace=False)
    try:
        yield guest
    finally:
        destroy_and_undefine(guest.dom)


def sh(guest: BootedGuest, script: str) -> str:
    """Run a busybox sh script in the guest; its stdout, or the test fails with its stderr."""
    result = agent_exec(guest.dom, ["/bin/sh", "-c", script])
    assert result.exitcode == 0, f"guest: {script!r} exited {result.exitcode}: {result.stderr.strip()}"
    return result.stdout


def test_domain_xml_is_valid_for_libvirt(guest_xml):
    from virtscenario.domain.validate import load_schema

    schema = load_schema()
    assert schema is not None, "libvirt's RelaxNG schemas (/usr/share/libvirt/schemas) are not installed"
    assert schema.validate(guest_xml), str(schema.error_log.last_error)


def test_build_is_cached_and_matches_its_manifest(guest_build: BuildResult):
    image = guest_build.image
    before = {p: p.stat().st_mtime_ns for p in (image.kernel, image.initrd, image.disk)}
    start = time.monotonic()
    again = subprocess.run(["bash", str(BUILD_SCRIPT), str(image.directory)], capture_output=True, text=True,
                           timeout=120, check=False)
    seconds = time.monotonic() - start
    print(f"test guest: cached build check {seconds:.1f} s")
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before, "a cached run rewrote the outputs"
    assert seconds < 30
    for name, entry in image.manifest["files"].items():
        assert hashlib.sha256((image.directory / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert f"linux-image-{image.manifest['kernel_version']}" in image.manifest["packages"]


@pytest.mark.libvirtd
def test_agent_answers_within_budget(booted: BootedGuest):
    print(f"test guest: start to first agent answer {booted.seconds_to_agent:.1f} s (budget {BOOT_BUDGET_S} s)")
    assert booted.seconds_to_agent < BOOT_BUDGET_S
    assert READY_LINE in booted.console_log.read_text(errors="replace")
    assert agent_command(booted.dom, "guest-info")["version"]


@pytest.mark.libvirtd
def test_vcpus_and_topology_match_the_xml(booted: BootedGuest, guest_xml):
    want = int(guest_xml.findtext("vcpu"))
    vcpus = agent_command(booted.dom, "guest-get-vcpus")
    assert len([v for v in vcpus if v["online"]]) == want == SOCKETS * CORES * THREADS
    assert sh(booted, "nproc").strip() == str(want)
    topo = sh(booted, "cd /sys/devices/system/cpu && for c in cpu[0-9]*; do "
                      "echo $(cat $c/topology/physical_package_id) $(cat $c/topology/core_id); done").split("\n")
    pairs = {tuple(line.split()) for line in topo if line}
    assert len({pkg for pkg, _ in pairs}) == SOCKETS
    assert len(pairs) == SOCKETS * CORES  # distinct cores: no SMT siblings with threads=1


@pytest.mark.libvirtd
def test_tpm_crb_is_present(booted: BootedGuest):
    result = agent_exec(booted.dom, ["ls", "/sys/class/tpm"])
    assert result.exitcode == 0 and result.stdout.split() == ["tpm0"], result
    assert guest_read(booted.dom, "/sys/class/tpm/tpm0/tpm_version_major").strip() == "2"
    driver = sh(booted, "readlink /sys/class/tpm/tpm0/device/driver").strip()
    assert driver.rsplit("/", 1)[-1] == "tpm_crb"  # the XML's model='tpm-crb'


@pytest.mark.libvirtd
def test_disk_is_mounted_and_its_marker_readable(booted: BootedGuest, guest_build: BuildResult):
    disk = guest_build.image.manifest["disk"]
    assert guest_read(booted.dom, f"{disk['mountpoint']}{disk['marker_path']}") == disk["marker"] + "\n"
    mounts = guest_read(booted.dom, "/proc/mounts").splitlines()
    assert f"/dev/vda {disk['mountpoint']} ext4" in [" ".join(m.split()[:3]) for m in mounts]
    sh(booted, f"cd {shlex.quote(disk['mountpoint'])}/data && sha256sum -c SHA256SUMS")


@pytest.mark.libvirtd
def test_nic_is_the_xml_one_with_queues_and_dhcp(booted: BootedGuest):
    live = etree.fromstring(booted.dom.XMLDesc(0).encode())
    mac = live.find("devices/interface/mac").get("address")
    assert guest_read(booted.dom, "/sys/class/net/eth0/address").strip() == mac
    queues = sh(booted, "ls /sys/class/net/eth0/queues").split()
    assert "rx-0" in queues and "tx-0" in queues
    nics = {n["name"]: n for n in agent_command(booted.dom, "guest-network-get-interfaces")}
    assert nics["eth0"]["hardware-address"] == mac
    assert [a for a in nics["eth0"].get("ip-addresses", []) if a["ip-address-type"] == "ipv4"], nics["eth0"]


@pytest.mark.libvirtd
def test_sata_cdrom_mounts_as_iso9660(booted: BootedGuest):
    # libata probes SATA ports asynchronously: give /dev/sr0 a few seconds to appear.
    sh(booted, "i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; "
               "mount -t iso9660 -o ro /dev/sr0 /mnt/cdrom")
    try:
        for name, text in SEED.items():
            assert guest_read(booted.dom, f"/mnt/cdrom/{name}") == text
        assert "/dev/sr0 /mnt/cdrom iso9660 ro" in guest_read(booted.dom, "/proc/mounts")
    finally:
        sh(booted, "umount /mnt/cdrom")


@pytest.mark.libvirtd
def test_virtiofs_share_mounts(booted: BootedGuest, guest_workdir):
    sh(booted, f"mount -t virtiofs {SHARE_TAG} /mnt/share")
    try:
        assert guest_read(booted.dom, "/mnt/share/from-host") == "virtscenario virtiofs\n"
        sh(booted, "echo from-guest >/mnt/share/from-guest")  # writable: libvirt 9.0 has no read-only virtiofs
        assert (guest_workdir / "share" / "from-guest").read_text() == "from-guest\n"
    finally:
        sh(booted, "umount /mnt/share")


@pytest.mark.libvirtd
def test_guest_exec_runs_busybox_applets_and_filesystems_are_there(booted: BootedGuest):
    # Bare names go through PATH (qemu-ga inherits /init's); mount, grep and ls are busybox links.
    result = agent_exec(booted.dom, ["grep", "-c", "virtiofs", "/proc/filesystems"])
    assert (result.exitcode, result.stdout.strip()) == (0, "1"), result
    filesystems = {line.split()[-1] for line in guest_read(booted.dom, "/proc/filesystems").splitlines()}
    assert {"ext4", "iso9660", "fuse", "virtiofs", "tmpfs"} <= filesystems
    sh(booted, "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && grep -q ' /tmp/m tmpfs ' /proc/mounts "
               "&& echo ok >/tmp/m/f && ls /tmp/m | grep -qx f && umount /tmp/m")
    assert agent_exec(booted.dom, ["false"]).exitcode == 1
    assert agent_exec(booted.dom, ["/bin/sh", "-c", "echo err >&2; exit 3"]) == (3, "", "err\n")


@pytest.mark.libvirtd
def test_clocksource_is_readable(booted: BootedGuest):
    base = "/sys/devices/system/clocksource/clocksource0"
    current = guest_read(booted.dom, f"{base}/current_clocksource").strip()
    available = guest_read(booted.dom, f"{base}/available_clocksource").split()
    assert current and current in available


@pytest.mark.libvirtd
def test_acpi_power_button_powers_off_cleanly(booted: BootedGuest):
    """Runs last: it consumes the module's guest."""
    import libvirt

    start = time.monotonic()
    booted.dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    while booted.dom.isActive() and time.monotonic() - start < 60:
        time.sleep(0.2)
    print(f"test guest: ACPI power button to power off {time.monotonic() - start:.1f} s")
    assert not booted.dom.isActive(), "the guest ignored the ACPI power button for 60 s"
    console = booted.console_log.read_text(errors="replace")
    assert "virtscenario-test-guest: shutting down" in console
    assert "reboot: Power down" in console
