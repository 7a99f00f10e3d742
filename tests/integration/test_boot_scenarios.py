"""The built-in scenarios on libvirt, through the ``virtscenario`` CLI as a user runs it.

On the real libvirtd (qemu:///system, TCG): desktop, computation and securevm VMs with
images made by qemu-img and user networking are defined, started, checked running, then
destroyed and undefined with their NVRAM and TPM state. securevm starts without its launch
security (TCG has no SEV: libvirt refuses <launchSecurity> at define) and without its
memtune hard_limit (this sandbox caps locked memory at 8 MiB, and libvirt applies
hard_limit as the memlock limit: "cannot limit locked memory"); its firmware, encrypted
disk and IOMMU devices are the scenario's. Asked for launch security, the real daemon
refuses it in one line; the test driver defines the whole securevm XML.

Computation's hugepages need hugetlbfs mounted and pages reserved *before* libvirtd
starts (libvirt only sees mounts present at its start): scripts/libvirtd.sh does that
(512 x 2 MiB). Nothing in these tests changes the host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from .conftest import SYSTEM_URI, TEST_URI, import_libvirt, unique_name

MEMORY_MIB = 256  # small: TCG on a 2-core CI machine, and 128 of the 512 reserved hugepages


def virtscenario(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("virtscenario")
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "virtscenario"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, env=env)


def create_and_start(scenario: str, name: str, store: Path, *extra: str) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    result = virtscenario("create", scenario, "--name", name, "--output", str(store), "--virt-type", "qemu",
                          "--network", "user", "--memory", f"{MEMORY_MIB}MiB", "--disk", "size=1",
                          "--connect", SYSTEM_URI, "--start", *extra)
    print(f"{scenario}: create + define + start took {time.monotonic() - t0:.2f} s")
    assert result.returncode == 0, f"create {scenario} failed: {result.stderr.strip()}"
    assert f"Started {name} on {SYSTEM_URI}" in result.stdout
    return result


def running_xml(conn: Any, name: str) -> etree._Element:
    libvirt = import_libvirt()
    dom = conn.lookupByName(name)
    state, _reason = dom.state()
    assert dom.isActive() and state == libvirt.VIR_DOMAIN_RUNNING, f"{name} is not running (state {state})"
    return etree.fromstring(dom.XMLDesc(0).encode())


def stop_and_undefine(conn: Any, name: str) -> None:
    libvirt = import_libvirt()
    dom = conn.lookupByName(name)
    t0 = time.monotonic()
    dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
    print(f"{name}: destroy + undefine took {time.monotonic() - t0:.2f} s")
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


def free_root_ports(root: etree._Element) -> list[str]:
    """Indexes of pcie-root-ports no device sits behind: where a PCIe device can be hot-plugged."""
    ports = {c.get("index") for c in root.findall("devices/controller[@type='pci'][@model='pcie-root-port']")}
    used = {str(int(a.get("bus"), 16)) for a in root.iter("address") if a.get("type") == "pci" and a.get("bus")}
    return sorted(ports - used, key=int)


def defined_xml(conn: Any, name: str) -> etree._Element:
    return etree.fromstring(conn.lookupByName(name).XMLDesc(2).encode())  # VIR_DOMAIN_XML_INACTIVE


def free_hugepages_2m() -> int:
    text = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
    return int(text.read_text()) if text.exists() else 0


@pytest.mark.libvirtd
def test_desktop_starts_on_libvirtd(libvirtd_conn, domain_cleanup, guest_dir):
    name = unique_name("desktop")
    domain_cleanup(libvirtd_conn, name)
    create_and_start("desktop", name, guest_dir)
    vm = guest_dir / name
    root = running_xml(libvirtd_conn, name)
    assert root.get("type") == "qemu" and root.find("os/loader").get("secure") == "yes"
    assert root.find("devices/disk/source").get("file") == str(vm / f"{name}.qcow2")
    # the scenario's devices are really there, not dropped on the way
    assert root.find("devices/tpm/backend").get("type") == "emulator"
    assert root.find("devices/filesystem/driver").get("type") == "virtiofs"
    assert root.find("devices/filesystem/source").get("dir") == str(vm / "share")
    assert root.find("devices/sound").get("model") == "ich9" and root.find("devices/audio") is not None
    assert root.find("devices/graphics").get("type") == "spice"
    assert len(root.findall("devices/redirdev")) == 2
    assert root.find("devices/interface").get("type") == "user"
    assert root.find("features/vmport").get("state") == "off"  # virt-install's choice for SPICE guests
    # Room for hotplug: 14 root ports (virt-install's number), the devices take 7; libvirt alone left 1.
    inactive = defined_xml(libvirtd_conn, name)
    assert len(inactive.findall("devices/controller[@model='pcie-root-port']")) == 14
    assert len(free_root_ports(inactive)) == 7
    stop_and_undefine(libvirtd_conn, name)


@pytest.mark.libvirtd
def test_computation_starts_on_hugepages(libvirtd_conn, domain_cleanup, guest_dir):
    mounts = Path("/proc/mounts").read_text()
    assert re.search(r"^\S+ \S+ hugetlbfs ", mounts, re.M), \
        "hugetlbfs is not mounted: scripts/libvirtd.sh mounts it (and reserves pages) before starting libvirtd"
    needed = MEMORY_MIB // 2
    before = free_hugepages_2m()
    assert before >= needed, f"only {before} free 2 MiB hugepages, {needed} needed: reserve them before libvirtd starts"
    name = unique_name("computation")
    domain_cleanup(libvirtd_conn, name)
    # One vCPU, so that it can be pinned next to the housekeeping core on a 2-core CI machine.
    result = create_and_start("computation", name, guest_dir, "--vcpus", "1")
    root = running_xml(libvirtd_conn, name)
    assert root.find("memoryBacking/hugepages/page").get("size") == "2048"
    running = free_hugepages_2m()
    assert running <= before - needed, "the guest RAM is not on the reserved hugepages"
    assert root.find("devices/disk/driver").get("type") == "raw"
    assert root.find("devices/watchdog").get("model") == "i6300esb"
    host_cores = {(c.get("socket_id"), c.get("core_id")) for c in
                  etree.fromstring(libvirtd_conn.getCapabilities().encode()).iter("cpu") if c.get("core_id")}
    if len(host_cores) >= 2:  # one core for housekeeping, one for the vCPU
        assert root.find("cputune/vcpupin") is not None and root.find("cputune/emulatorpin") is not None
        assert root.find("features/kvm/hint-dedicated").get("state") == "on"
    else:
        assert "vCPUs are not pinned" in result.stderr
    # the i6300esb watchdog is conventional PCI: libvirt adds a pcie-to-pci-bridge behind a 15th port
    assert len(free_root_ports(defined_xml(libvirtd_conn, name))) >= 9
    stop_and_undefine(libvirtd_conn, name)
    assert free_hugepages_2m() >= running + needed, "destroying the guest did not give its hugepages back"


@pytest.mark.libvirtd
def test_encrypted_disk_gets_its_libvirt_secret_and_starts(libvirtd_conn, domain_cleanup, guest_dir):
    """LUKS end to end: qemu-img encrypts, the secret is defined in libvirt, QEMU opens the image."""
    libvirt = import_libvirt()
    name = unique_name("luks")
    domain_cleanup(libvirtd_conn, name)
    vm = guest_dir / name
    image = vm / f"{name}.qcow2"
    try:
        create_and_start("desktop", name, guest_dir, "--set", "disk.encryption=on", "--set", "filesystem.share=off")
        running_xml(libvirtd_conn, name)
        secret = libvirtd_conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, str(image))
        uuid = etree.parse(str(vm / "domain.xml")).find("devices/disk/source/encryption/secret").get("uuid")
        assert secret.UUIDString() == uuid
        stop_and_undefine(libvirtd_conn, name)
    finally:
        try:
            libvirtd_conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, str(image)).undefine()
        except libvirt.libvirtError:
            pass


@pytest.mark.libvirtd
def test_securevm_is_refused_by_a_host_without_sev(tmp_path):
    result = virtscenario("create", "securevm", "--name", unique_name("securevm"), "--output", str(tmp_path),
                          "--connect", SYSTEM_URI)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: this host supports no confidential computing (no SEV, SEV-ES, SEV-SNP or TDX in domain capabilities)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.libvirtd
def test_securevm_firmware_and_devices_start_on_libvirtd(libvirtd_conn, domain_cleanup, guest_dir):
    """Issue 11: securevm's <os> block (<loader stateless='yes'/>, SEV-ES policy) could not start on
    Debian 12: "Unable to find any firmware to satisfy 'efi'". Here everything but the launch security
    and the memtune limit (see the module docstring for why) is the scenario as shipped."""
    libvirt = import_libvirt()
    name = unique_name("securevm")
    domain_cleanup(libvirtd_conn, name)
    image = guest_dir / name / f"{name}.qcow2"
    try:
        result = create_and_start("securevm", name, guest_dir, "--set", "launch_security.type=none",
                                  "--set", "memory.hard_limit_overhead=unset")
        # qemu:///system is local: its firmware descriptors were read, and Debian 12 has no stateless one
        assert "firmware.stateless dropped: no firmware descriptor in /usr/share/qemu/firmware" in result.stderr
        root = running_xml(libvirtd_conn, name)
        assert root.find("launchSecurity") is None and root.find("memtune") is None
        loader = root.find("os/loader")
        assert loader.text.endswith("/OVMF_CODE_4M.fd") and loader.get("secure") != "yes"  # not the .ms build
        assert loader.get("stateless") is None and root.find("os/nvram") is not None
        assert root.find("features/smm").get("state") == "off"
        assert root.find("devices/disk/source/encryption").get("format") == "luks"
        assert all(d.get("iommu") == "on" for d in root.iter("driver")
                   if d.getparent().tag in ("disk", "interface"))
        assert root.find("devices/graphics") is None and root.find("devices/rng") is None
        assert len(free_root_ports(defined_xml(libvirtd_conn, name))) >= 10
        stop_and_undefine(libvirtd_conn, name)
    finally:
        try:
            libvirtd_conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, str(image)).undefine()
        except libvirt.libvirtError:
            pass


def test_securevm_is_defined_on_the_test_driver(test_conn, domain_cleanup, tmp_path, capsys):
    """In-process, because test:///default is private to each process."""
    from virtscenario.cli.app import main
    name = unique_name("securevm")
    domain_cleanup(test_conn, name)
    main(["create", "securevm", "--name", name, "--output", str(tmp_path), "--disk", "size=1",
          "--connect", TEST_URI, "--define"])
    out = capsys.readouterr().out
    assert f"Defined {name} on {TEST_URI}" in out
    root = etree.fromstring(test_conn.lookupByName(name).XMLDesc(0).encode())
    ls = root.find("launchSecurity")
    # test:/// is not a QEMU driver: no firmware descriptors to check, so SEV rather than SEV-ES
    assert ls.get("type") == "sev" and int(ls.findtext("policy"), 16) == 0x03
    assert root.find("memtune/hard_limit") is not None
    assert root.find("devices/disk/source/encryption").get("format") == "luks"
    assert all(d.get("iommu") == "on" for d in root.iter("driver") if d.getparent().tag in ("disk", "interface"))
