"""The one capability policy: what a hypervisor's domain capabilities allow.

``create`` first *adapts* the settings where a safe equivalent exists (no KVM -> TCG,
host-passthrough -> maximum under TCG), each with a note; then ``create``,
``validate --connect`` and ``--connect`` all check the rendered XML with
:func:`problems`, so a VM the hypervisor would refuse is refused here in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from typing import Protocol

    from ..host.hypervisor import DomainCaps

    class LaunchSecurityCaps(Protocol):
        """What offered_launch_security reads: the core's DomainCaps and the fleet's facts both have it."""

        @property
        def sev(self) -> Any: ...
        @property
        def sev_snp(self) -> bool: ...
        @property
        def tdx(self) -> bool: ...
    from ..settings.types import Settings
    from ..types import Note

DOMCAPS_DOC = "https://libvirt.org/formatdomaincaps.html"
CPU_DOC = "https://libvirt.org/formatdomain.html#cpu-model-and-topology"


def adapt(settings: Settings, caps: Optional[DomainCaps], notes: list[Note]) -> Settings:
    """Fit the settings to the hypervisor where a safe equivalent exists (layer ``adapted``)."""
    from ..types import Note
    if caps is not None and settings.value("vm.virt_type") == "kvm" and not caps.kvm_available:
        settings = settings.replace("vm.virt_type", "qemu", "adapted: domain capabilities",
                                    "KVM is not usable on this host: TCG emulation instead", DOMCAPS_DOC)
        notes.append(Note("warning", "KVM is not available on this hypervisor: virt type adapted to qemu (TCG)"))
    if settings.value("vm.virt_type") == "qemu" and settings.value("cpu.mode") == "host-passthrough":
        settings = settings.replace("cpu.mode", "maximum", "adapted for TCG",
                                    "host-passthrough needs KVM; 'maximum' gives TCG every feature it emulates",
                                    CPU_DOC)
        notes.append(Note("info", "cpu.mode host-passthrough needs KVM: adapted to maximum for virt type qemu"))
    return settings


def problems(root: Any, caps: DomainCaps) -> list[str]:
    """What a domain XML asks for that the hypervisor does not offer, each with the way out."""
    out: list[str] = []
    if root.get("type") == "kvm" and not caps.kvm_available:
        out.append("domain type kvm, but KVM is not available here (use type qemu: --virt-type qemu)")
    type_el = root.find("os/type")
    machine = type_el.get("machine") if type_el is not None else None
    if machine and caps.machines and machine not in caps.machines and machine != "q35":
        out.append(f"machine {machine!r} is not offered (newest q35: {caps.machine})")
    vcpus = root.findtext("vcpu")
    if vcpus and caps.max_vcpus and int(vcpus) > caps.max_vcpus:
        out.append(f"{vcpus} vCPUs exceed the {caps.max_vcpus} this hypervisor's q35 accepts")
    os_el = root.find("os")
    fw = os_el.get("firmware") if os_el is not None else None
    if fw and fw not in caps.firmware:
        hint = (" (install OVMF: Debian ovmf, SUSE qemu-ovmf-x86_64, Fedora edk2-ovmf; or --set firmware.type=bios)"
                if fw == "efi" else "")
        out.append(f"the hypervisor offers no {'UEFI' if fw == 'efi' else fw} firmware{hint}")
    cpu = root.find("cpu")
    if cpu is not None and caps.cpu_modes and cpu.get("mode") not in caps.cpu_modes:
        out.append(f"cpu mode {cpu.get('mode')} is not supported here (supported: {', '.join(caps.cpu_modes)})")
    source = root.find("memoryBacking/source")
    if source is not None and caps.memory_sources and source.get("type") not in caps.memory_sources:
        out.append(f"memory source {source.get('type')} is not supported here "
                   f"(supported: {', '.join(caps.memory_sources)})")
    for fs in root.findall("devices/filesystem/driver[@type='virtiofs']"):
        if caps.filesystem_drivers and "virtiofs" not in caps.filesystem_drivers:
            out.append("this hypervisor has no virtiofs support (--set filesystem.share=off)")
        del fs
    for tpm in root.findall("devices/tpm"):
        if caps.tpm_models and tpm.get("model") not in caps.tpm_models:
            out.append(f"TPM model {tpm.get('model')} is not supported here (supported: {', '.join(caps.tpm_models)})")
        backend = tpm.find("backend")
        if backend is not None and backend.get("type") not in caps.tpm_backends:
            hint = " (install swtpm and swtpm-tools)" if backend.get("type") == "emulator" else ""
            out.append(f"TPM backend {backend.get('type')} is not supported by this hypervisor{hint}")
    ls = root.find("launchSecurity")
    if ls is not None:
        kind = ls.get("type")
        offered = offered_launch_security(caps)
        if kind not in offered and not (kind == "sev" and "sev-es" in offered):
            out.append(f"launch security {kind} is not supported here (supported: {', '.join(offered) or 'none'})")
    return out


def offered_launch_security(caps: LaunchSecurityCaps) -> list[str]:
    """Strongest first: SEV-SNP, SEV-ES, SEV on AMD; TDX on Intel."""
    out = []
    if caps.sev_snp:
        out.append("sev-snp")
    if caps.sev.supported and (caps.sev.max_es_guests or 0) > 0:
        out.append("sev-es")
    if caps.sev.supported:
        out.append("sev")
    if caps.tdx:
        out.append("tdx")
    return out
