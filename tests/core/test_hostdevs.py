"""--hostdev: parsing, the <hostdev> XML (RelaxNG-valid), the sysfs checks on fake hosts with four
IOMMU group shapes (clean, shared with another endpoint, with a bridge, IOMMU off), the rules, and
``host devices``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import virtscenario_host_tuning
import virtscenario_securevm
from lxml import etree
from virtscenario.domain.generate import Request, generate
from virtscenario.domain.sections.hostdevs import parse_hostdev
from virtscenario.errors import ConfigError, ValidationError
from virtscenario.host.devices import check_hostdevs, read_devices
from virtscenario.host.root import HostRoot
from virtscenario.vm.identity import Identity

from .. import fakedevices
from ..conftest import make_pm
from . import demo_plugin

IDENTITY = ("0b5f6b1c-3a0e-4d43-9d7a-2d8e5c0f1a11", ["52:54:00:aa:bb:01"])
MDEV = "c2177883-f1bb-47f0-914d-32a22e3a8804"


@pytest.fixture
def host(tmp_path: Path) -> HostRoot:
    return HostRoot(fakedevices.host(tmp_path / "host"))


def variant(tmp_path: Path, **changes: object) -> HostRoot:
    return HostRoot(fakedevices.host(tmp_path / "variant", dataclasses.replace(fakedevices.WORKSTATION, **changes)))


def check(host: HostRoot, *texts: str) -> list[str]:
    return check_hostdevs([parse_hostdev(t) for t in texts], read_devices(host))


def refusal(host: HostRoot, *texts: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(host, *texts)
    return str(info.value)


# -- parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,field,value", [
    ("pci=0000:01:00.0", "address", "0000:01:00.0"),
    ("pci=01:00.1", "address", "0000:01:00.1"),
    ("pci=pci_0000_0a_1f_7", "address", "0000:0a:1f.7"),
    ("pci=0000:01:00.0,rom.bar=off", "rom_bar", False),
    ("usb=46d:C52B", "product", "c52b"),
    ("usb=0x046d:0xc52b", "vendor", "046d"),
    (f"mdev={MDEV.upper()}", "uuid", MDEV),
    (f"mdev={MDEV},model=vfio-ccw", "model", "vfio-ccw"),
])
def test_parse(text: str, field: str, value: object) -> None:
    assert getattr(parse_hostdev(text), field) == value


@pytest.mark.parametrize("text,message", [
    ("pci=1:2", "pci= takes an address such as 0000:01:00.0"),
    ("pci=0000:01:20.0", "PCI slot 20 is above 1f"),
    ("usb=046d", "usb= takes VENDOR:PRODUCT in hex"),
    ("usb=046d:zzzz", "usb= takes VENDOR:PRODUCT in hex"),
    ("mdev=not-a-uuid", "mdev= takes the mediated device's UUID"),
    (f"mdev={MDEV},model=vfio-xyz", "model must be one of vfio-pci, vfio-ccw, vfio-ap"),
    ("pci=01:00.0,usb=1:2", "give exactly one of pci=ADDRESS"),
    ("usb=1:2,rom.bar=on", "rom.bar= is for pci= devices"),
    ("pci=01:00.0,rom.bar=maybe", "rom.bar takes on or off"),
    ("pci=01:00.0,bus=2", "unknown option 'bus'"),
])
def test_parse_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_hostdev(text)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- XML --------------------------------------------------------------------------------------------
def _gen(catalog_of, tmp_path: Path, *texts: str, scenario: str = "demo", plugins: tuple = (), **kw):
    cat = catalog_of(("demo", demo_plugin), *plugins)
    return generate(Request(scenario, "vm1", store_root=tmp_path, identity=Identity(IDENTITY[0], list(IDENTITY[1])),
                            libvirt_version=9_000_000, hostdevs=[parse_hostdev(t) for t in texts], **kw), cat)


def test_hostdev_xml_is_valid_and_in_libvirt_order(catalog_of, tmp_path: Path) -> None:
    gen = _gen(catalog_of, tmp_path, "pci=0000:01:00.0,rom.bar=off", "pci=01:00.1", "usb=046d:c52b",
               f"mdev={MDEV}")
    assert gen.validated
    devices = etree.fromstring(gen.xml).find("devices")
    hostdevs = devices.findall("hostdev")
    assert [(h.get("type"), h.get("managed"), h.get("model")) for h in hostdevs] == [
        ("pci", "yes", None), ("pci", "yes", None), ("usb", None, None), ("mdev", None, "vfio-pci")]
    assert dict(hostdevs[0].find("source/address").attrib) == {"domain": "0x0000", "bus": "0x01", "slot": "0x00",
                                                                "function": "0x0"}
    assert hostdevs[0].find("rom").get("bar") == "off" and hostdevs[1].find("rom") is None
    assert (hostdevs[2].find("source/vendor").get("id"), hostdevs[2].find("source/product").get("id")) == \
        ("0x046d", "0xc52b")
    assert hostdevs[3].find("source/address").get("uuid") == MDEV
    tags = [c.tag for c in devices]
    # libvirt formats hostdevs after videos and before the watchdog, memballoon and rngs.
    assert tags.index("video") < tags.index("hostdev") < tags.index("memballoon")
    reqs = {r.key: r.value for r in gen.host_requirements}
    assert reqs["host.vfio_pci"] == "0000:01:00.0 0000:01:00.1"


def test_no_hostdev_no_requirement(catalog_of, tmp_path: Path) -> None:
    gen = _gen(catalog_of, tmp_path, "usb=046d:c52b")
    assert "host.vfio_pci" not in {r.key for r in gen.host_requirements}


def test_migratable_vm_refuses_host_devices(catalog_of, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _gen(catalog_of, tmp_path, "usb=046d:c52b", cli_settings=[("vm.migratable", "true", "--set")],
             disks=[], schema=None)
    assert str(info.value).startswith("host device USB 046d:c52b is tied to this host: libvirt migrates it only "
                                      "where the destination has a USB 046d:c52b too [rule migratable-vm")
    # The rule cites the libvirt code that decides, not a page that says nothing about host devices.
    assert "qemuMigrationSrcIsAllowedHostdev" in str(info.value)
    assert "see https://gitlab.com/libvirt/libvirt/-/blob/master/src/qemu/qemu_migration.c]" in str(info.value)
    with pytest.raises(ValidationError) as info:
        _gen(catalog_of, tmp_path, "pci=0000:02:00.0", f"mdev={MDEV}", cli_settings=[("vm.migratable", "true",
                                                                                      "--set")], disks=[],
             schema=None)
    assert str(info.value).startswith("host device PCI 0000:02:00.0 is tied to this host: libvirt refuses to "
                                      "migrate a domain with <hostdev type='pci'> [rule migratable-vm")
    assert "host device mdev " + MDEV + " is tied to this host: libvirt refuses to migrate a domain with " \
        "<hostdev type='mdev'>" in info.value.problems[1]


def test_securevm_refuses_host_devices_with_the_reason(catalog_of, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _gen(catalog_of, tmp_path, "pci=0000:02:00.0", scenario="securevm",
             plugins=(("securevm", virtscenario_securevm),))
    text = str(info.value)
    assert text.startswith("sev guests cannot use host devices (PCI 0000:02:00.0): the device's DMA reaches "
                           "only memory the guest shares with the host [rule confidential-guest-host-devices")
    assert "all DMA of an SEV guest must use shared memory" in text
    assert "https://docs.kernel.org/arch/x86/amd-memory-encryption.html" in text


# -- checks on fake hosts -----------------------------------------------------------------------------
def test_clean_group(host: HostRoot) -> None:
    notes = check(host, "pci=0000:02:00.0")
    assert notes == ["0000:02:00.0 (Ethernet controller 8086:1533, driver igb): the host driver loses it; libvirt "
                     "(managed='yes') binds it to vfio-pci when the VM starts and back when it stops, 'virtscenario "
                     "host apply' binds it now"]


def test_group_shared_with_another_endpoint(host: HostRoot) -> None:
    assert refusal(host, "pci=pci_0000_01_00_0") == (
        "--hostdev pci=pci_0000_01_00_0: IOMMU group 1 of 0000:01:00.0 also holds 0000:01:00.1 (audio device "
        "10de:10f0, driver snd_hda_intel): VFIO assigns whole groups, so give it to this VM too "
        "(--hostdev pci=0000:01:00.1)")
    assert len(check(host, "pci=0000:01:00.0", "pci=0000:01:00.1")) == 2  # both: accepted


def test_group_with_a_bridge(host: HostRoot) -> None:
    # The NVMe shares group 3 with its PCIe root port: the port stays with the host.
    assert check(host, "pci=0000:04:00.0")
    assert refusal(host, "pci=0000:00:1d.0") == ("--hostdev pci=0000:00:1d.0: 0000:00:1d.0 is a PCI bridge: only "
                                                  "endpoint devices can be passed through")


def test_iommu_off(tmp_path: Path) -> None:
    off = variant(tmp_path, iommu=False)
    assert refusal(off, "pci=0000:02:00.0") == (
        "--hostdev pci=0000:02:00.0: the IOMMU is off on this host (/sys/kernel/iommu_groups is empty): boot with "
        "intel_iommu=on iommu=pt")
    # USB passthrough goes through QEMU's libusb, not VFIO: no IOMMU needed.
    assert check(off, "usb=046d:c52b") == []


def test_amd_iommu_advice_has_no_amd_iommu_on(tmp_path: Path) -> None:
    root = fakedevices.add(fakedevices.fakehost.build(tmp_path / "amd", fakedevices.fakehost.amd_sev()),
                           dataclasses.replace(fakedevices.WORKSTATION, iommu=False))
    assert refusal(HostRoot(root), "pci=0000:02:00.0").endswith(
        "enable AMD-Vi (IOMMU) in the firmware setup, Linux turns it on by itself then (amd_iommu has no 'on' "
        "value), and boot with iommu=pt")


def test_host_essentials_are_refused(host: HostRoot) -> None:
    assert refusal(host, "pci=0000:00:17.0") == ("--hostdev pci=0000:00:17.0: 0000:00:17.0 is the controller of the "
                                                  "host's boot disk /dev/sda2 (/)")
    assert refusal(host, "pci=0000:00:02.0") == ("--hostdev pci=0000:00:02.0: 0000:00:02.0 is the host's console "
                                                  "GPU (boot_vga is 1)")
    assert refusal(host, "pci=0000:09:00.0") == ("--hostdev pci=0000:09:00.0: no PCI device 0000:09:00.0 on this "
                                                  "host (/sys/bus/pci/devices/0000:09:00.0)")


def test_console_gpu_found_through_fb0_says_so(tmp_path: Path) -> None:
    # The GPU that drives fb0 while boot_vga says 0 (a second GPU the firmware did not pick, say).
    pci = [dataclasses.replace(p, boot_vga=False) if p.address == "0000:00:02.0" else p
           for p in fakedevices.WORKSTATION.pci]
    fb = variant(tmp_path, pci=pci)
    os.makedirs(fb.path("/sys/class/graphics/fb0"))
    os.symlink(os.path.relpath(fb.path(fakedevices.device_dir(fakedevices.WORKSTATION, "0000:00:01.0") +
                                       "/0000:01:00.0"), fb.path("/sys/class/graphics/fb0")),
               fb.path("/sys/class/graphics/fb0/device"))
    assert refusal(fb, "pci=0000:01:00.0", "pci=0000:01:00.1") == (
        "--hostdev pci=0000:01:00.0: 0000:01:00.0 is the host's console GPU (the console framebuffer "
        "/sys/class/graphics/fb0 is on it)")
    assert check(fb, "pci=0000:00:02.0") == [
        "0000:00:02.0 (VGA controller 8086:3e92, driver i915): the host driver loses it; libvirt (managed='yes') "
        "binds it to vfio-pci when the VM starts and back when it stops, 'virtscenario host apply' binds it now"]


def test_isa_bridge_is_no_endpoint_and_holds_its_group_back(tmp_path: Path) -> None:
    lpc = fakedevices.Pci("0000:00:1f.0", 0x060100, device="a30e", driver="lpc_ich", group=8)
    audio = fakedevices.Pci("0000:00:1f.3", 0x040300, device="a348", driver="snd_hda_intel", group=8)
    smbus = fakedevices.Pci("0000:00:1f.4", 0x0c0500, device="a323", driver=None, group=8)
    other = fakedevices.Pci("0000:00:1e.0", 0x068000, device="a328", driver=None, group=9)  # 'other bridge'
    nic = fakedevices.Pci("0000:03:00.0", 0x020000, device="10d3", driver="e1000e", group=9)
    chipset = variant(tmp_path, pci=[*fakedevices.WORKSTATION.pci, lpc, audio, smbus, other, nic])
    assert refusal(chipset, "pci=0000:00:1f.0") == ("--hostdev pci=0000:00:1f.0: 0000:00:1f.0 is an ISA bridge: "
                                                    "only endpoint devices can be passed through")
    assert refusal(chipset, "pci=0000:00:1e.0") == ("--hostdev pci=0000:00:1e.0: 0000:00:1e.0 is a bridge: only "
                                                    "endpoint devices can be passed through")
    # VFIO needs every device of the group unbound or bound to vfio-pci; lpc_ich keeps the LPC bridge.
    assert refusal(chipset, "pci=0000:00:1f.3", "pci=0000:00:1f.4") == (
        "--hostdev pci=0000:00:1f.3: IOMMU group 8 of 0000:00:1f.3 also holds 0000:00:1f.0 (ISA bridge 8086:a30e, "
        "driver lpc_ich), which cannot go to a VM, and VFIO assigns whole groups (only PCI-to-PCI bridges, PCIe "
        "ports and devices without a driver may stay with the host)")
    # A bridge without a driver may stay with the host, like a PCI-to-PCI bridge.
    assert len(check(chipset, "pci=0000:03:00.0")) == 1
    facts = read_devices(chipset)
    assert sorted(d.address for d in facts.pci if d.is_bridge) == [
        "0000:00:00.0", "0000:00:01.0", "0000:00:1c.4", "0000:00:1d.0", "0000:00:1e.0", "0000:00:1f.0"]


def test_group_holding_the_boot_controller(tmp_path: Path) -> None:
    pci = [dataclasses.replace(p, group=6) if p.address == "0000:02:00.0" else p
           for p in fakedevices.WORKSTATION.pci]
    shared = variant(tmp_path, pci=pci)
    assert refusal(shared, "pci=0000:02:00.0") == (
        "--hostdev pci=0000:02:00.0: IOMMU group 6 of 0000:02:00.0 also holds 0000:00:17.0, the host's boot disk "
        "controller, and VFIO assigns whole groups")


def test_boot_disk_on_lvm_is_found_through_device_mapper(tmp_path: Path) -> None:
    root = fakedevices.host(tmp_path / "lvm", mounts=("/dev/mapper/vg-root / ext4 rw 0 0",))
    (root / "dev/mapper").mkdir(parents=True)
    os.symlink("../dm-0", root / "dev/mapper/vg-root")
    (root / "sys/devices/virtual/block/dm-0/slaves").mkdir(parents=True)
    os.symlink("../../devices/virtual/block/dm-0", root / "sys/class/block/dm-0")
    os.symlink("../../../../../class/block/sda2", root / "sys/devices/virtual/block/dm-0/slaves/sda2")
    facts = read_devices(HostRoot(root))
    assert facts.boot_disk == "/dev/mapper/vg-root (/)"
    assert refusal(HostRoot(root), "pci=0000:00:17.0").endswith("is the controller of the host's boot disk "
                                                                "/dev/mapper/vg-root (/)")


def test_root_from_the_kernel_command_line(tmp_path: Path) -> None:
    root = fakedevices.host(tmp_path / "uuid", mounts=("/dev/root / ext4 rw 0 0",),
                            cmdline="BOOT_IMAGE=/vmlinuz root=UUID=1234-abcd ro")
    (root / "dev/disk/by-uuid").mkdir(parents=True)
    os.symlink("../../sda2", root / "dev/disk/by-uuid/1234-abcd")
    assert read_devices(HostRoot(root)).boot_disk == "/dev/disk/by-uuid/1234-abcd (/)"


def test_usb_and_mdev_checks(host: HostRoot) -> None:
    assert check(host, "usb=046d:c52b", f"mdev={MDEV}") == []
    assert refusal(host, "usb=0781:5581") == ("--hostdev usb=0781:5581: 2 USB devices are 0781:5581 (bus 1 device "
                                              "3, bus 1 device 4): libvirt needs exactly one")
    assert refusal(host, "usb=1d6b:0002") == "--hostdev usb=1d6b:0002: USB 1d6b:0002 (bus 1 device 1) is a hub"
    assert "no USB device 1234:5678 on this host" in refusal(host, "usb=1234:5678")
    assert refusal(host, f"mdev={MDEV},model=vfio-ccw") == (f"--hostdev mdev={MDEV},model=vfio-ccw: mediated device "
                                                            f"{MDEV} is a vfio-pci device: give model=vfio-pci")
    assert refusal(host, "usb=046d:c52b", "usb=46d:c52b") == ("--hostdev usb=46d:c52b: the same device is given "
                                                               "twice")


# -- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def run(run_cli):
    return run_cli(make_pm(("demo", demo_plugin), ("host_tuning", virtscenario_host_tuning)))


def test_create_refuses_before_writing_anything(run, host: HostRoot, tmp_path: Path) -> None:
    store = tmp_path / "store"
    code, out, err = run("--host-root", str(host.root), "create", "demo", "--name", "g", "--output", str(store),
                         "--hostdev", "pci=0000:01:00.0")
    assert code == 1 and err.startswith("Error: --hostdev pci=0000:01:00.0: IOMMU group 1") and err.count("\n") == 1
    assert not store.exists()
    code, out, err = run("--host-root", str(host.root), "create", "demo", "--name", "g", "--output", str(store),
                         "--hostdev", "pci=0000:01:00.0", "--hostdev", "pci=0000:01:00.1", "--disk", "none",
                         "--explain")
    assert code == 0, err
    xml = etree.parse(str(store / "g" / "domain.xml"))
    assert len(xml.findall("devices/hostdev")) == 2
    assert "vfio-pci 0000:01:00.0" in out  # the host plan create prints binds it


def test_remote_connect_skips_the_local_checks(run, tmp_path: Path) -> None:
    from virtscenario.vm.networks import is_local
    assert is_local("qemu:///system") and is_local("qemu+tcp://127.0.0.1/system")
    assert not is_local("qemu+ssh://root@kvm7.example.org/system")


def test_host_devices_lists_every_device_with_its_verdict(run, host: HostRoot) -> None:
    code, out, err = run("--host-root", str(host.root), "host", "devices", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["iommu"] is True and data["boot_disk"] == "/dev/sda2 (/)"
    pci = {p["address"]: p for p in data["pci"]}
    assert (pci["0000:02:00.0"]["passthrough"], pci["0000:02:00.0"]["with"]) == (True, [])
    assert (pci["0000:01:00.0"]["passthrough"], pci["0000:01:00.0"]["with"]) == (True, ["0000:01:00.1"])
    assert (pci["0000:04:00.0"]["passthrough"], pci["0000:04:00.0"]["iommu_group"]) == (True, 3)
    assert pci["0000:00:17.0"]["reason"] == "0000:00:17.0 is the controller of the host's boot disk /dev/sda2 (/)"
    assert pci["0000:00:02.0"]["passthrough"] is False and pci["0000:01:00.0"]["nodedev"] == "pci_0000_01_00_0"
    assert pci["0000:01:00.0"]["class"] == "0x030000" and pci["0000:01:00.0"]["driver"] == "nouveau"
    usb = {u["name"]: u for u in data["usb"]}
    assert usb["usb1"]["passthrough"] is False and usb["1-2"]["passthrough"] is True
    assert data["mdev"] == [{"uuid": MDEV, "parent": "0000:01:00.0", "type": "nvidia-63", "device_api": "vfio-pci"}]
    code, out, err = run("--host-root", str(host.root), "host", "devices")
    assert code == 0 and "IOMMU on (8 groups)" in out and "together with 0000:01:00.1 (same IOMMU group)" in out


# -- a USB host device on a scenario without a USB controller -------------------------------------
def test_usb_hostdev_on_computation_gets_a_usb_controller_and_libvirt_defines_it(run_cli, host: HostRoot,
                                                                                 tmp_path: Path) -> None:
    import virtscenario_computation

    from tests.integration.conftest import import_libvirt
    run = run_cli(make_pm(("computation", virtscenario_computation)))
    store = tmp_path / "store"
    conn = import_libvirt().open("test:///default")
    try:
        code, out, err = run("--host-root", str(host.root), "create", "computation", "--name", "fixnet-usbhost",
                             "--output", str(store), "--disk", "none", "--network", "none", "--hostdev",
                             "usb=046d:c52b", "--connect", "test:///default", "--define", "--explain")
        assert code == 0, err
        root = etree.fromstring(conn.lookupByName("fixnet-usbhost").XMLDesc(0).encode())
        assert [c.get("model") for c in root.iterfind("devices/controller[@type='usb']")] == ["qemu-xhci"]
        assert root.find("devices/hostdev[@type='usb']/source/vendor").get("id") == "0x046d"
        # Why computation's "no USB controller" was overridden, in the notes and in the settings table.
        said = " ".join((out + err).split())
        assert ("usb.controller=qemu-xhci for --hostdev usb=046d:c52b, not the scenario value none: a USB host "
                "device needs a USB controller (libvirt refuses it while USB is disabled)") in said
        row = next(line for line in out.splitlines() if line.startswith("usb.controller"))
        assert row.split()[1:3] == ["qemu-xhci", "adapted"]
    finally:
        try:
            conn.lookupByName("fixnet-usbhost").undefine()
        except Exception:  # noqa: BLE001 - not defined when the test failed early
            pass
        conn.close()


def test_usb_hostdev_with_usb_controller_none_set_by_the_user_is_refused(run_cli, host: HostRoot,
                                                                         tmp_path: Path) -> None:
    import virtscenario_computation
    run = run_cli(make_pm(("computation", virtscenario_computation)))
    store = tmp_path / "store"
    code, out, err = run("--host-root", str(host.root), "create", "computation", "--name", "g", "--output",
                         str(store), "--disk", "none", "--hostdev", "usb=046d:c52b", "--set", "usb.controller=none")
    assert (code, err) == (1, "Error: --hostdev usb=046d:c52b: a USB host device needs a USB controller, but "
                              "usb.controller=none (flag --set usb.controller): drop one of them\n")
    assert not store.exists()


def test_rule_catches_a_usb_hostdev_behind_a_disabled_usb_bus(catalog_of, tmp_path: Path) -> None:
    from virtscenario.domain.model import Controller
    from virtscenario.plugin.builtin.rules import RULES
    rule = next(r for r in RULES if r.name == "usb-hostdev-needs-controller")
    gen = _gen(catalog_of, tmp_path, "usb=046d:c52b", "pci=0000:01:00.0")
    assert list(rule.check(gen.domain, gen.settings)) == []
    # What a customize_model hook (or a hand-made model) could do after the core adapted the controller.
    gen.domain.devices.controllers = [c for c in gen.domain.devices.controllers if c.type != "usb"] + \
        [Controller("usb", model="none", index=0)]
    assert list(rule.check(gen.domain, gen.settings)) == [
        "host device USB 046d:c52b needs a USB controller, but the USB controller is model none"]
    assert rule.severity == "error" and rule.reference.endswith("formatdomain.html#usb-controller")
