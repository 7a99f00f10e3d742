"""Booting: machine type, firmware (libvirt's autoselection) and boot order.

``<os>`` with ``<type machine>``, ``firmware=``, ``<firmware><feature>``, ``<loader>``
and ``<boot>``. The machine type itself is chosen by the ``select_machine`` hook.

:func:`fit` checks the firmware request (and the launch-security type, whose firmware
libvirt picks by descriptor features) against the target host's firmware descriptors
(:mod:`virtscenario.host.firmware`) before anything is built: a stateless loader or an
SEV-ES policy is only emitted when a descriptor offers it; otherwise a value the scenario
chose falls back (with a note), and a value the user set is refused in one line.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, VIRTINST5

if TYPE_CHECKING:  # pragma: no cover
    from ...host.firmware import FirmwareDescriptor, FirmwareRequest, FirmwareSet
    from ...settings.types import Settings
    from ...types import Note
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

BOOT_DOC = FD + "#bios-bootloader"

SPECS = (
    SettingSpec("vm.machine", "str", "q35", "Machine type; 'q35' lets libvirt pick the newest q35",
                rationale="q35, the PCIe machine virt-install picks for new x86 guests; 'True secure boot is "
                          "currently supported only on x86 architecture and with q35' (virt-install). The alias "
                          "becomes the newest versioned q35 of the hypervisor, never a hard-coded version",
                reference=f"{VIRTINST5}/guest.py (_set_default_machine, set_uefi_path)"),
    SettingSpec("firmware.type", "choice", "efi", "Firmware, chosen by libvirt's autoselection", ("efi", "bios"),
                rationale="UEFI is what current OSes expect; libvirt picks the image from the firmware descriptors",
                reference=BOOT_DOC),
    SettingSpec("firmware.secure_boot", "bool", None,
                "Request a secure-boot capable firmware (unset: no preference)",
                rationale="unset: libvirt's autoselection takes the first matching descriptor",
                reference=BOOT_DOC, applies_when=("firmware.type=efi",)),
    SettingSpec("firmware.enrolled_keys", "bool", None,
                "Request firmware with Microsoft keys enrolled (unset: no preference)",
                rationale="unset: libvirt's autoselection takes the first matching descriptor",
                reference=BOOT_DOC, applies_when=("firmware.type=efi",)),
    SettingSpec("firmware.stateless", "bool", False, "Stateless firmware (no NVRAM), as confidential guests need",
                rationale="off: an NVRAM store keeps boot entries and secure-boot variables across reboots",
                reference=BOOT_DOC, applies_when=("firmware.type=efi",)),
)


@record
class FirmwarePlan(Record):
    """What :func:`fit` decided: the launch-security type and loader that a descriptor satisfies."""

    launch_security: str
    stateless: bool
    feature_requests: bool = True  # emit <firmware><feature> for firmware.secure_boot/enrolled_keys
    descriptor: Optional[FirmwareDescriptor] = None  # what libvirt will take (None: not known)
    stateless_dropped: str = ""  # why firmware.stateless could not be honoured ("": it was, or not asked)


@record
class FirmwareFeature(Record):
    """``<os><firmware><feature name=... enabled=...>``: what libvirt's firmware autoselection must (not) offer."""

    name: str  # secure-boot|enrolled-keys|amd-sev|amd-sev-es|amd-sev-snp|intel-tdx
    enabled: bool


@record
class Os(Record):
    """``<os>``: architecture, machine type (from the ``select_machine`` hook), firmware autoselection or an explicit
    loader and NVRAM, boot order.
    """

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
    fitted = plan.firmware
    if s("firmware.type") == "efi":
        os_.firmware = "efi"
        for key, name in (("firmware.secure_boot", "secure-boot"), ("firmware.enrolled_keys", "enrolled-keys")):
            if s(key) is not None and (fitted is None or fitted.feature_requests):
                os_.firmware_features.append(FirmwareFeature(name, bool(s(key))))
        if fitted.stateless if fitted is not None else s("firmware.stateless"):
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


# -- fitting the request to the host's firmware descriptors ---------------------------------------
#: Why ``firmware.stateless`` matters for confidential guests (QEMU's SEV documentation).
NVRAM_NOT_MEASURED = ("the NVRAM varstore is not covered by the launch measurement (QEMU: 'you must build a "
                      "stateless firmware file which doesn't use an NVRAM store, because the NVRAM area is not "
                      "measured')")


def fit(settings: Settings, launch: str, machine: str, fw: Optional[FirmwareSet], unknown: str,
        libvirt_version: Optional[int], notes: list[Note]) -> FirmwarePlan:
    """Fit the firmware request and the launch-security type to what the descriptors offer.

    ``fw`` None: the descriptors cannot be read (``unknown`` says why); then only what
    every SEV-capable OVMF offers is emitted for values a scenario chose: SEV rather than
    the SEV-ES policy, and no stateless loader (Debian 12's OVMF has neither).
    """
    from ...host.firmware import FirmwareRequest, select
    from ...types import Note
    s = settings.value
    stateless = bool(s("firmware.stateless"))
    if s("firmware.type") != "efi":
        return FirmwarePlan(launch, False)
    by_user = {key: settings[key].by_user for key in ("firmware.stateless", "firmware.secure_boot",
                                                        "firmware.enrolled_keys", "launch_security.type")}
    # The type may fall back when it was chosen for the user (auto) and no policy pins it.
    may_downgrade = launch == "sev-es" and s("launch_security.type") == "auto" and \
        s("launch_security.policy") is None
    may_drop_stateless = stateless and not by_user["firmware.stateless"]
    smm = s("features.smm")
    smm = True if smm is None and s("firmware.secure_boot") else smm

    def request(kind: str, stateless_: bool, features: bool) -> FirmwareRequest:
        return FirmwareRequest(
            machine=machine, secure_boot=s("firmware.secure_boot") if features else None,
            enrolled_keys=s("firmware.enrolled_keys") if features else None, smm=smm, stateless=stateless_,
            launch_security={"sev-es": "sev"}.get(kind, kind), policy=_policy(settings, kind),
            s3=bool(s("pm.suspend_to_mem")), s4=bool(s("pm.suspend_to_disk")))

    if fw is None:
        if launch == "none":
            return FirmwarePlan(launch, stateless)
        if may_downgrade:
            launch = "sev"
            notes.append(Note("info", "launch security: SEV (policy 0x0003), not SEV-ES: a firmware with "
                                      f"amd-sev-es cannot be checked for ({unknown}), and Debian 12's OVMF has none"))
        dropped = ""
        if may_drop_stateless and launch in ("sev", "sev-es"):
            stateless = False
            dropped = f"a stateless SEV firmware cannot be checked for ({unknown}); {NVRAM_NOT_MEASURED}"
            notes.append(Note("info", f"firmware.stateless dropped: {dropped}"))
        wanted = _describe(request(launch, stateless, True))
        if by_user["launch_security.type"] or by_user["firmware.stateless"]:
            notes.append(Note("warning", f"cannot check that the host has a firmware for {wanted} ({unknown})"))
        return FirmwarePlan(launch, stateless, stateless_dropped=dropped)

    kinds = [launch, "sev"] if may_downgrade else [launch]
    statelesses = [True, False] if may_drop_stateless else [stateless]
    has_features = s("firmware.secure_boot") is not None or s("firmware.enrolled_keys") is not None
    may_drop_features = has_features and launch != "none" and not (
        by_user["firmware.secure_boot"] or by_user["firmware.enrolled_keys"])
    featureses = [True, False] if may_drop_features else [True]
    first_error = ""
    for kind in kinds:
        for stateless_ in statelesses:
            for features in featureses:
                choice = select(fw, request(kind, stateless_, features), libvirt_version)
                if choice.descriptor is None:
                    first_error = first_error or choice.error
                    continue
                desc = choice.descriptor
                dropped = _fit_notes(notes, launch, kind, stateless, stateless_, features, desc, fw)
                # A memory-device firmware (TDX) has no NVRAM: no stateless attribute needed.
                return FirmwarePlan(kind, stateless_ and desc.device == "flash", features, desc, dropped)
    from ...errors import VirtscenarioError
    wanted = _describe(request(launch, stateless, True))
    hint = " (Debian 12's ovmf offers amd-sev only: --set launch_security.type=sev)" \
        if launch == "sev-es" else ""
    raise VirtscenarioError(f"no firmware descriptor in {fw.origin} offers {wanted}; libvirt would fail with "
                            f"'{first_error}'{hint}")


def settled(settings: Settings, fitted: FirmwarePlan) -> Settings:
    """The settings as the fitted firmware honours them: a stateless loader that :func:`fit`
    dropped is shown, recorded in vm.yaml and summarised as off, not as the scenario's "on"."""
    if not fitted.stateless_dropped or not settings.value("firmware.stateless"):
        return settings
    return settings.replace("firmware.stateless", False, "adapted: the host's firmware descriptors",
                            f"off: {fitted.stateless_dropped}", settings["firmware.stateless"].reference,
                            layer="adapted", origin="core")


def _policy(settings: Settings, kind: str) -> int:
    from .security import SEV_ES_POLICY, SEV_POLICY
    policy = settings.value("launch_security.policy")
    if policy is not None:
        return int(policy)
    return SEV_ES_POLICY if kind == "sev-es" else SEV_POLICY if kind == "sev" else 0


def _describe(req: FirmwareRequest) -> str:
    parts = [f"UEFI for {req.machine}"]
    need = {"sev": "amd-sev", "sev-snp": "amd-sev-snp", "tdx": "intel-tdx"}.get(req.launch_security)
    if need:
        parts.append(need)
    if req.launch_security == "sev" and req.policy & 4:
        parts.append("amd-sev-es")
    if req.stateless:
        parts.append("stateless")
    for value, name in ((req.secure_boot, "secure-boot"), (req.enrolled_keys, "enrolled-keys")):
        if value is not None:
            parts.append(name if value else f"without {name}")
    if req.smm is False:
        parts.append("without SMM")
    return ", ".join(parts)


def _fit_notes(notes: list[Note], wanted: str, kind: str, stateless: bool, stateless_: bool, features: bool,
               desc: FirmwareDescriptor, fw: FirmwareSet) -> str:
    """Notes on what the fitted firmware changed; returns why firmware.stateless was dropped ("": it was not)."""
    from ...types import Note
    if kind != wanted:
        notes.append(Note("info", f"launch security: SEV (policy 0x0003), not SEV-ES: no firmware descriptor in "
                                  f"{fw.origin} offers amd-sev-es"))
    dropped = ""
    if stateless and not stateless_ and kind == "none":
        dropped = f"no firmware descriptor in {fw.origin} is stateless; {desc.path} comes with an NVRAM varstore"
    elif stateless and not stateless_:
        dropped = f"no stateless firmware offers {kind}; {NVRAM_NOT_MEASURED}"
    if dropped:
        notes.append(Note("info", f"firmware.stateless dropped: {dropped}"))
    if not features:
        notes.append(Note("info", f"firmware.secure_boot and firmware.enrolled_keys not requested: the firmware "
                                  f"for {kind} ({desc.path}) has {', '.join(sorted(desc.features & FEATURE_NAMES))}"))
    if wanted != "none":
        notes.append(Note("info", f"firmware: libvirt's autoselection takes {desc.path} ({desc.executable})"))
    return dropped


FEATURE_NAMES = frozenset({"secure-boot", "enrolled-keys"})
