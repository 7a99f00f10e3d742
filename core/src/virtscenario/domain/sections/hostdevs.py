"""Host devices given to the VM: PCI (VFIO), USB and mediated devices.

``<devices><hostdev>``, from ``--hostdev`` only (no setting key: a host device is a
fact of one host, not a scenario decision). Parsed here; checked against the host's
sysfs by :mod:`virtscenario.host.devices` before anything is written. PCI devices
also become the host requirement ``host.vfio_pci`` (the addresses), which the host
tuning plugin turns into a vfio-pci binding.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from ...records import FrozenRecord, Record, frozen_record, record
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ...types import Note
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

SPECS = ()
HOSTDEV_DOC = FD + "#host-device-assignment"
USB_CONTROLLER_DOC = FD + "#usb-controller"
VFIO_REQUIREMENT = "host.vfio_pci"
MDEV_MODELS = ("vfio-pci", "vfio-ccw", "vfio-ap")
# Patterns, compiled (and cached by re) only when a --hostdev is parsed: create --print-xml stays cheap.
_PCI = r"^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$"
_NODEDEV = r"^pci_([0-9a-f]{4})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])$"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_HEX_ID = r"^(?:0x)?([0-9a-f]{1,4})$"


@frozen_record
class HostDevArg(FrozenRecord):
    """One ``--hostdev``, normalised: PCI ``0000:01:00.0``, USB ids as 4 hex digits, mdev uuid."""

    type: str  # pci|usb|mdev
    text: str  # the option as given, for messages
    address: str = ""
    vendor: str = ""
    product: str = ""
    uuid: str = ""
    model: str = "vfio-pci"
    rom_bar: Optional[bool] = None

    @property
    def identity(self) -> str:
        return f"pci:{self.address}" if self.type == "pci" else \
            f"usb:{self.vendor}:{self.product}" if self.type == "usb" else f"mdev:{self.uuid}"


def parse_hostdev(text: str) -> HostDevArg:
    """``pci=0000:01:00.0`` (or ``01:00.0``, or the nodedev name ``pci_0000_01_00_0``),
    ``usb=VENDOR:PRODUCT`` (hex), ``mdev=UUID[,model=vfio-pci]``; PCI takes ``rom.bar=on|off``."""
    from ...errors import ConfigError
    from ...settings.cliargs import option_pairs
    opts = option_pairs(text, ("pci", "usb", "mdev", "model", "rom.bar"), "--hostdev")
    kinds = [k for k in ("pci", "usb", "mdev") if k in opts]
    if len(kinds) != 1:
        raise ConfigError(f"--hostdev {text!r}: give exactly one of pci=ADDRESS, usb=VENDOR:PRODUCT or mdev=UUID")
    kind, value = kinds[0], opts[kinds[0]].lower()
    if "model" in opts and kind != "mdev":
        raise ConfigError(f"--hostdev {text!r}: model= is for mdev= devices")
    if "rom.bar" in opts and kind != "pci":
        raise ConfigError(f"--hostdev {text!r}: rom.bar= is for pci= devices")
    if kind == "pci":
        return HostDevArg("pci", text, address=_pci_address(value, text), rom_bar=_onoff(opts.get("rom.bar"), text))
    if kind == "usb":
        ids = [re.match(_HEX_ID, part) for part in value.split(":")]
        if len(ids) != 2 or not all(ids):
            raise ConfigError(f"--hostdev {text!r}: usb= takes VENDOR:PRODUCT in hex, e.g. usb=046d:c52b")
        vendor, product = (m.group(1).rjust(4, "0") for m in ids if m)
        return HostDevArg("usb", text, vendor=vendor, product=product)
    if not re.match(_UUID, value):
        raise ConfigError(f"--hostdev {text!r}: mdev= takes the mediated device's UUID")
    model = opts.get("model", "vfio-pci")
    if model not in MDEV_MODELS:
        raise ConfigError(f"--hostdev {text!r}: model must be one of {', '.join(MDEV_MODELS)}")
    return HostDevArg("mdev", text, uuid=value, model=model)


def _pci_address(value: str, text: str) -> str:
    from ...errors import ConfigError
    match = re.match(_NODEDEV, value) or re.match(_PCI, value)
    if not match:
        raise ConfigError(f"--hostdev {text!r}: pci= takes an address such as 0000:01:00.0 (or 01:00.0, or the "
                          "nodedev name pci_0000_01_00_0)")
    domain, bus, slot, function = match.groups()
    if int(slot, 16) > 0x1f:
        raise ConfigError(f"--hostdev {text!r}: PCI slot {slot} is above 1f")
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(slot, 16):02x}.{function}"


def _onoff(value: Optional[str], text: str) -> Optional[bool]:
    from ...errors import ConfigError
    if value is None:
        return None
    if value not in ("on", "off"):
        raise ConfigError(f"--hostdev {text!r}: rom.bar takes on or off")
    return value == "on"


def fit_usb_controller(settings: Settings, hostdevs: list[HostDevArg], notes: list[Note]) -> Settings:
    """A USB host device needs a USB controller: ``usb.controller=none`` from a scenario (computation's
    "nothing to plug in") becomes qemu-xhci (layer ``adapted``, with a note); from the user it is refused.
    libvirt refuses the combination at define ("Can't add host USB device: USB is disabled in this host")."""
    from ...errors import ConfigError
    from ...types import Note
    usb = [h for h in hostdevs if h.type == "usb"]
    item = settings.get("usb.controller")
    if not usb or item is None or item.value != "none":
        return settings
    given = ", ".join(f"--hostdev {h.text}" for h in usb)
    if item.by_user:
        raise ConfigError(f"{given}: a USB host device needs a USB controller, but usb.controller=none "
                          f"({item.source}): drop one of them")
    settings = settings.replace(
        "usb.controller", "qemu-xhci", f"adapted for {given}",
        f"{given} plugs a host USB device into the guest, and libvirt attaches it only to a USB controller "
        "(model='none' disables USB): qemu-xhci, which takes devices of every USB speed", USB_CONTROLLER_DOC,
        layer="adapted", origin="--hostdev")
    notes.append(Note("info", f"usb.controller=qemu-xhci for {given}, not the {item.layer} value none: a USB host "
                              "device needs a USB controller (libvirt refuses it while USB is disabled)"))
    return settings


@record
class HostDev(Record):
    """A host device given to the guest: ``<hostdev mode='subsystem' type=...>``."""

    type: str  # pci|usb|mdev
    address: str = ""  # PCI 0000:01:00.0
    vendor: str = ""  # USB, 4 hex digits
    product: str = ""
    uuid: str = ""  # mdev
    model: str = "vfio-pci"  # mdev
    managed: Optional[bool] = None
    rom_bar: Optional[bool] = None

    def describe(self) -> str:
        """``PCI 0000:01:00.0``, ``USB 046d:c52b`` or ``mdev UUID``, for messages."""
        return f"PCI {self.address}" if self.type == "pci" else \
            f"USB {self.vendor}:{self.product}" if self.type == "usb" else f"mdev {self.uuid}"


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    for spec in plan.hostdevs:
        # managed: libvirt detaches the PCI device from its host driver at start and gives it back at
        # stop; USB and mdev devices have no host driver to swap (the attribute means nothing there).
        dom.devices.hostdevs.append(HostDev(spec.type, spec.address, spec.vendor, spec.product, spec.uuid,
                                            spec.model, True if spec.type == "pci" else None, spec.rom_bar))
    pci = [h.address for h in dom.devices.hostdevs if h.type == "pci"]
    if pci:
        ctx.require_host(VFIO_REQUIREMENT, " ".join(pci),
                         "PCI passthrough: the devices are bound to vfio-pci so no host driver touches them "
                         "while they belong to the VM", HOSTDEV_DOC)


def render(devices: Element, dom: Domain) -> None:
    from ..xml import on, sub, yes
    for dev in dom.devices.hostdevs:
        if dev.type == "mdev":
            el = sub(devices, "hostdev", mode="subsystem", type_="mdev", model=dev.model)
            sub(sub(el, "source"), "address", uuid=dev.uuid)
            continue
        el = sub(devices, "hostdev", mode="subsystem", type_=dev.type, managed=yes(dev.managed))
        source = sub(el, "source")
        if dev.type == "usb":
            sub(source, "vendor", id="0x" + dev.vendor)
            sub(source, "product", id="0x" + dev.product)
        else:
            domain, bus, rest = dev.address.split(":")
            slot, function = rest.split(".")
            sub(source, "address", domain="0x" + domain, bus="0x" + bus, slot="0x" + slot,
                function="0x" + function)
        if dev.rom_bar is not None:
            sub(el, "rom", bar=on(dev.rom_bar))
