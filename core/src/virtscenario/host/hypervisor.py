"""Domain capabilities and host facts from libvirt (parsing is pure, fetching is lazy)."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any, Optional

from ..errors import LibvirtError
from ..records import FrozenRecord, frozen_record
from .facts import HostCpu, HostInfo, HugePagePool


@frozen_record
class SevCaps(FrozenRecord):
    """AMD SEV as domain capabilities report it (``<features><sev>``): C-bit position, guest limits."""

    supported: bool = False
    cbitpos: int | None = None
    reduced_phys_bits: int | None = None
    max_guests: int | None = None
    max_es_guests: int | None = None


@frozen_record
class DomainCaps(FrozenRecord):
    """The parts of ``virConnectGetDomainCapabilities`` the pipeline uses (``context.caps``; ``None``
    offline): machine types, firmware, CPU modes, device models, SEV/SNP/TDX, the libvirt version.
    """

    virt_type: str = "kvm"
    arch: str = "x86_64"
    machine: str = ""
    machines: tuple[str, ...] = ()
    emulator: str = ""
    max_vcpus: int | None = None
    iothreads: bool = True
    firmware: tuple[str, ...] = ()
    loaders: tuple[str, ...] = ()
    secure_boot: bool = False
    cpu_modes: tuple[str, ...] = ()
    host_model: str = ""
    tpm_models: tuple[str, ...] = ()
    tpm_backends: tuple[str, ...] = ()
    tpm_versions: tuple[str, ...] = ()
    memory_sources: tuple[str, ...] = ()
    filesystem_drivers: tuple[str, ...] = ()
    video_models: tuple[str, ...] = ()
    sev: SevCaps = field(default_factory=SevCaps)
    sev_snp: bool = False
    tdx: bool = False
    libvirt_version: int | None = None
    kvm_available: bool = True

_Q35 = re.compile(r"^pc-q35-(\d+)\.(\d+)$")


def newest_q35(machines: tuple[str, ...] | list[str]) -> Optional[str]:
    versions = [(int(m.group(1)), int(m.group(2)), name) for name in machines if (m := _Q35.match(name))]
    return max(versions)[2] if versions else None


def _values(node: Any, xpath: str) -> tuple[str, ...]:
    return tuple(v.text.strip() for v in node.findall(xpath) if v.text)


def parse_domcaps(xml: str | bytes, machines: tuple[str, ...] = (), host_cpu_features: frozenset[str] = frozenset(),
                  libvirt_version: Optional[int] = None) -> DomainCaps:
    """Parse ``virConnectGetDomainCapabilities`` output."""
    from lxml import etree
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    os_el = root.find("os")
    loader = os_el.find("loader") if os_el is not None else None
    cpu = root.find("cpu")
    modes = tuple(m.get("name") for m in (cpu.findall("mode") if cpu is not None else [])
                  if m.get("supported") == "yes")
    host_model = ""
    if cpu is not None:
        hm = cpu.find("mode[@name='host-model']/model")
        host_model = hm.text if hm is not None and hm.text else ""
    features = root.find("features")
    sev_el = features.find("sev") if features is not None else None
    sev = SevCaps()
    if sev_el is not None and sev_el.get("supported") == "yes":
        def num(tag: str) -> Optional[int]:
            el = sev_el.find(tag)
            return int(el.text) if el is not None and el.text else None
        sev = SevCaps(True, num("cbitpos"), num("reducedPhysBits"), num("maxGuests"), num("maxESGuests"))
    sectypes = _values(root, "features/launchSecurity[@supported='yes']/enum[@name='sectype']/value")
    tdx_el = features.find("tdx") if features is not None else None
    virt_type = (root.findtext("domain") or "kvm").strip()
    vcpu = root.find("vcpu")
    iot = root.find("iothreads")
    fw = _values(os_el, "enum[@name='firmware']/value") if os_el is not None else ()
    if not fw and loader is not None and loader.get("supported") == "yes":
        fw = ("efi",) if _values(loader, "value") else ()
    kvm_ok = virt_type != "kvm" or not host_cpu_features or bool({"vmx", "svm"} & host_cpu_features)
    return DomainCaps(
        virt_type=virt_type,
        arch=(root.findtext("arch") or "x86_64").strip(),
        machine=(root.findtext("machine") or "").strip(),
        machines=tuple(machines),
        emulator=(root.findtext("path") or "").strip(),
        max_vcpus=int(vcpu.get("max")) if vcpu is not None and vcpu.get("max") else None,
        iothreads=iot is None or iot.get("supported") == "yes",
        firmware=fw,
        loaders=_values(loader, "value") if loader is not None else (),
        secure_boot="yes" in (_values(loader, "enum[@name='secure']/value") if loader is not None else ()),
        cpu_modes=modes,
        host_model=host_model,
        tpm_models=_values(root, "devices/tpm[@supported='yes']/enum[@name='model']/value"),
        tpm_backends=_values(root, "devices/tpm[@supported='yes']/enum[@name='backendModel']/value"),
        tpm_versions=_values(root, "devices/tpm[@supported='yes']/enum[@name='backendVersion']/value"),
        memory_sources=_values(root, "memoryBacking[@supported='yes']/enum[@name='sourceType']/value"),
        filesystem_drivers=_values(root, "devices/filesystem[@supported='yes']/enum[@name='driverType']/value"),
        video_models=_values(root, "devices/video[@supported='yes']/enum[@name='modelType']/value"),
        sev=sev,
        sev_snp="sev-snp" in sectypes,
        tdx="tdx" in sectypes or (tdx_el is not None and tdx_el.get("supported") == "yes"),
        libvirt_version=libvirt_version,
        kvm_available=kvm_ok,
    )


def parse_capabilities(xml: str | bytes, arch: str = "x86_64") -> tuple[HostInfo, tuple[str, ...]]:
    """Host topology and the machine types of ``arch`` from ``virConnectGetCapabilities``."""
    from lxml import etree
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    cpu = root.find("host/cpu")
    cpus: list[HostCpu] = []
    for cell in root.findall("host/topology/cells/cell"):
        node = int(cell.get("id", "0"))
        for c in cell.findall("cpus/cpu"):
            cpus.append(HostCpu(int(c.get("id")), int(c.get("core_id", c.get("id"))),
                                int(c.get("socket_id", "0")), node))
    memory = 0
    pools: list[HugePagePool] = []
    for cell in root.findall("host/topology/cells/cell"):
        mem = cell.find("memory")
        if mem is not None and mem.text:
            memory += int(mem.text) * 1024
        for page in cell.findall("pages"):
            size = int(page.get("size", "4"))
            if size > 4 and page.text and page.text.strip().isdigit():
                # per cell: nr_hugepages (reserved), not how many are still free
                pools.append(HugePagePool(int(cell.get("id", "0")), size, int(page.text)))
    pages = tuple(sorted(int(p.get("size")) for p in (cpu.findall("pages") if cpu is not None else [])
                         if int(p.get("size", "4")) > 4))
    flags = frozenset(f.get("name") for f in (cpu.findall("feature") if cpu is not None else []))
    info = HostInfo(
        arch=(cpu.findtext("arch") if cpu is not None else None) or arch,
        cpu_vendor=(cpu.findtext("vendor") if cpu is not None else "") or "",
        cpu_model=(cpu.findtext("model") if cpu is not None else "") or "",
        cpus=tuple(sorted(cpus, key=lambda c: c.id)),
        memory_bytes=memory,
        flags=flags,
        hugepage_sizes_kib=pages,
        source="libvirt capabilities",
        hugepage_pools=tuple(pools),
    )
    machines: list[str] = []
    for guest in root.findall("guest"):
        arch_el = guest.find("arch")
        if arch_el is None or arch_el.get("name") != arch:
            continue
        for m in arch_el.iter("machine"):
            if m.text and m.text.strip() not in machines:
                machines.append(m.text.strip())
            if m.get("canonical") and m.get("canonical") not in machines:
                machines.append(m.get("canonical"))
    return info, tuple(machines)


def quiet_libvirt() -> Any:
    """Import libvirt lazily and stop it printing errors on stderr."""
    try:
        import libvirt
    except ImportError as exc:
        raise LibvirtError("libvirt-python is not installed (pip install libvirt-python; it needs "
                           "libvirt-dev and pkg-config to build)") from exc
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def open_connection(uri: str) -> Any:
    libvirt = quiet_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot connect to {uri}: {exc.get_error_message()}") from None


def libvirt_error_text(exc: Exception) -> str:
    getter = getattr(exc, "get_error_message", None)
    return (getter() if getter else str(exc)) or str(exc)


def fetch(conn: Any, virt_type: str = "kvm", arch: str = "x86_64") -> tuple[Optional[DomainCaps], Optional[HostInfo]]:
    """Domain capabilities for q35 and host facts; (None, host) when the driver has no domcaps."""
    libvirt = quiet_libvirt()
    host: Optional[HostInfo] = None
    machines: tuple[str, ...] = ()
    try:
        host, machines = parse_capabilities(conn.getCapabilities(), arch)
    except libvirt.libvirtError:
        pass
    version = conn.getLibVersion()
    flags = host.flags if host else frozenset()
    for vt in ([virt_type, "qemu"] if virt_type == "kvm" else [virt_type]):
        try:
            xml = conn.getDomainCapabilities(None, arch, "q35", vt, 0)
        except libvirt.libvirtError as exc:
            if "not supported by the connection driver" in libvirt_error_text(exc):
                return None, host
            continue
        caps = parse_domcaps(xml, machines, flags, version)
        if vt != virt_type:
            caps = _replace(caps, kvm_available=False)
        return caps, host
    raise LibvirtError(f"the hypervisor offers no q35 machine for {arch}")


def _replace(caps: DomainCaps, **kw: Any) -> DomainCaps:
    from dataclasses import replace
    return replace(caps, **kw)  # type: ignore[type-var]  # a records.FrozenRecord is a dataclass
