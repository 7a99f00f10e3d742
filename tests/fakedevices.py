"""Fake PCI, USB and mediated devices with IOMMU groups, added to a fake host tree (tests/host_tuning/fakehost.py).

The layout is the kernel's: real directories under ``/sys/devices/pci0000:00/...``,
relative links from ``/sys/bus/pci/devices``, ``iommu_group`` and ``driver`` links,
``/sys/kernel/iommu_groups/N/devices`` links back, ``/sys/class/block`` links for the
disk that holds ``/``. :func:`workstation` is a machine with the four group shapes
the passthrough checks tell apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.host_tuning import fakehost


@dataclass
class Pci:
    address: str
    class_code: int
    vendor: str = "8086"
    device: str = "1234"
    driver: Optional[str] = None
    group: Optional[int] = None
    parent: Optional[str] = None  # the bridge above it
    boot_vga: Optional[bool] = None
    numa_node: int = -1


@dataclass
class Usb:
    name: str  # 1-2
    vendor: str
    product: str
    devnum: int
    device_class: int = 0
    product_name: str = ""


@dataclass
class Mdev:
    uuid: str
    parent: str
    type_name: str = "nvidia-63"
    device_api: str = "vfio-pci"


@dataclass
class Devices:
    pci: list[Pci]
    usb: list[Usb] = field(default_factory=list)
    usb_controller: str = "0000:00:14.0"
    mdevs: list[Mdev] = field(default_factory=list)
    iommu: bool = True
    boot_controller: Optional[str] = "0000:00:17.0"  # SATA controller holding sda (sda2 is /)
    drivers: tuple[str, ...] = ("vfio-pci",)  # loaded drivers with no device (vfio-pci: module loaded)


#: GPU + its HDMI audio in group 1 (shared with another endpoint), a NIC alone in group 2 (clean),
#: an NVMe behind a PCIe root port in group 3 (a group with a bridge), the boot SATA controller,
#: the console GPU, a USB controller with a hub, a keyboard and two identical sticks.
WORKSTATION = Devices(
    pci=[
        Pci("0000:00:00.0", 0x060000, device="3e0f", group=0),
        Pci("0000:00:01.0", 0x060400, device="1901", driver="pcieport", group=1),
        Pci("0000:01:00.0", 0x030000, "10de", "1b80", driver="nouveau", group=1, parent="0000:00:01.0",
            boot_vga=False, numa_node=0),
        Pci("0000:01:00.1", 0x040300, "10de", "10f0", driver="snd_hda_intel", group=1, parent="0000:00:01.0"),
        Pci("0000:00:02.0", 0x030000, device="3e92", driver="i915", group=4, boot_vga=True),
        Pci("0000:02:00.0", 0x020000, device="1533", driver="igb", group=2, parent="0000:00:1c.4"),
        Pci("0000:00:1c.4", 0x060400, device="a33c", driver="pcieport", group=5),
        Pci("0000:00:1d.0", 0x060400, device="a330", driver="pcieport", group=3),
        Pci("0000:04:00.0", 0x010802, "144d", "a808", driver="nvme", group=3, parent="0000:00:1d.0"),
        Pci("0000:00:17.0", 0x010601, device="a352", driver="ahci", group=6),
        Pci("0000:00:14.0", 0x0c0330, device="a36d", driver="xhci_hcd", group=7),
    ],
    usb=[Usb("usb1", "1d6b", "0002", 1, device_class=0x09, product_name="xHCI Host Controller"),
         Usb("1-2", "046d", "c52b", 2, product_name="USB Receiver"),
         Usb("1-3", "0781", "5581", 3, product_name="Ultra"),
         Usb("1-4", "0781", "5581", 4, product_name="Ultra")],
    mdevs=[Mdev("c2177883-f1bb-47f0-914d-32a22e3a8804", "0000:01:00.0")],
)


def _rel_link(root: Path, link: str, target: str) -> None:
    """A relative symlink at host path ``link`` to host path ``target`` (as sysfs has them)."""
    link_path = root / link.lstrip("/")
    link_path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / target.lstrip("/"), link_path.parent), link_path)


def _put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def device_dir(devs: Devices, address: str) -> str:
    chain = [address]
    by_addr = {p.address: p for p in devs.pci}
    while by_addr.get(chain[-1]) is not None and by_addr[chain[-1]].parent:
        chain.append(by_addr[chain[-1]].parent or "")
    return "/sys/devices/pci0000:00/" + "/".join(reversed(chain))


def add(root: Path, devs: Devices) -> Path:
    """Add ``devs`` to the fake host tree at ``root``."""
    _put(root, "/sys/bus/pci/drivers_probe", "")
    drivers = {p.driver for p in devs.pci if p.driver} | set(devs.drivers)
    for name in drivers:
        for attr in ("bind", "unbind", "new_id"):
            _put(root, f"/sys/bus/pci/drivers/{name}/{attr}", "")
    (root / "sys/kernel/iommu_groups").mkdir(parents=True, exist_ok=True)
    for pci in devs.pci:
        path = device_dir(devs, pci.address)
        _put(root, f"{path}/vendor", f"0x{pci.vendor}\n")
        _put(root, f"{path}/device", f"0x{pci.device}\n")
        _put(root, f"{path}/class", f"0x{pci.class_code:06x}\n")
        _put(root, f"{path}/driver_override", "(null)\n")
        _put(root, f"{path}/numa_node", f"{pci.numa_node}\n")
        if pci.boot_vga is not None:
            _put(root, f"{path}/boot_vga", "1\n" if pci.boot_vga else "0\n")
        _rel_link(root, f"/sys/bus/pci/devices/{pci.address}", path)
        if pci.driver:
            _rel_link(root, f"{path}/driver", f"/sys/bus/pci/drivers/{pci.driver}")
            _rel_link(root, f"/sys/bus/pci/drivers/{pci.driver}/{pci.address}", path)
        if devs.iommu and pci.group is not None:
            _rel_link(root, f"{path}/iommu_group", f"/sys/kernel/iommu_groups/{pci.group}")
            _rel_link(root, f"/sys/kernel/iommu_groups/{pci.group}/devices/{pci.address}", path)
    if devs.boot_controller:
        disk = f"{device_dir(devs, devs.boot_controller)}/ata1/host0/target0:0:0/0:0:0:0/block/sda"
        _put(root, f"{disk}/sda2/partition", "2\n")
        _rel_link(root, "/sys/class/block/sda", disk)
        _rel_link(root, "/sys/class/block/sda2", f"{disk}/sda2")
    usb_root = f"{device_dir(devs, devs.usb_controller)}/usb1"
    for usb in devs.usb:
        path = usb_root if usb.name == "usb1" else f"{usb_root}/{usb.name}"
        for attr, value in (("idVendor", usb.vendor), ("idProduct", usb.product), ("busnum", "1"),
                            ("devnum", str(usb.devnum)), ("bDeviceClass", f"{usb.device_class:02x}"),
                            ("product", usb.product_name)):
            _put(root, f"{path}/{attr}", value + "\n")
        _rel_link(root, f"/sys/bus/usb/devices/{usb.name}", path)
    for mdev in devs.mdevs:
        path = f"{device_dir(devs, mdev.parent)}/{mdev.uuid}"
        type_dir = f"{device_dir(devs, mdev.parent)}/mdev_supported_types/{mdev.type_name}"
        _put(root, f"{type_dir}/device_api", mdev.device_api + "\n")
        _rel_link(root, f"{path}/mdev_type", type_dir)
        _rel_link(root, f"/sys/bus/mdev/devices/{mdev.uuid}", path)
    return root


def host(root: Path, devs: Devices = WORKSTATION, **spec: object) -> Path:
    """A complete fake Intel host (fakehost.intel) with ``devs``."""
    return add(fakehost.build(root, fakehost.intel(**spec)), devs)


def snapshot(root: Path) -> dict[str, object]:
    """Every file's bytes and mode, every directory, and every symlink's target under ``root``
    (driver bindings are links, which fakehost.snapshot does not follow)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[f"dir:{rel}"] = True
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = os.path.join(rel, name)
            if path.is_symlink():
                out[f"link:{key}"] = os.readlink(path)
            elif path.is_file():
                out[f"file:{key}"] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return out
