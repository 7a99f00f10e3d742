"""What one libvirt connection says about its host, as frozen records.

``gather(conn)`` asks the connection (capabilities, node info, free memory per NUMA
node, free hugepages per size and node, domain capabilities for kvm then qemu, the
running domains) and keeps the raw answers in :class:`Answers`; ``assemble`` turns
answers into :class:`HostFacts` without I/O, so recorded XML (libvirt's own test
recordings of SEV, SEV-SNP and TDX hosts) builds facts exactly as a live host does.
A driver without an API (the ``test:///`` driver has no domain capabilities, no free
memory per cell) is a fact (``None`` plus the reason), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..host.facts import version_text

#: launchSecurity type -> which ASID pool a running guest of that type takes (AMD).
#: Linux arch/x86/kvm/svm/sev.c, sev_asid_new(): "SEV-enabled guests must use asid from
#: min_sev_asid to max_sev_asid. SEV-ES-enabled guest can use from 1 to min_sev_asid - 1";
#: SEV-SNP guests take the same range as SEV-ES. libvirt reports the sizes of the two
#: pools as <maxGuests> and <maxESGuests> (formatdomaincaps.html#sev-capabilities).
SEV_ES_POLICY_BIT = 0x04


@dataclass(frozen=True)
class HostCpu:
    id: int
    socket: int
    core: int
    node: int


@dataclass(frozen=True)
class Cell:
    id: int
    memory_bytes: Optional[int]
    cpus: tuple[HostCpu, ...]
    pages: tuple[tuple[int, int], ...]  # (size KiB, pages the kernel has of that size on this node)


@dataclass(frozen=True)
class CapsFacts:
    """From ``virConnectGetCapabilities``."""

    arch: str
    cpu_model: str
    cpu_vendor: str
    cpu_features: tuple[str, ...]
    host_uuid: str
    cells: tuple[Cell, ...]
    page_sizes_kib: tuple[int, ...]  # every size the host supports, 4 KiB included
    virt_types: tuple[str, ...]  # domain types libvirt offers for ``arch`` guests (kvm, qemu, test)

    @property
    def no_hardware_virt(self) -> bool:
        """The host CPU's features are listed and lack vmx/svm: KVM cannot run guests, whatever is advertised.

        (An unlisted CPU, as in libvirt's own test recordings, proves nothing: the core's caps.py agrees.)
        """
        return bool(self.cpu_features) and not {"vmx", "svm"} & set(self.cpu_features)


@dataclass(frozen=True)
class SevCaps:
    supported: bool = False
    max_guests: Optional[int] = None  # libvirt >= 8.0.0
    max_es_guests: Optional[int] = None


@dataclass(frozen=True)
class DomcapsFacts:
    """From ``virConnectGetDomainCapabilities`` for one virt type (formatdomaincaps.html)."""

    virt_type: str
    arch: str
    machine: str
    max_vcpus: Optional[int]
    cpu_modes: tuple[str, ...]
    host_model: str
    usable_models: tuple[str, ...]
    firmware: tuple[str, ...]  # 'efi', 'bios' (libvirt >= 8.x lists them; older: efi when loaders exist)
    secure_boot: bool
    tpm_models: tuple[str, ...]
    tpm_backends: tuple[str, ...]
    tpm_versions: tuple[str, ...]
    filesystem_drivers: tuple[str, ...]
    sev: SevCaps
    launch_security_types: tuple[str, ...]  # <launchSecurity><enum name='sectype'> (libvirt >= 10.x)
    tdx: bool

    @property
    def virtiofs(self) -> bool:
        return "virtiofs" in self.filesystem_drivers

    @property
    def sev_snp(self) -> bool:
        return "sev-snp" in self.launch_security_types


@dataclass(frozen=True)
class DomainUsage:
    """What one running domain takes from its host (from its live XML)."""

    name: str
    vcpus: int
    memory_bytes: int
    launch_security: Optional[str]  # 'sev', 'sev-es', 'sev-snp', 'tdx'
    pinned_cpus: tuple[int, ...]


@dataclass(frozen=True)
class Running:
    domains: int = 0
    vcpus: int = 0
    memory_bytes: int = 0
    sev: int = 0  # running SEV guests (SEV ASID pool)
    sev_es: int = 0  # running SEV-ES and SEV-SNP guests (the ES ASID pool)
    tdx: int = 0
    pinned_cpus: tuple[int, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...]
    memory_bytes: Optional[int]
    free_bytes: Optional[int]
    free_hugepages: tuple[tuple[int, int], ...]  # (size KiB, free pages)

    def free_pages(self, size_kib: int) -> Optional[int]:
        for size, count in self.free_hugepages:
            if size == size_kib:
                return count
        return None


@dataclass(frozen=True)
class HostFacts:
    libvirt_version: str
    hypervisor: str  # the driver's name for itself: QEMU, TEST
    hypervisor_version: str
    hostname: str
    caps: CapsFacts
    cpus: int
    memory_bytes: int
    nodes: tuple[NumaNode, ...]
    free_memory_bytes: Optional[int]
    accel: str  # 'kvm', 'tcg' or 'none'
    domcaps: Optional[DomcapsFacts]
    domcaps_error: Optional[str]
    running: Running
    notes: tuple[str, ...] = ()

    @property
    def arch(self) -> str:
        return self.domcaps.arch if self.domcaps else self.caps.arch

    def launch_security_offered(self) -> tuple[str, ...]:
        """Strongest first, as the core's launch_security=auto picks: SEV-SNP, SEV-ES, SEV, TDX."""
        if self.domcaps is None or self.accel != "kvm":
            return ()
        from ..domain.caps import offered_launch_security  # the core's own order and rules
        return tuple(offered_launch_security(self.domcaps))

    def free_slots(self, kind: str) -> Optional[int]:
        """Guests of ``kind`` that can still start: the ASID pool size minus running guests of that pool.

        None when libvirt does not report a limit (TDX; SEV before libvirt 8.0.0).
        """
        dc = self.domcaps
        if dc is None:
            return None
        if kind == "sev":
            pool, used = dc.sev.max_guests, self.running.sev
        elif kind in ("sev-es", "sev-snp"):
            pool, used = dc.sev.max_es_guests, self.running.sev_es
        else:
            return None
        return None if pool is None else max(0, pool - used)

    def hugepages_free(self, size_kib: int) -> dict[int, int]:
        """Free pages of ``size_kib`` per NUMA node (only nodes that report that size)."""
        out = {}
        for node in self.nodes:
            count = node.free_pages(size_kib)
            if count is not None:
                out[node.id] = count
        return out


@dataclass(frozen=True)
class Answers:
    """The raw answers of one connection; ``assemble`` makes facts of them without I/O."""

    lib_version: int
    hv_type: str
    hv_version: int
    hostname: str
    capabilities_xml: str
    info: tuple[Any, ...]  # virNodeGetInfo: model, memory MiB, cpus, mhz, nodes, sockets, cores, threads
    cells_free: dict[int, int] = field(default_factory=dict)  # cell -> free bytes
    free_memory: Optional[int] = None  # virNodeGetFreeMemory when per-cell figures are missing
    free_pages: dict[int, dict[int, int]] = field(default_factory=dict)  # cell -> size KiB -> free pages
    domcaps_xml: dict[str, str] = field(default_factory=dict)  # virt type -> XML
    domcaps_errors: dict[str, str] = field(default_factory=dict)  # virt type -> libvirt's message
    running_xml: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# -- pure parsing ---------------------------------------------------------------------------
def _root(xml: str | bytes) -> Any:
    from lxml import etree
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser)


def _texts(node: Any, xpath: str) -> tuple[str, ...]:
    if node is None:
        return ()
    return tuple(v.text.strip() for v in node.findall(xpath) if v.text and v.text.strip())


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None and text.strip() else None
    except ValueError:
        return None


def _bytes(el: Any) -> Optional[int]:
    """A libvirt scaled integer (``unit`` attribute, default KiB) in bytes."""
    if el is None or not (el.text or "").strip():
        return None
    from ..units import parse_size
    unit = el.get("unit") or "KiB"
    try:
        return int(parse_size(f"{el.text.strip()}{unit}", "KiB", what="libvirt size"))
    except Exception:  # noqa: BLE001 - a unit we do not know: the fact is unknown, not an error
        return None


def parse_capabilities(xml: str | bytes) -> CapsFacts:
    root = _root(xml)
    cpu = root.find("host/cpu")
    cells = []
    for cell in root.findall("host/topology/cells/cell"):
        cid = int(cell.get("id", "0"))
        cpus = tuple(HostCpu(int(c.get("id")), int(c.get("socket_id", "0")), int(c.get("core_id", c.get("id"))), cid)
                     for c in cell.findall("cpus/cpu"))
        pages = tuple((int(p.get("size")), int(p.text or 0)) for p in cell.findall("pages") if p.get("size"))
        cells.append(Cell(cid, _bytes(cell.find("memory")), cpus, pages))
    arch = (cpu.findtext("arch") if cpu is not None else None) or ""
    virt_types: list[str] = []
    for guest in root.findall("guest"):
        arch_el = guest.find("arch")
        if arch_el is None or arch_el.get("name") != arch:
            continue
        for dom in arch_el.findall("domain"):
            if dom.get("type") and dom.get("type") not in virt_types:
                virt_types.append(dom.get("type"))
    return CapsFacts(
        arch=arch.strip(),
        cpu_model=((cpu.findtext("model") if cpu is not None else "") or "").strip(),
        cpu_vendor=((cpu.findtext("vendor") if cpu is not None else "") or "").strip(),
        cpu_features=tuple(f.get("name") for f in (cpu.findall("feature") if cpu is not None else []) if f.get("name")),
        host_uuid=(root.findtext("host/uuid") or "").strip(),
        cells=tuple(cells),
        # The host <cpu> lists the sizes the CPU supports; libvirt's own test recordings only list them per cell.
        page_sizes_kib=tuple(sorted({int(p.get("size")) for p in (cpu.findall("pages") if cpu is not None else [])
                                     if p.get("size")} | {size for c in cells for size, _n in c.pages})),
        virt_types=tuple(virt_types),
    )


def parse_domcaps(xml: str | bytes) -> DomcapsFacts:
    root = _root(xml)
    os_el = root.find("os")
    loader = os_el.find("loader") if os_el is not None else None
    firmware = _texts(os_el, "enum[@name='firmware']/value")
    if not firmware and loader is not None and loader.get("supported") == "yes" and _texts(loader, "value"):
        firmware = ("efi",)  # libvirt < 8.x lists loaders but no firmware enum
    cpu = root.find("cpu")
    modes = tuple(m.get("name") for m in (cpu.findall("mode") if cpu is not None else [])
                  if m.get("supported") == "yes")
    host_model = cpu.find("mode[@name='host-model']") if cpu is not None else None
    usable = tuple(m.text.strip() for m in (cpu.findall("mode[@name='custom']/model") if cpu is not None else [])
                   if m.get("usable") == "yes" and m.text)
    feats = root.find("features")
    sev_el = feats.find("sev") if feats is not None else None
    sev = SevCaps()
    if sev_el is not None and sev_el.get("supported") == "yes":
        sev = SevCaps(True, _int(sev_el.findtext("maxGuests")), _int(sev_el.findtext("maxESGuests")))
    tdx_el = feats.find("tdx") if feats is not None else None
    sectypes = _texts(feats, "launchSecurity[@supported='yes']/enum[@name='sectype']/value")
    vcpu = root.find("vcpu")
    return DomcapsFacts(
        virt_type=(root.findtext("domain") or "").strip(),
        arch=(root.findtext("arch") or "").strip(),
        machine=(root.findtext("machine") or "").strip(),
        max_vcpus=_int(vcpu.get("max")) if vcpu is not None else None,
        cpu_modes=modes,
        host_model=((host_model.findtext("model") if host_model is not None else "") or "").strip(),
        usable_models=usable,
        firmware=firmware,
        secure_boot="yes" in _texts(loader, "enum[@name='secure']/value"),
        tpm_models=_texts(root, "devices/tpm[@supported='yes']/enum[@name='model']/value"),
        tpm_backends=_texts(root, "devices/tpm[@supported='yes']/enum[@name='backendModel']/value"),
        tpm_versions=_texts(root, "devices/tpm[@supported='yes']/enum[@name='backendVersion']/value"),
        filesystem_drivers=_texts(root, "devices/filesystem[@supported='yes']/enum[@name='driverType']/value"),
        sev=sev,
        launch_security_types=sectypes,
        # as the core's DomainCaps.tdx: the <tdx> feature, or TDX among the launch security types
        tdx=(tdx_el is not None and tdx_el.get("supported") == "yes") or "tdx" in sectypes,
    )


def host_model_cpu_xml(domcaps_xml: str | bytes) -> Optional[str]:
    """The host-model CPU of a domcapabilities document as a ``<cpu>`` element (what virsh builds)."""
    from lxml import etree
    root = _root(domcaps_xml)
    mode = root.find("cpu/mode[@name='host-model']")
    if mode is None or mode.get("supported") != "yes" or mode.find("model") is None:
        return None
    cpu = etree.Element("cpu", mode="custom", match="exact")
    for child in mode:
        cpu.append(child)
    return etree.tostring(cpu, encoding="unicode")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """A cpuset such as ``0-3,^2,8`` (libvirt's syntax) as CPU numbers."""
    out: set[int] = set()
    excluded: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        target = excluded if part.startswith("^") else out
        part = part.lstrip("^")
        lo, _sep, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            continue
        target.update(range(start, end + 1))
    return tuple(sorted(out - excluded))


def domain_usage(xml: str | bytes) -> DomainUsage:
    root = _root(xml)
    vcpu = root.find("vcpu")
    count = _int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else _int(root.findtext("vcpu"))
    memory = _bytes(root.find("currentMemory")) or _bytes(root.find("memory")) or 0
    ls = root.find("launchSecurity")
    kind: Optional[str] = None
    if ls is not None:
        kind = ls.get("type")
        if kind == "sev":
            policy = _int_any(ls.findtext("policy"))
            if policy is not None and policy & SEV_ES_POLICY_BIT:
                kind = "sev-es"
    pinned: set[int] = set()
    for pin in root.findall("cputune/vcpupin"):
        pinned.update(parse_cpulist(pin.get("cpuset", "")))
    return DomainUsage(root.findtext("name") or "", count or 1, memory, kind, tuple(sorted(pinned)))


def _int_any(text: Optional[str]) -> Optional[int]:
    try:
        return int(text.strip(), 0) if text and text.strip() else None
    except ValueError:
        return None


def summarize_running(xmls: tuple[str, ...]) -> Running:
    usages = [domain_usage(x) for x in xmls]
    pinned: set[int] = set()
    for u in usages:
        pinned.update(u.pinned_cpus)
    return Running(
        domains=len(usages),
        vcpus=sum(u.vcpus for u in usages),
        memory_bytes=sum(u.memory_bytes for u in usages),
        sev=sum(1 for u in usages if u.launch_security == "sev"),
        sev_es=sum(1 for u in usages if u.launch_security in ("sev-es", "sev-snp")),
        tdx=sum(1 for u in usages if u.launch_security == "tdx"),
        pinned_cpus=tuple(sorted(pinned)),
        names=tuple(sorted(u.name for u in usages)),
    )


def assemble(a: Answers) -> HostFacts:
    """Facts from answers: no I/O, so recorded answers give the same facts a live host would."""
    caps = parse_capabilities(a.capabilities_xml)
    notes = list(a.notes)
    nodes = []
    for cell in caps.cells:
        free_pages = tuple(sorted((size, count) for size, count in a.free_pages.get(cell.id, {}).items()
                                  if size > 4))
        nodes.append(NumaNode(cell.id, tuple(c.id for c in cell.cpus), cell.memory_bytes,
                              a.cells_free.get(cell.id), free_pages))
    if nodes and all(n.free_bytes is not None for n in nodes):
        free: Optional[int] = sum(n.free_bytes or 0 for n in nodes)
    else:
        free = a.free_memory if a.free_memory else None
        if free is None:
            notes.append("free memory: not reported by this driver")
    domcaps = None
    chosen = None
    for vt in ("kvm", "qemu", "test"):
        if vt in a.domcaps_xml:
            chosen = vt
            domcaps = parse_domcaps(a.domcaps_xml[vt])
            break
    error = None
    if domcaps is None:
        error = next(iter(a.domcaps_errors.values()), "no domain capabilities")
    if chosen == "kvm" and not caps.no_hardware_virt:
        accel = "kvm"
    elif chosen == "kvm" or "qemu" in a.domcaps_xml:
        accel = "tcg"
        if chosen == "kvm":
            notes.append("KVM is advertised but the host CPU has no vmx/svm: guests run under TCG")
            # The qemu (TCG) answer describes what such a host can really run.
            if "qemu" in a.domcaps_xml:
                domcaps = parse_domcaps(a.domcaps_xml["qemu"])
    else:
        accel = "none"
    info = a.info
    cpus = sum(len(c.cpus) for c in caps.cells) or (int(info[2]) if len(info) > 2 else 0)
    memory = sum(c.memory_bytes or 0 for c in caps.cells) or (int(info[1]) * 1024 * 1024 if len(info) > 1 else 0)
    if not caps.cells and len(info) > 4:
        notes.append(f"NUMA: the driver lists no cells; node info says {info[4]} node(s)")
    return HostFacts(
        libvirt_version=version_text(a.lib_version),
        hypervisor=a.hv_type,
        hypervisor_version=version_text(a.hv_version) if a.hv_version else "",
        hostname=a.hostname,
        caps=caps if caps.cpu_model or not info else _with_model(caps, str(info[0])),
        cpus=cpus,
        memory_bytes=memory,
        nodes=tuple(nodes),
        free_memory_bytes=free,
        accel=accel,
        domcaps=domcaps,
        domcaps_error=error,
        running=summarize_running(a.running_xml),
        notes=tuple(notes),
    )


def _with_model(caps: CapsFacts, model: str) -> CapsFacts:
    from dataclasses import replace
    # The test driver's capabilities have no CPU model; its node info carries the <model> of the node file.
    return replace(caps, cpu_model=model)


# -- I/O --------------------------------------------------------------------------------------
def gather(conn: Any, virt_types: tuple[str, ...] = ("kvm", "qemu")) -> HostFacts:
    return assemble(collect(conn, virt_types))


def collect(conn: Any, virt_types: tuple[str, ...] = ("kvm", "qemu")) -> Answers:
    """Ask one connection everything ``assemble`` needs; a missing API becomes a note."""
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    notes: list[str] = []

    def ask(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            notes.append(f"{what}: {libvirt_error_text(exc)}")
            return None

    caps_xml = conn.getCapabilities()
    caps = parse_capabilities(caps_xml)
    hostname = ask("hostname", conn.getHostname) or ""
    info = tuple(ask("node info", conn.getInfo) or ())
    cells_free: dict[int, int] = {}
    free_pages: dict[int, dict[int, int]] = {}
    if caps.cells:
        ids = [c.id for c in caps.cells]
        answer = ask("free memory per node", conn.getCellsFreeMemory, min(ids), max(ids) - min(ids) + 1)
        if answer:
            for offset, value in enumerate(answer):
                if min(ids) + offset in ids:
                    cells_free[min(ids) + offset] = int(value)
        sizes = [s for s in caps.page_sizes_kib if s > 4]
        if sizes:
            pages = ask("free hugepages", conn.getFreePages, sizes, min(ids), max(ids) - min(ids) + 1, 0)
            for cell, counts in (pages or {}).items():
                free_pages[int(cell)] = {int(k): int(v) for k, v in counts.items()}
    free_memory = None if cells_free else ask("free memory", conn.getFreeMemory)
    domcaps_xml: dict[str, str] = {}
    domcaps_errors: dict[str, str] = {}
    machine = "q35" if caps.arch in ("x86_64", "i686") else None
    wanted = [vt for vt in virt_types if not caps.virt_types or vt in caps.virt_types]
    if not wanted and caps.virt_types:
        # e.g. the test driver offers only 'test' guests: ask anyway, its answer is the fact.
        wanted, machine = [caps.virt_types[0]], None
    for vt in wanted:
        try:
            domcaps_xml[vt] = conn.getDomainCapabilities(None, caps.arch or None, machine, vt, 0)
        except libvirt.libvirtError as exc:
            domcaps_errors[vt] = libvirt_error_text(exc)
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                break  # the driver has no such API at all (test:///): asking for qemu changes nothing
            continue
        if vt == "kvm" and caps.no_hardware_virt:
            continue  # KVM advertised without vmx/svm: also ask for TCG, which is what really runs
        break
    if not wanted:
        domcaps_errors["none"] = f"the host offers no {'/'.join(virt_types)} guests for {caps.arch or 'its arch'}"
    running: list[str] = []
    domains = ask("running domains", conn.listAllDomains, libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE) or []
    for dom in domains:
        try:
            running.append(dom.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # it stopped between the list and the read
    return Answers(
        lib_version=conn.getLibVersion(),
        hv_type=conn.getType(),
        hv_version=ask("hypervisor version", conn.getVersion) or 0,
        hostname=hostname,
        capabilities_xml=caps_xml,
        info=info,
        cells_free=cells_free,
        free_memory=free_memory,
        free_pages=free_pages,
        domcaps_xml=domcaps_xml,
        domcaps_errors=domcaps_errors,
        running_xml=tuple(running),
        notes=tuple(notes),
    )


def facts_json(f: HostFacts) -> dict[str, Any]:
    dc = f.domcaps
    ls = {}
    for kind in f.launch_security_offered():
        ls[kind] = {"free_slots": f.free_slots(kind)}
    return {
        "libvirt_version": f.libvirt_version,
        "hypervisor": f.hypervisor,
        "hypervisor_version": f.hypervisor_version,
        "hostname": f.hostname,
        "arch": f.arch,
        "cpu_model": f.caps.cpu_model,
        "cpu_vendor": f.caps.cpu_vendor,
        "cpus": f.cpus,
        "memory_bytes": f.memory_bytes,
        "free_memory_bytes": f.free_memory_bytes,
        "numa_nodes": [{"id": n.id, "cpus": list(n.cpus), "memory_bytes": n.memory_bytes,
                        "free_bytes": n.free_bytes,
                        "free_hugepages": {str(size): count for size, count in n.free_hugepages}}
                       for n in f.nodes],
        "accel": f.accel,
        "launch_security": ls,
        "sev": {"max_guests": dc.sev.max_guests, "max_es_guests": dc.sev.max_es_guests,
                "running_sev": f.running.sev, "running_es_snp": f.running.sev_es} if dc and dc.sev.supported else None,
        "domcaps_virt_type": dc.virt_type if dc else None,
        "domcaps_error": f.domcaps_error,
        "machine": dc.machine if dc else None,
        "host_model": dc.host_model if dc else None,
        "firmware": list(dc.firmware) if dc else None,
        "secure_boot": dc.secure_boot if dc else None,
        "virtiofs": dc.virtiofs if dc else None,
        "tpm": {"models": list(dc.tpm_models), "backends": list(dc.tpm_backends),
                "versions": list(dc.tpm_versions)} if dc else None,
        "running_domains": f.running.domains,
        "running_vcpus": f.running.vcpus,
        "notes": list(f.notes),
    }
