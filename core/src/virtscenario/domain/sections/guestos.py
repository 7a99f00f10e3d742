"""The guest OS (``--os ID``, key ``os.id``): OS-aware defaults, sizing checks and libosinfo metadata.

The id is libosinfo's short id (``win11``, ``fedora40``, ``linux2022``) or a family
(``linux``, ``windows``), looked up in osinfo-db by :mod:`virtscenario.host.osinfo`.

Before the sections build, :func:`adapt_for_os` fits the resolved settings to the OS, as
virt-install does per OS: a Windows guest gets the Hyper-V enlightenments, its RTC in
localtime, a TPM 2.0 and secure boot with Microsoft's keys; a Linux guest gets none of the
Windows-only bits. Each change is a setting of layer ``adapted`` (origin ``os ID``) with
its rationale and reference; a value the user set (file or flag) is kept, with a warning.
Sizes below the OS's minimum are warned about. The id is recorded in ``<metadata>`` the
way virt-install writes it (``<libosinfo:os id=URI/>``), where virt-manager reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from ...settings.types import SettingSpec
from .refs import VIRTINST

if TYPE_CHECKING:  # pragma: no cover
    from ...host.osinfo import OsInfo
    from ...host.root import HostRoot
    from ...settings.types import Settings
    from ...types import Note
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

LIBOSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"
OSINFO_DB = "https://gitlab.com/libosinfo/osinfo-db/-/tree/main/data/os"
WIN11 = "https://gitlab.com/libosinfo/osinfo-db/-/blob/main/data/os/microsoft.com/win-11.xml.in"

SPECS = (
    SettingSpec("os.id", "str", None,
                "Guest OS, as libosinfo names it (win11, fedora40, linux2022) or a family (linux, windows)",
                rationale="unset: no OS-specific adaptation; the scenario's choices apply as they are",
                reference="https://libosinfo.org/"),
)

#: What a Windows guest needs: (key, value, rationale, reference).
WINDOWS_NEEDS: tuple[tuple[str, Any, str, str], ...] = (
    ("features.hyperv", True,
     "Windows runs on Hyper-V enlightenments (relaxed timing, virtual APIC, spinlock retries, synthetic timers, "
     "TLB flush and IPI hypercalls) instead of trapping on emulated hardware; virt-install enables them for "
     "every Windows guest", f"{VIRTINST}/domain/features.py (set_defaults)"),
    ("clock.offset", "localtime",
     "Windows keeps the RTC in local time unless told RealTimeIsUniversal; virt-install sets localtime for "
     "Windows guests", f"{VIRTINST}/domain/clock.py (set_defaults)"),
    ("tpm.model", "tpm-crb",
     "Windows 11 requires a TPM 2.0; the CRB interface is the TPM 2.0 one, and virt-install adds a TPM "
     "whenever the guest uses UEFI", f"{VIRTINST}/guest.py (_add_default_tpm)"),
    ("tpm.backend", "emulator", "a swtpm TPM of the VM's own, whose state libvirt keeps",
     "https://libvirt.org/formatdomain.html#tpm-device"),
    ("tpm.version", "2.0", "Windows 11 requires TPM 2.0", WIN11),
    ("firmware.type", "efi", "libosinfo marks BIOS as unsupported for Windows 11: UEFI", WIN11),
    ("firmware.secure_boot", True, "Windows 11 requires secure boot capable firmware", WIN11),
    ("firmware.enrolled_keys", True,
     "Microsoft's keys enrolled, so the Windows boot manager (signed by Microsoft) boots with secure boot on",
     "https://libvirt.org/formatdomain.html#bios-bootloader"),
)
#: What only Windows wants: a Linux guest gets these back to the core's defaults.
LINUX_UNDOES: tuple[tuple[str, Any, str, str], ...] = (
    ("features.hyperv", False,
     "Linux on KVM uses KVM's own paravirtual interfaces (kvmclock, PV EOI, PV spinlocks); the Hyper-V "
     "enlightenments are for Windows", "https://libvirt.org/formatdomain.html#hypervisor-features"),
    ("clock.offset", "utc", "Linux keeps the RTC in UTC", "https://libvirt.org/formatdomain.html#time-keeping"),
)


def adapt_for_os(settings: Settings, host: Optional[HostRoot], notes: list[Note],
                 sizes: tuple[int, ...] = ()) -> tuple[Settings, Optional[OsInfo]]:
    """Fit ``settings`` to ``os.id``; ``sizes`` are the byte sizes of the VM's disks (for the minimum)."""
    os_id = settings.value("os.id")
    if not os_id:
        return settings, None
    from ...host.osinfo import lookup
    from ...host.root import HostRoot
    from ...types import Note
    info, missing_db = lookup(str(os_id), host or HostRoot.from_env())
    if missing_db:
        notes.append(Note("info", missing_db))
    needs = WINDOWS_NEEDS if info.family == "windows" else LINUX_UNDOES if info.family == "linux" else ()
    for key, value, rationale, reference in needs:
        current = settings.get(key)
        if current is None or current.value == value:
            continue
        if current.by_user:
            notes.append(Note("warning", f"{key}={current.value} kept as you set it ({current.source}), though a "
                                         f"{info.family} guest ({info.short_id}) wants {value}: {rationale}"))
            continue
        settings = settings.replace(key, value, f"adapted for the guest OS {info.short_id}", rationale, reference,
                                    layer="adapted", origin=f"os {info.short_id}")
        notes.append(Note("info", f"{key}={_word(value)} for the {info.family} guest {info.short_id} (the "
                                  f"{current.layer} value was {_word(current.value)})"))
    _check_sizes(settings, info, notes, sizes)
    return settings, info


def _word(value: Any) -> str:
    return "on" if value is True else "off" if value is False else "unset" if value is None else str(value)


def _check_sizes(settings: Settings, info: OsInfo, notes: list[Note], sizes: tuple[int, ...]) -> None:
    from ...types import Note
    from ...units import format_size
    low = info.minimum
    checks: list[tuple[str, Any, Optional[int], Callable[[int], str]]] = [
        ("vm.vcpus", settings.value("vm.vcpus"), low.n_cpus, str),
        ("vm.memory", settings.value("vm.memory"), low.ram, format_size)]
    if sizes:
        checks.append(("disk.size", sizes[0], low.storage, format_size))
    for key, have, need, show in checks:
        if need and have is not None and int(have) < need:
            notes.append(Note("warning", f"{key}={show(int(have))} is below {info.name}'s minimum of {show(need)} "
                                         f"(libosinfo, {info.source or 'osinfo-db'})"))


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    """Only the metadata: the adaptation already happened on the settings."""
    dom.metadata.os_uri = plan.os_uri or ""


def render_metadata(metadata: Element, dom: Domain) -> None:
    """``<libosinfo:libosinfo><libosinfo:os id=URI/>``, as virt-install records the OS."""
    from lxml import etree
    if not dom.metadata.os_uri:
        return
    info = etree.SubElement(metadata, f"{{{LIBOSINFO_NS}}}libosinfo", nsmap={"libosinfo": LIBOSINFO_NS})
    etree.SubElement(info, f"{{{LIBOSINFO_NS}}}os", id=dom.metadata.os_uri)
