"""Core-level proof on libvirt, independent of the scenario plugins.

A test-only scenario goes through the core pipeline (catalog of a fresh plugin manager
holding only the core's own plugins plus the one below) and ``create.define_and_start``,
first on the in-process test driver, then on the real libvirtd under TCG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from virtscenario import hookimpl
from virtscenario.domain.generate import Generated, Request, generate
from virtscenario.domain.sections.disks import DiskArg
from virtscenario.domain.sections.nics import NetArg
from virtscenario.errors import LibvirtError
from virtscenario.plugin.builtin import choices as core_choices
from virtscenario.plugin.builtin import rules as core_rules
from virtscenario.plugin.hooks import Catalog
from virtscenario.plugin.manager import VirtscenarioPluginManager
from virtscenario.types import Choice, Scenario
from virtscenario.vm.libvirt import define_and_start

from .conftest import import_libvirt, open_libvirtd, remove_domain, unique_name

REF = "https://libvirt.org/formatdomain.html"
TCG = [("vm.virt_type", "qemu", "--virt-type")]


def _c(key: str, value: object) -> Choice:
    return Choice(key, value, f"integration test: {key}", REF)


# Small and quick to boot under TCG, but with the devices that need host support:
# UEFI (OVMF), an emulated TPM (swtpm), an iothread and a virtio disk.
BOOT = Scenario(
    name="it-boot",
    summary="Integration test guest: UEFI, TPM, iothread, virtio disk, no display",
    version="1.0",
    settings=(_c("vm.vcpus", 1), _c("vm.memory", "256MiB"), _c("firmware.type", "efi"),
              _c("tpm.model", "tpm-crb"), _c("cpu.iothreads", 1), _c("graphics.type", "none"),
              _c("video.model", "none"), _c("sound.model", "none")),
)
# The same guest backed by static 2 MiB hugepages (scripts/libvirtd.sh mounts hugetlbfs
# and reserves them before libvirtd starts, because libvirt only sees mounts at start).
HUGE = Scenario(
    name="it-huge",
    summary="Integration test guest on 2 MiB hugepages",
    version="1.0",
    settings=(_c("vm.vcpus", 1), _c("vm.memory", "128MiB"), _c("firmware.type", "bios"),
              _c("memory.hugepages", True), _c("memory.hugepage_size", "2MiB"), _c("graphics.type", "none"),
              _c("video.model", "none")),
)


class IntegrationScenarios:
    """The test-only scenario plugin."""

    @hookimpl
    def register_scenarios(self) -> list[Scenario]:
        return [BOOT, HUGE]


def core_catalog() -> Catalog:
    pm = VirtscenarioPluginManager()
    pm.register_plugin(core_rules, name="core_rules", distribution="virtscenario", builtin=True)
    pm.register_plugin(core_choices, name="core_choices", distribution="virtscenario", builtin=True)
    pm.register_plugin(IntegrationScenarios(), name="integration", distribution="tests")
    return Catalog(pm)


def boot(conn: Any, req: Request, cleanup: Any) -> tuple[Generated, Any]:
    gen = generate(req, core_catalog())
    assert gen.validated, "the generated XML was not RelaxNG-validated (libvirt schemas missing?)"
    cleanup(conn, req.name)
    dom = define_and_start(conn, gen, req.store_root / req.name, start=True)
    return gen, dom


def assert_running(libvirt: Any, dom: Any) -> None:
    state, _reason = dom.state()
    assert dom.isActive() == 1
    assert state == libvirt.VIR_DOMAIN_RUNNING, f"domain state {state}, expected running"


def test_define_and_start_on_test_driver(test_conn: Any, domain_cleanup: Any, tmp_path: Path) -> None:
    libvirt = import_libvirt()
    name = unique_name("testdrv")
    req = Request(scenario="it-boot", name=name, disks=[], networks=[NetArg("user")], store_root=tmp_path)
    gen, dom = boot(test_conn, req, domain_cleanup)
    assert_running(libvirt, dom)
    assert dom.name() == name
    assert dom.UUIDString() == gen.identity.uuid
    live = etree.fromstring(dom.XMLDesc(0).encode())
    assert live.find("devices/tpm").get("model") == "tpm-crb"
    assert live.find("devices/interface").get("type") == "user"
    dom.destroy()
    assert dom.isActive() == 0
    remove_domain(test_conn, name)
    assert name not in [d.name() for d in test_conn.listAllDomains()]


def test_libvirt_refusal_is_one_clear_error(test_conn: Any, domain_cleanup: Any, tmp_path: Path) -> None:
    """A domain libvirt rejects (here: a duplicate name with another uuid) is a LibvirtError naming it."""
    name = unique_name("dup")
    req = Request(scenario="it-boot", name=name, disks=[], networks=[], store_root=tmp_path)
    boot(test_conn, req, domain_cleanup)
    other = generate(Request(scenario="it-boot", name=name, disks=[], networks=[], store_root=tmp_path),
                     core_catalog())
    with pytest.raises(LibvirtError, match=name):
        define_and_start(test_conn, other, tmp_path / name, start=False)


@pytest.mark.libvirtd
def test_define_and_start_on_libvirtd(libvirtd_conn: Any, domain_cleanup: Any, guest_dir: Path,
                                      make_qcow2: Any) -> None:
    """UEFI + TPM + iothread + virtio qcow2 + user networking boot under TCG; teardown leaves nothing."""
    libvirt = import_libvirt()
    from virtscenario.host.hypervisor import fetch
    caps, host = fetch(libvirtd_conn, virt_type="qemu")
    assert caps is not None and "efi" in caps.firmware, "no UEFI firmware offered: is ovmf installed?"
    name = unique_name("boot")
    image = make_qcow2(guest_dir / "root.qcow2", "64M")
    req = Request(scenario="it-boot", name=name, cli_settings=list(TCG), disks=[DiskArg(path=str(image))],
                  networks=[NetArg("user")], store_root=guest_dir, caps=caps, host=host,
                  libvirt_version=libvirtd_conn.getLibVersion())
    gen, dom = boot(libvirtd_conn, req, domain_cleanup)
    assert_running(libvirt, dom)
    live = etree.fromstring(dom.XMLDesc(0).encode())
    assert live.get("type") == "qemu"
    assert live.find("os/loader") is not None, "libvirt did not resolve the UEFI firmware"
    nvram = live.findtext("os/nvram")
    assert nvram and Path(nvram).exists(), "no NVRAM file for the UEFI guest"
    assert live.find("devices/tpm/backend").get("type") == "emulator"
    assert live.find("devices/disk/source").get("file") == str(image)
    assert live.find("devices/disk/driver").get("iothread") == "1"
    assert live.find("devices/interface").get("type") == "user"
    assert live.find("metadata") is not None and b"it-boot" in etree.tostring(live.find("metadata"))

    dom.destroy()
    remove_domain(libvirtd_conn, name)
    with pytest.raises(libvirt.libvirtError):
        libvirtd_conn.lookupByName(name)
    assert not Path(nvram).exists(), "undefine left the NVRAM file behind"


def _hugepages_free_2m() -> int:
    base = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
    return int((base / "free_hugepages").read_text()) if base.is_dir() else 0


def _hugetlbfs_mounted() -> bool:
    return any(line.split()[2] == "hugetlbfs" for line in Path("/proc/mounts").read_text().splitlines())


@pytest.mark.libvirtd
def test_hugepage_backed_guest_on_libvirtd(libvirtd_conn: Any, domain_cleanup: Any, guest_dir: Path) -> None:
    """memoryBacking hugepages boots: proves the host preparation scripts/libvirtd.sh does for CI."""
    libvirt = import_libvirt()
    if not _hugetlbfs_mounted() or _hugepages_free_2m() < 64:
        pytest.fail(f"hugepages are not prepared (hugetlbfs mounted: {_hugetlbfs_mounted()}, free 2 MiB pages: "
                    f"{_hugepages_free_2m()}, need 64): start libvirtd with scripts/libvirtd.sh, which mounts "
                    "hugetlbfs and reserves pages before the daemon starts", pytrace=False)
    name = unique_name("huge")
    req = Request(scenario="it-huge", name=name, cli_settings=list(TCG), disks=[], networks=[],
                  store_root=guest_dir)
    gen, dom = boot(libvirtd_conn, req, domain_cleanup)
    assert_running(libvirt, dom)
    assert etree.fromstring(gen.xml).find("memoryBacking/hugepages/page").get("size") == "2048"
    live = etree.fromstring(dom.XMLDesc(0).encode())
    assert live.find("memoryBacking/hugepages") is not None


def test_unreachable_libvirtd_fails_instead_of_skipping() -> None:
    """The @libvirtd fixtures must turn a missing daemon into a failure, never a skip."""
    with pytest.raises(pytest.fail.Exception, match="libvirtd is not reachable on"):
        open_libvirtd("qemu+unix:///system?socket=/nonexistent/virtscenario-test.sock")
