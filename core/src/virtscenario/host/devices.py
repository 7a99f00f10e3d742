"""Host devices a VM can be given (PCI, USB, mediated), read from sysfs through a HostRoot.

What passthrough depends on, and where the kernel shows it:

* the IOMMU: ``/sys/kernel/iommu_groups`` has one directory per group only when an
  IOMMU is enabled;
* a PCI device's group: ``/sys/bus/pci/devices/ADDR/iommu_group`` (a link) and every
  member in ``/sys/kernel/iommu_groups/N/devices``. VFIO hands out whole groups: a group is
  usable only when its other endpoints go to the same VM (bridges and root ports may stay
  with the host);
* what the host cannot lose: the controller of the disk that holds ``/`` (``/proc/mounts``,
  ``/sys/class/block/NAME`` links, device-mapper ``slaves``) and the console GPU
  (``boot_vga`` = 1, or the device behind ``/sys/class/graphics/fb0``);
* the driver: the ``driver`` link;
* bridges (PCI class 06: host, ISA/LPC, PCI-to-PCI...) are no endpoints and never go to a VM.
  In a group that goes to a VM, VFIO lets a PCI interconnect device (a bridge header:
  PCI-to-PCI, CardBus), a device without a driver or one bound to pcieport stay with the
  host (drivers/vfio group viability); an ISA/LPC bridge bound to its driver (lpc_ich) is
  none of these, so its group cannot be passed through.

Nothing here changes the host; the host tuning plugin binds devices to vfio-pci.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional

from ..records import FrozenRecord, frozen_record

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.sections.hostdevs import HostDevArg
    from .root import HostRoot

PCI_DIR = "/sys/bus/pci/devices"
USB_DIR = "/sys/bus/usb/devices"
MDEV_DIR = "/sys/bus/mdev/devices"
GROUPS_DIR = "/sys/kernel/iommu_groups"
KERNEL_VFIO = "https://docs.kernel.org/driver-api/vfio.html"
PCI_ADDRESS = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")

#: PCI base classes (the class code's top byte), as lspci names them.
PCI_CLASSES = {
    0x00: "unclassified", 0x01: "storage controller", 0x02: "network controller", 0x03: "display controller",
    0x04: "multimedia controller", 0x05: "memory controller", 0x06: "bridge", 0x07: "communication controller",
    0x08: "system peripheral", 0x09: "input device", 0x0a: "docking station", 0x0b: "processor",
    0x0c: "serial bus controller", 0x0d: "wireless controller", 0x0e: "intelligent controller",
    0x0f: "satellite controller", 0x10: "encryption controller", 0x11: "signal processing controller",
    0x12: "processing accelerator", 0xff: "unassigned class",
}
PCI_SUBCLASSES = {0x0600: "host bridge", 0x0601: "ISA bridge", 0x0604: "PCI bridge", 0x0607: "CardBus bridge",
                  0x0609: "PCI bridge", 0x0c03: "USB controller",
                  0x0106: "SATA controller", 0x0108: "NVMe controller", 0x0300: "VGA controller",
                  0x0403: "audio device", 0x0200: "Ethernet controller"}


@frozen_record
class PciDevice(FrozenRecord):
    address: str  # 0000:01:00.0
    vendor: str  # 10de (hex, no 0x)
    device: str
    class_code: int  # 0x030000
    driver: Optional[str]
    group: Optional[int]
    boot_vga: bool
    numa_node: Optional[int]
    path: str  # /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0

    @property
    def kind(self) -> str:
        return PCI_SUBCLASSES.get(self.class_code >> 8) or PCI_CLASSES.get(self.class_code >> 16, "device")

    @property
    def is_bridge(self) -> bool:
        """A bridge of any kind (PCI class 06: host, ISA/LPC, PCI-to-PCI, other) or a PCIe port: no
        endpoint, so never passed through."""
        return self.class_code >> 16 == 0x06 or self.driver == "pcieport"

    @property
    def stays_with_host(self) -> bool:
        """Whether VFIO lets this bridge stay with the host while the rest of its IOMMU group goes to a VM:
        a bridge header (PCI-to-PCI 0604/0609, CardBus 0607), a PCIe port, or no driver bound (a host
        bridge, usually). An ISA/LPC bridge with its driver is an ordinary device to VFIO."""
        return self.is_bridge and (self.class_code >> 8 in (0x0604, 0x0607, 0x0609) or self.driver in
                                   (None, "pcieport", "pci-stub", "vfio-pci"))

    @property
    def nodedev(self) -> str:
        """The name ``virsh nodedev-list`` gives it: pci_0000_01_00_0."""
        return "pci_" + re.sub(r"[:.]", "_", self.address)


@frozen_record
class UsbDevice(FrozenRecord):
    name: str  # 1-2 (bus-port)
    vendor: str  # 046d
    product: str
    busnum: int
    devnum: int
    device_class: int  # bDeviceClass (9: hub)
    description: str
    path: str


@frozen_record
class MdevDevice(FrozenRecord):
    uuid: str
    parent: str
    type_name: str
    device_api: str  # vfio-pci, vfio-ccw, vfio-ap


@frozen_record
class HostDevices(FrozenRecord):
    """Everything passthrough checks need, read once."""

    pci: tuple[PciDevice, ...]
    usb: tuple[UsbDevice, ...]
    mdevs: tuple[MdevDevice, ...]
    groups: dict[int, tuple[str, ...]]
    iommu: bool
    cpu_vendor: str  # GenuineIntel, AuthenticAMD, ...
    boot_disk: str  # "/dev/sda2 (/)" or "" when unknown
    boot_paths: tuple[str, ...]  # resolved sysfs paths of the disks that hold /
    console_fb: str  # resolved sysfs path of fb0's device, or ""

    def pci_device(self, address: str) -> Optional[PciDevice]:
        """The PCI device at ``address`` (``0000:01:00.0``), or None."""
        return next((d for d in self.pci if d.address == address), None)

    def controls_boot_disk(self, path: str) -> bool:
        """Whether the device at sysfs ``path`` is the nearest PCI (or the USB) device above the root disk."""
        for disk in self.boot_paths:
            if disk.startswith(path + "/"):
                rest = disk[len(path) + 1:].split("/")
                if not any(PCI_ADDRESS.match(part) for part in rest):
                    return True
        return False

    def is_console_gpu(self, dev: PciDevice) -> bool:
        """Whether ``dev`` drives the host's console (``boot_vga``, or the device behind fb0)."""
        return dev.boot_vga or (bool(self.console_fb) and self.console_fb == dev.path)

    def iommu_advice(self) -> str:
        """The kernel command line that turns the IOMMU on, for this CPU vendor."""
        if self.cpu_vendor == "AuthenticAMD":
            return ("enable AMD-Vi (IOMMU) in the firmware setup, Linux turns it on by itself then (amd_iommu has "
                    "no 'on' value), and boot with iommu=pt")
        return "boot with intel_iommu=on iommu=pt" if self.cpu_vendor == "GenuineIntel" else \
            "boot with intel_iommu=on iommu=pt (Intel) or enable AMD-Vi in the firmware (AMD)"


# -- reading ----------------------------------------------------------------------------------------
def _resolve(host: HostRoot, host_path: str) -> Optional[str]:
    """The host path ``host_path`` leads to after following links; None when it leaves a fake root."""
    real = os.path.realpath(host.path(host_path))
    if host.root is None:
        return real
    root = str(host.root)
    if real != root and not real.startswith(root + "/"):
        return None
    return "/" + os.path.relpath(real, root) if real != root else "/"


def _read(host: HostRoot, host_path: str) -> str:
    return host.read(host_path, "").strip()


def _link_name(host: HostRoot, host_path: str) -> Optional[str]:
    try:
        return os.path.basename(os.readlink(host.path(host_path)))
    except OSError:
        return None


def _hex(text: str) -> str:
    return text.lower().removeprefix("0x").strip()


def read_devices(host: HostRoot) -> HostDevices:
    """PCI, USB and mediated devices of ``host`` (through its HostRoot, so --host-root works), with IOMMU
    groups, the disks that hold ``/`` and the console's framebuffer device, read once."""
    groups: dict[int, tuple[str, ...]] = {}
    for name in host.listdir(GROUPS_DIR):
        if name.isdigit():
            groups[int(name)] = tuple(host.listdir(f"{GROUPS_DIR}/{name}/devices"))
    pci = tuple(_pci(host, addr) for addr in host.listdir(PCI_DIR) if PCI_ADDRESS.match(addr))
    usb = tuple(u for u in (_usb(host, name) for name in host.listdir(USB_DIR) if ":" not in name) if u)
    mdevs = tuple(_mdev(host, uuid) for uuid in host.listdir(MDEV_DIR))
    vendor = ""
    for line in host.read("/proc/cpuinfo", "").splitlines():
        if line.startswith("vendor_id"):
            vendor = line.split(":", 1)[1].strip()
            break
    boot_disk, boot_paths = _boot_disk(host)
    console = _resolve(host, "/sys/class/graphics/fb0/device") if host.exists("/sys/class/graphics/fb0/device") \
        else None
    return HostDevices(pci, usb, mdevs, groups, bool(groups), vendor, boot_disk, boot_paths, console or "")


def _pci(host: HostRoot, addr: str) -> PciDevice:
    base = f"{PCI_DIR}/{addr}"
    group = _link_name(host, f"{base}/iommu_group")
    numa = _read(host, f"{base}/numa_node")
    try:
        class_code = int(_read(host, f"{base}/class") or "0", 16)
    except ValueError:
        class_code = 0
    return PciDevice(addr, _hex(_read(host, f"{base}/vendor")), _hex(_read(host, f"{base}/device")), class_code,
                     _link_name(host, f"{base}/driver"), int(group) if group and group.isdigit() else None,
                     _read(host, f"{base}/boot_vga") == "1",
                     int(numa) if numa.lstrip("-").isdigit() and int(numa) >= 0 else None,
                     _resolve(host, base) or base)


def _usb(host: HostRoot, name: str) -> Optional[UsbDevice]:
    base = f"{USB_DIR}/{name}"
    vendor = _hex(_read(host, f"{base}/idVendor"))
    if not vendor:
        return None
    words = [_read(host, f"{base}/{f}") for f in ("manufacturer", "product")]

    def number(field: str, radix: int = 10) -> int:
        try:
            return int(_read(host, f"{base}/{field}") or "0", radix)
        except ValueError:
            return 0
    return UsbDevice(name, vendor, _hex(_read(host, f"{base}/idProduct")), number("busnum"), number("devnum"),
                     number("bDeviceClass", 16), " ".join(w for w in words if w), _resolve(host, base) or base)


def _mdev(host: HostRoot, uuid: str) -> MdevDevice:
    base = f"{MDEV_DIR}/{uuid}"
    resolved = _resolve(host, base) or ""
    parent = os.path.basename(os.path.dirname(resolved)) if resolved else ""
    return MdevDevice(uuid, parent, _link_name(host, f"{base}/mdev_type") or "",
                      _read(host, f"{base}/mdev_type/device_api"))


def _boot_disk(host: HostRoot) -> tuple[str, tuple[str, ...]]:
    """The block device that holds / and the sysfs paths of the whole disks under it."""
    source = ""
    for line in host.read("/proc/mounts", "").splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == "/":
            source = parts[0]  # the last mount on / is the visible one
    if not source.startswith("/dev/") or source == "/dev/root":
        for arg in host.read("/proc/cmdline", "").split():
            if arg.startswith("root="):
                source = _root_arg(arg[5:])
    if not source.startswith("/dev/"):
        return "", ()
    real = _resolve(host, source) or source
    paths = _disk_paths(host, os.path.basename(real), 0)
    return (f"{source} (/)" if paths else ""), paths


def _root_arg(value: str) -> str:
    for prefix, directory in (("UUID=", "by-uuid"), ("PARTUUID=", "by-partuuid"), ("LABEL=", "by-label")):
        if value.startswith(prefix):
            return f"/dev/disk/{directory}/{value[len(prefix):]}"
    return value


def _disk_paths(host: HostRoot, name: str, depth: int) -> tuple[str, ...]:
    base = f"/sys/class/block/{name}"
    if depth > 8 or not host.exists(base):
        return ()
    slaves = host.listdir(f"{base}/slaves")
    if slaves:  # device-mapper, md: the disks underneath
        return tuple(p for s in slaves for p in _disk_paths(host, s, depth + 1))
    path = _resolve(host, base)
    if path is None:
        return ()
    if host.exists(f"{base}/partition"):
        path = os.path.dirname(path)
    return (path,)


# -- checks -----------------------------------------------------------------------------------------
def describe(dev: PciDevice) -> str:
    driver = f", driver {dev.driver}" if dev.driver else ", no driver"
    return f"{dev.address} ({dev.kind} {dev.vendor}:{dev.device}{driver})"


def _console_evidence(dev: PciDevice, facts: HostDevices) -> str:
    """How ``dev`` was found to be the console GPU, for the refusal."""
    seen = ["boot_vga is 1"] if dev.boot_vga else []
    if facts.console_fb and facts.console_fb == dev.path:
        seen.append("the console framebuffer /sys/class/graphics/fb0 is on it")
    return ", and ".join(seen)


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeio" or kind.startswith("ISA") else "a"


def pci_problems(dev: PciDevice, facts: HostDevices, given: frozenset[str] = frozenset()) -> list[str]:
    """Why ``dev`` cannot go to a VM that also gets the PCI devices ``given``; empty when it can."""
    if dev.is_bridge:
        return [f"{dev.address} is {_article(dev.kind)} {dev.kind}: only endpoint devices can be passed through"]
    if facts.controls_boot_disk(dev.path):
        return [f"{dev.address} is the controller of the host's boot disk {facts.boot_disk}"]
    if facts.is_console_gpu(dev):
        return [f"{dev.address} is the host's console GPU ({_console_evidence(dev, facts)})"]
    if not facts.iommu:
        return [f"the IOMMU is off on this host ({GROUPS_DIR} is empty): {facts.iommu_advice()}"]
    if dev.group is None:
        return [f"{dev.address} has no IOMMU group"]
    problems = []
    for member in facts.groups.get(dev.group, ()):
        other = facts.pci_device(member)
        if member == dev.address or other is None or other.stays_with_host:
            continue
        if other.is_bridge:
            return [f"IOMMU group {dev.group} of {dev.address} also holds {describe(other)}, which cannot go to a VM, "
                    "and VFIO assigns whole groups (only PCI-to-PCI bridges, PCIe ports and devices without a "
                    "driver may stay with the host)"]
        if facts.controls_boot_disk(other.path) or facts.is_console_gpu(other):
            role = "boot disk controller" if facts.controls_boot_disk(other.path) else "console GPU"
            return [f"IOMMU group {dev.group} of {dev.address} also holds {other.address}, the host's {role}, "
                    "and VFIO assigns whole groups"]
        if member not in given:
            problems.append(f"IOMMU group {dev.group} of {dev.address} also holds {describe(other)}: VFIO assigns "
                            f"whole groups, so give it to this VM too (--hostdev pci={member})")
    return problems


def group_partners(dev: PciDevice, facts: HostDevices) -> list[str]:
    """Other endpoints of ``dev``'s IOMMU group (they must go to the same VM)."""
    out = []
    for member in facts.groups.get(dev.group, ()) if dev.group is not None else ():
        other = facts.pci_device(member)
        if member != dev.address and other is not None and not other.is_bridge:
            out.append(member)
    return out


def usb_problems(dev: UsbDevice, facts: HostDevices) -> list[str]:
    if dev.device_class == 0x09:
        return [f"USB {dev.vendor}:{dev.product} (bus {dev.busnum} device {dev.devnum}) is a hub"]
    if facts.controls_boot_disk(dev.path):
        return [f"USB {dev.vendor}:{dev.product} holds the host's boot disk {facts.boot_disk}"]
    return []


def check_hostdevs(specs: list[HostDevArg], facts: HostDevices) -> list[str]:
    """Refuse (one line, naming the --hostdev) what cannot be passed through; return notes for the rest."""
    from ..errors import ConfigError
    given = frozenset(s.address for s in specs if s.type == "pci")
    notes: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        key = spec.identity
        if key in seen:
            raise ConfigError(f"--hostdev {spec.text}: the same device is given twice")
        seen.add(key)
        problems: list[str] = []
        if spec.type == "pci":
            dev = facts.pci_device(spec.address)
            if dev is None:
                problems = [f"no PCI device {spec.address} on this host ({PCI_DIR}/{spec.address})"]
            else:
                problems = pci_problems(dev, facts, given)
                if not problems and dev.driver and dev.driver != "vfio-pci":
                    notes.append(f"{describe(dev)}: the host driver loses it; libvirt (managed='yes') binds it to "
                                 "vfio-pci when the VM starts and back when it stops, 'virtscenario host apply' "
                                 "binds it now")
        elif spec.type == "usb":
            matches = [u for u in facts.usb if (u.vendor, u.product) == (spec.vendor, spec.product)]
            if not matches:
                problems = [f"no USB device {spec.vendor}:{spec.product} on this host ({USB_DIR}/*/idVendor)"]
            elif len(matches) > 1:
                where = ", ".join(f"bus {u.busnum} device {u.devnum}" for u in matches)
                problems = [f"{len(matches)} USB devices are {spec.vendor}:{spec.product} ({where}): libvirt "
                            "needs exactly one"]
            else:
                problems = usb_problems(matches[0], facts)
        else:
            mdev = next((m for m in facts.mdevs if m.uuid == spec.uuid), None)
            if mdev is None:
                problems = [f"no mediated device {spec.uuid} on this host ({MDEV_DIR}): create it through "
                            "/sys/class/mdev_bus/PARENT/mdev_supported_types/TYPE/create"]
            elif mdev.device_api and mdev.device_api != spec.model:
                problems = [f"mediated device {spec.uuid} is a {mdev.device_api} device: give model={mdev.device_api}"]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"--hostdev {spec.text}: {problems[0]}{more}")
    return notes
