"""Booting: machine type, firmware (libvirt's autoselection) and boot order.

``<os>`` with ``<type machine>``, ``firmware=``, ``<firmware><feature>``, ``<loader>``
and ``<boot>``. The machine type itself is chosen by the ``select_machine`` hook.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

BOOT_DOC = FD + "#bios-bootloader"

SPECS = (
    SettingSpec("vm.machine", "str", "q35", "Machine type; 'q35' lets libvirt pick the newest q35",
                rationale="q35 (PCIe) is required by UEFI secure boot and confidential computing; the alias always "
                          "maps to the newest versioned q35, never a hard-coded version",
                reference=BOOT_DOC),
    SettingSpec("firmware.type", "choice", "efi", "Firmware, chosen by libvirt's autoselection", ("efi", "bios"),
                rationale="UEFI is what current OSes expect; libvirt picks the image from the firmware descriptors",
                reference=BOOT_DOC),
    SettingSpec("firmware.secure_boot", "bool", None,
                "Request a secure-boot capable firmware (unset: no preference)",
                rationale="unset: libvirt's autoselection takes the first matching descriptor",
                reference=BOOT_DOC),
    SettingSpec("firmware.enrolled_keys", "bool", None,
                "Request firmware with Microsoft keys enrolled (unset: no preference)",
                rationale="unset: libvirt's autoselection takes the first matching descriptor",
                reference=BOOT_DOC),
    SettingSpec("firmware.stateless", "bool", False, "Stateless firmware (no NVRAM), as confidential guests need",
                rationale="off: an NVRAM store keeps boot entries and secure-boot variables across reboots",
                reference=BOOT_DOC),
)


@record
class FirmwareFeature(Record):
    name: str  # secure-boot|enrolled-keys|amd-sev|amd-sev-es|amd-sev-snp|intel-tdx
    enabled: bool


@record
class Os(Record):
    arch: str = "x86_64"
    machine: Optional[str] = None
    type: str = "hvm"
    firmware: Optional[str] = None  # efi|bios (libvirt autoselection)
    firmware_features: list[FirmwareFeature] = field(default_factory=list)
    loader: Optional[str] = None
    loader_readonly: Optional[bool] = None
    loader_type: Optional[str] = None
    loader_secure: Optional[bool] = None
    loader_stateless: Optional[bool] = None
    nvram: Optional[str] = None
    boot: list[str] = field(default_factory=list)  # hd|cdrom|network|fd (empty: per-device boot order)
    bootmenu: Optional[bool] = None
    # Direct kernel boot (--boot kernel=,initrd=,cmdline=): QEMU loads them, the firmware runs them.
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from . import unused
    s = settings.value
    os_ = dom.os
    os_.machine = plan.machine
    if s("firmware.type") == "efi":
        os_.firmware = "efi"
        for key, name in (("firmware.secure_boot", "secure-boot"), ("firmware.enrolled_keys", "enrolled-keys")):
            if s(key) is not None:
                os_.firmware_features.append(FirmwareFeature(name, bool(s(key))))
        if s("firmware.stateless"):
            os_.loader_stateless = True
    else:
        for key in ("firmware.secure_boot", "firmware.enrolled_keys", "firmware.stateless"):
            unused(ctx, settings, key, "it selects among UEFI firmware, and firmware.type is bios")
    os_.boot = ["cdrom", "hd"] if plan.cdrom else ["hd"]
    # -- direct kernel boot (--boot kernel=...): per-VM data of the plan, like --cdrom
    if plan.direct_boot is not None:
        os_.kernel, os_.initrd, os_.cmdline = plan.direct_boot.kernel, plan.direct_boot.initrd, \
            plan.direct_boot.cmdline


def render(root: Element, dom: Domain) -> None:
    from ..xml import sub, yes
    os_ = dom.os
    el = sub(root, "os", firmware=os_.firmware)
    sub(el, "type", os_.type, arch=os_.arch, machine=os_.machine)
    if os_.firmware_features:
        fw = sub(el, "firmware")
        for feat in os_.firmware_features:
            sub(fw, "feature", enabled=yes(feat.enabled), name=feat.name)
    if os_.loader or os_.loader_secure is not None or os_.loader_stateless is not None:
        sub(el, "loader", os_.loader or None, readonly=yes(os_.loader_readonly), secure=yes(os_.loader_secure),
            type_=os_.loader_type, stateless=yes(os_.loader_stateless))
    if os_.nvram:
        sub(el, "nvram", os_.nvram)
    # -- direct kernel boot: libvirt formats these after <nvram>, before <boot>
    if os_.kernel:
        sub(el, "kernel", os_.kernel)
        if os_.initrd:
            sub(el, "initrd", os_.initrd)
        if os_.cmdline:
            sub(el, "cmdline", os_.cmdline)
    for dev in os_.boot:
        sub(el, "boot", dev=dev)
    if os_.bootmenu is not None:
        sub(el, "bootmenu", enable=yes(os_.bootmenu))
