"""Hypervisor features: ACPI, APIC, SMM, PMU, VMware I/O port, Hyper-V enlightenments, KVM hints.

``<features>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

FEAT_DOC = FD + "#hypervisor-features"

SPECS = (
    SettingSpec("features.smm", "bool", None, "System management mode (unset: on when secure boot is requested)",
                rationale="unset: libvirt enables SMM itself when the selected firmware needs it (secure boot "
                          "keeps its variable store in SMM)",
                reference=FEAT_DOC),
    SettingSpec("features.pmu", "bool", None, "Expose the performance monitoring unit",
                rationale="unset: the hypervisor's default PMU for the CPU model",
                reference=FEAT_DOC),
    SettingSpec("features.hyperv", "bool", False, "Hyper-V enlightenments for Windows guests",
                rationale="off: the enlightenments only help Windows guests; Linux guests use KVM's own "
                          "paravirtual interfaces",
                reference=FEAT_DOC),
    SettingSpec("features.kvm_hint_dedicated", "bool", None, "Tell the guest its vCPUs are dedicated (pinned)",
                rationale="unset: the hint is only true when every vCPU is pinned to a host CPU of its own",
                reference=FEAT_DOC),
    SettingSpec("features.vmport", "bool", None, "Emulate the VMware I/O port (vmmouse)",
                rationale="unset: libvirt's default, the port is emulated ('default on'); SPICE guests turn it off "
                          "as virt-install does, since their tablet and agent already give an absolute pointer",
                reference=FEAT_DOC),
    SettingSpec("features.kvm_poll_control", "bool", None, "Guest halt-polling control",
                rationale="unset: KVM's default halt polling on the host side",
                reference=FEAT_DOC),
)


@record
class HyperV(Record):
    """``<features><hyperv>``: the Hyper-V enlightenments a Windows guest uses (each ``True`` is ``state='on'``)."""

    relaxed: bool = True
    vapic: bool = True
    spinlocks_retries: Optional[int] = 8191
    vpindex: bool = True
    synic: bool = True
    stimer: bool = True
    frequencies: bool = True
    tlbflush: bool = True
    ipi: bool = True


@record
class Features(Record):
    """``<features>``: ACPI, APIC, PAE, SMM, vmport, PMU, Hyper-V, KVM hints and the IOAPIC driver (``None``: not
    written).
    """

    acpi: bool = True
    apic: bool = True
    pae: bool = False
    smm: Optional[bool] = None
    vmport: Optional[bool] = None
    pmu: Optional[bool] = None
    hyperv: Optional[HyperV] = None
    kvm_hidden: Optional[bool] = None
    kvm_hint_dedicated: Optional[bool] = None
    kvm_poll_control: Optional[bool] = None
    ioapic_driver: Optional[str] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    s = settings.value
    f = dom.features
    smm = s("features.smm")
    if smm is None and s("firmware.secure_boot"):
        smm = True  # secure boot firmware needs SMM to protect its variable store
    f.smm = smm
    f.pmu = s("features.pmu")
    f.vmport = s("features.vmport")
    if s("features.hyperv"):
        f.hyperv = HyperV()
    f.kvm_hint_dedicated = s("features.kvm_hint_dedicated")
    f.kvm_poll_control = s("features.kvm_poll_control")


def render(root: Element, dom: Domain) -> None:
    from ..xml import on, sub
    f = dom.features
    el = sub(root, "features")
    for name, enabled in (("acpi", f.acpi), ("apic", f.apic), ("pae", f.pae)):
        if enabled:
            sub(el, name)
    if f.hyperv:
        hv = sub(el, "hyperv", mode="custom")
        h = f.hyperv
        for name, enabled in (("relaxed", h.relaxed), ("vapic", h.vapic)):
            if enabled:
                sub(hv, name, state="on")
        if h.spinlocks_retries:
            sub(hv, "spinlocks", state="on", retries=str(h.spinlocks_retries))
        for name, enabled in (("vpindex", h.vpindex), ("synic", h.synic), ("stimer", h.stimer),
                              ("frequencies", h.frequencies), ("tlbflush", h.tlbflush), ("ipi", h.ipi)):
            if enabled:
                sub(hv, name, state="on")
    if f.kvm_hidden is not None or f.kvm_hint_dedicated is not None or f.kvm_poll_control is not None:
        kvm = sub(el, "kvm")
        if f.kvm_hidden is not None:
            sub(kvm, "hidden", state=on(f.kvm_hidden))
        if f.kvm_hint_dedicated is not None:
            sub(kvm, "hint-dedicated", state=on(f.kvm_hint_dedicated))
        if f.kvm_poll_control is not None:
            sub(kvm, "poll-control", state=on(f.kvm_poll_control))
    if f.pmu is not None:
        sub(el, "pmu", state=on(f.pmu))
    if f.vmport is not None:
        sub(el, "vmport", state=on(f.vmport))
    if f.smm is not None:
        sub(el, "smm", state=on(f.smm))
    if f.ioapic_driver:
        sub(el, "ioapic", driver=f.ioapic_driver)
