"""migrate-check: can this VM live-migrate to that host, by libvirt's own rules?

The rules are libvirt 9.0.0's (src/qemu/qemu_migration.c, read in the libvirt_9.0.0
source), checked before anything moves:

- CPU: the VM's CPU against the target with ``virConnectCompareHypervisorCPU``
  (``VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE`` gives libvirt's own reason). A running
  VM's live CPU is used as libvirt sends it (``VIR_DOMAIN_XML_MIGRATABLE``); a stored
  host-model CPU becomes the source host's host-model CPU, which is what it expands to.
- machine type: the target's ``virConnectGetDomainCapabilities`` for that machine.
- storage, ``qemuMigrationSrcIsSafe``: empty and read-only disks are safe; network
  disks are safe; a file on a local filesystem is "Migration without shared storage
  is unsafe" unless copied (``--copy-storage-all``), and the target then needs the
  file or a storage pool at its directory (``qemuMigrationDstPrecreateDisk`` looks up
  ``virStoragePoolLookupByTargetPath``); a volume disk (``<disk type='volume'>``) is
  resolved by pool name on each host: shared only when that pool is shared on both, and
  copied into the target's pool of that name (``virStoragePoolLookupByName``) otherwise;
  NVMe disks are unsafe; on a cluster
  filesystem (GFS2, OCFS2, CephFS, GlusterFS: ``virFileIsClusterFS``) any cache is
  safe; otherwise a shareable disk or cache none/directsync is safe, and any other
  cache is safe only when the source QEMU can drop the page cache
  (``QEMU_CAPS_MIGRATION_FILE_DROP_CACHE``, present from QEMU 4.2, the oldest QEMU
  libvirt 9.0 supports), else "Migration may lead to data corruption if disks use
  cache other than none or directsync".
- ``qemuMigrationSrcIsAllowed``/``...AllowedHostdev``: snapshots, host devices other
  than USB (PCI only with ``<teaming type='transient'>``), virtiofs, vDPA, legacy
  ivshmem, transient disks, ``invtsc`` without a TSC frequency.
- launch security: QEMU adds a migration blocker ("SEV: Migration is not
  implemented", target/i386/sev.c), which libvirt reports.
- the target must not be the source ("Attempt to migrate guest to the same host",
  qemu_migration_cookie.c, by host UUID) nor already run the VM.
- hugepages of the VM's size free on the target; free memory (a warning).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from ..host.facts import version_text
from .facts import HostFacts, host_model_cpu_xml

LIBVIRT_MIGRATION = "libvirt 9.0.0 src/qemu/qemu_migration.c"
SAFE = LIBVIRT_MIGRATION + " qemuMigrationSrcIsSafe"
ALLOWED = LIBVIRT_MIGRATION + " qemuMigrationSrcIsAllowed"
PRECREATE = LIBVIRT_MIGRATION + " qemuMigrationDstPrecreateDisk"
COOKIE = "libvirt 9.0.0 src/qemu/qemu_migration_cookie.c"
COMPARE = "https://libvirt.org/html/libvirt-libvirt-host.html#virConnectCompareHypervisorCPU"
DOMCAPS = "https://libvirt.org/formatdomaincaps.html"
QEMU_SEV = "QEMU target/i386/sev.c (migrate_add_blocker 'SEV: Migration is not implemented')"
NOVA_TDX = "openstack/nova-specs specs/2026.2/approved/intel-tdx-libvirt-support.rst (live migration: ongoing)"
DROP_CACHE_QEMU = 4002000  # QEMU 4.2.0: libvirt 9.0's oldest QEMU; its capabilities data has migration-file-drop-cache

#: Storage pool types whose volumes every host reaches (libvirt formatstorage.html).
SHARED_POOLS = ("netfs", "gluster", "rbd", "iscsi", "iscsi-direct", "scsi", "mpath", "sheepdog", "vstorage")
#: Pool (type, format) on a coherent cluster filesystem: virFileIsClusterFS (GFS2, OCFS2, CephFS, GlusterFS).
CLUSTER_FORMATS = {("netfs", "glusterfs"), ("fs", "gfs2"), ("fs", "ocfs2"), ("gluster", None)}

COMPARE_FAIL_INCOMPATIBLE = 1  # VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE
XML_MIGRATABLE = 8  # VIR_DOMAIN_XML_MIGRATABLE


@dataclass(frozen=True)
class Finding:
    area: str  # host, cpu, machine, storage, devices, memory
    status: str  # ok, warning, blocker
    message: str
    source: str

    def as_json(self) -> dict[str, str]:
        return {"area": self.area, "status": self.status, "message": self.message, "source": self.source}


@dataclass(frozen=True)
class Report:
    vm: str
    source: Optional[str]
    target: str
    xml_from: str  # where the domain XML came from
    findings: tuple[Finding, ...]

    @property
    def blockers(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == "blocker")

    @property
    def ok(self) -> bool:
        return not self.blockers

    def as_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "source": self.source, "target": self.target, "xml_from": self.xml_from,
                "migratable": self.ok, "findings": [f.as_json() for f in self.findings]}


@dataclass(frozen=True)
class Disk:
    target: str
    device: str
    type: str  # file, block, network, volume, nvme, dir
    path: Optional[str]  # file/block path, or pool/volume for type volume
    readonly: bool
    shareable: bool
    transient: bool
    cache: Optional[str]


@dataclass(frozen=True)
class DomainView:
    """What the migration rules read from a domain XML."""

    name: str
    uuid: str
    virt_type: str
    arch: str
    machine: str
    memory_bytes: int
    cpu_mode: str
    cpu_xml: Optional[str]
    cpu_features: tuple[tuple[str, str], ...]
    tsc_frequency: bool
    disks: tuple[Disk, ...]
    hostdevs: tuple[str, ...]  # one description per device that blocks migration
    virtiofs: tuple[str, ...]
    launch_security: Optional[str]
    hugepage_kib: Optional[int]  # 0: the host's default size
    vdpa: int
    legacy_shmem: tuple[str, ...]


def view(xml: str | bytes) -> DomainView:
    from lxml import etree

    from .facts import _bytes, _root
    root = _root(xml)
    cpu = root.find("cpu")
    mode = (cpu.get("mode") if cpu is not None else None) or "custom"
    cpu_xml = etree.tostring(cpu, encoding="unicode") if cpu is not None else None
    features = tuple((f.get("name"), f.get("policy") or "require") for f in
                     (cpu.findall("feature") if cpu is not None else []) if f.get("name"))
    tsc = any(t.get("name") == "tsc" and t.get("frequency") for t in root.findall("clock/timer"))
    disks = []
    for d in root.findall("devices/disk"):
        src = d.find("source")
        kind = d.get("type") or "file"
        path = None
        if src is not None:
            if kind == "volume":
                path = f"{src.get('pool')}/{src.get('volume')}" if src.get("volume") else None
            elif kind == "network":
                path = f"{src.get('protocol')}:{src.get('name') or ''}"
            else:
                path = src.get("file") or src.get("dev") or src.get("dir")
        drv = d.find("driver")
        disks.append(Disk(d.find("target").get("dev") if d.find("target") is not None else "?",
                          d.get("device") or "disk", kind, path, d.find("readonly") is not None,
                          d.find("shareable") is not None, d.find("transient") is not None,
                          drv.get("cache") if drv is not None else None))
    hostdevs = []
    for h in root.findall("devices/hostdev"):
        if h.get("mode") == "capabilities":
            hostdevs.append("<hostdev mode='capabilities'>")
        elif h.get("type") == "pci":
            teaming = h.find("teaming")
            if teaming is None or teaming.get("type") != "transient":
                hostdevs.append("<hostdev mode='subsystem' type='pci'>")
        elif h.get("type") in ("scsi", "scsi_host", "mdev"):
            hostdevs.append(f"<hostdev mode='subsystem' type='{h.get('type')}'>")
    for i in root.findall("devices/interface[@type='hostdev']"):
        teaming = i.find("teaming")
        if teaming is None or teaming.get("type") != "transient":
            hostdevs.append("<interface type='hostdev'>")
    virtiofs = tuple(fs.find("target").get("dir", "?") if fs.find("target") is not None else "?"
                     for fs in root.findall("devices/filesystem[driver]")
                     if fs.find("driver").get("type") == "virtiofs")
    ls = root.find("launchSecurity")
    hp = root.find("memoryBacking/hugepages")
    hp_kib: Optional[int] = None
    if hp is not None:
        page = hp.find("page")
        hp_kib = 0
        if page is not None and page.get("size"):
            from ..units import parse_size
            hp_kib = parse_size(f"{page.get('size')}{page.get('unit') or 'KiB'}", "KiB", what="page size") // 1024
    os_type = root.find("os/type")
    shmem = tuple(s.get("name") or "?" for s in root.findall("devices/shmem")
                  if (s.find("model") is not None and s.find("model").get("type") == "ivshmem")
                  or s.get("role") not in (None, "master"))
    return DomainView(
        name=root.findtext("name") or "",
        uuid=(root.findtext("uuid") or "").strip(),
        virt_type=root.get("type") or "kvm",
        arch=(os_type.get("arch") if os_type is not None else None) or "x86_64",
        machine=(os_type.get("machine") if os_type is not None else None) or "",
        memory_bytes=_bytes(root.find("memory")) or 0,
        cpu_mode=mode,
        cpu_xml=cpu_xml,
        cpu_features=features,
        tsc_frequency=tsc,
        disks=tuple(disks),
        hostdevs=tuple(hostdevs),
        virtiofs=virtiofs,
        launch_security=ls.get("type") if ls is not None else None,
        hugepage_kib=hp_kib,
        vdpa=len(root.findall("devices/interface[@type='vdpa']")),
        legacy_shmem=shmem,
    )


def xml_findings(v: DomainView) -> list[Finding]:
    """Blockers any host would raise, read from the XML alone."""
    out: list[Finding] = []
    for desc in v.hostdevs:
        out.append(Finding("devices", "blocker", f"cannot migrate a domain with {desc} (host devices other than USB "
                           "are tied to the source)", LIBVIRT_MIGRATION + " qemuMigrationSrcIsAllowedHostdev"))
    for target in v.virtiofs:
        out.append(Finding("devices", "blocker", f"virtiofs share {target!r}: migration with virtiofs device is not "
                           "supported", ALLOWED))
    if v.launch_security in ("sev", "sev-snp"):
        out.append(Finding("devices", "blocker", f"launch security {v.launch_security}: QEMU blocks migration "
                           "(SEV: Migration is not implemented)", QEMU_SEV))
    elif v.launch_security:
        out.append(Finding("devices", "blocker", f"launch security {v.launch_security}: live migration is not "
                           "available", NOVA_TDX))
    if v.vdpa:
        out.append(Finding("devices", "blocker", "vDPA devices cannot be migrated", ALLOWED))
    for name in v.legacy_shmem:
        out.append(Finding("devices", "blocker", f"shmem {name!r}: only ivshmem-plain/doorbell with role='master' "
                           "migrates", ALLOWED))
    for d in v.disks:
        if d.transient:
            out.append(Finding("storage", "blocker", f"disk {d.target}: migration with transient disk is not "
                               "supported", ALLOWED))
    if any(name == "invtsc" and policy in ("require", "force") for name, policy in v.cpu_features) \
            and not v.tsc_frequency:
        out.append(Finding("cpu", "blocker", "domain has 'invtsc' CPU feature but TSC frequency is not specified",
                           ALLOWED))
    if not any(f.status == "blocker" and f.area == "devices" for f in out):
        out.append(Finding("devices", "ok", "no host devices, virtiofs, launch security or vDPA", ALLOWED))
    return out


# -- checks that ask libvirt ------------------------------------------------------------------
def _err(exc: Exception) -> str:
    from .check import error_line
    return error_line(exc)


def check_host_identity(v: DomainView, target: Any, source: Any, t_facts: HostFacts,
                        s_facts: Optional[HostFacts]) -> list[Finding]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    out = []
    if s_facts is not None and t_facts.caps.host_uuid and t_facts.caps.host_uuid == s_facts.caps.host_uuid:
        out.append(Finding("host", "blocker", f"the target is the source host (host UUID {t_facts.caps.host_uuid}): "
                           "Attempt to migrate guest to the same host", COOKIE))
    try:
        dom = target.lookupByUUIDString(v.uuid) if v.uuid else None
    except libvirt.libvirtError:
        dom = None
    if dom is not None and dom.isActive() and not out:
        out.append(Finding("host", "blocker", f"{v.name} already runs on the target", ALLOWED))
    elif dom is None:
        try:
            other = target.lookupByName(v.name)
        except libvirt.libvirtError:
            other = None
        if other is not None:
            out.append(Finding("host", "blocker", f"the target has another domain named {v.name!r} "
                               f"(uuid {other.UUIDString()})", "libvirt virDomainObjListAdd"))
    if source is not None and v.uuid:
        try:
            snaps = source.lookupByUUIDString(v.uuid).snapshotNum(0)
        except libvirt.libvirtError:
            snaps = 0
        if snaps:
            out.append(Finding("host", "blocker", f"cannot migrate domain with {snaps} snapshots", ALLOWED))
    return out


def check_cpu(v: DomainView, target: Any, t_facts: HostFacts, source_domcaps: Optional[str],
              live: bool) -> list[Finding]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    cpu_xml = v.cpu_xml
    what = "the live CPU" if live else "the VM's CPU"
    if v.cpu_mode == "host-model" and not live:
        cpu_xml = host_model_cpu_xml(source_domcaps) if source_domcaps else None
        if cpu_xml is None:
            return [Finding("cpu", "warning", "host-model CPU: name the source host (--from) to compare the CPU it "
                            "expands to", COMPARE)]
        what = "the source's host-model CPU"
    elif v.cpu_mode in ("host-passthrough", "maximum"):
        return [Finding("cpu", "warning", f"cpu mode {v.cpu_mode}: the guest sees the host's own CPU; migration is "
                        "safe only between identical hosts", "https://libvirt.org/formatdomain.html"
                        "#cpu-model-and-topology")]
    if cpu_xml is None:
        return [Finding("cpu", "warning", "the domain has no <cpu> element: QEMU's default model", COMPARE)]
    try:
        result = target.compareHypervisorCPU(None, v.arch, v.machine or None, v.virt_type, cpu_xml,
                                             COMPARE_FAIL_INCOMPATIBLE)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
            return [Finding("cpu", "blocker", f"{what} is incompatible with the target: {_err(exc)}", COMPARE)]
        return [Finding("cpu", "warning", f"cannot compare {what} on the target: {_err(exc)}", COMPARE)]
    text = {1: "identical to", 2: "a subset of"}.get(result, "compatible with")
    offered = t_facts.domcaps.host_model if t_facts.domcaps and t_facts.domcaps.host_model else "its CPU"
    return [Finding("cpu", "ok", f"{what} is {text} what the target offers ({offered})", COMPARE)]


def check_machine(v: DomainView, target: Any) -> list[Finding]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        target.getDomainCapabilities(None, v.arch, v.machine or None, v.virt_type, 0)
    except libvirt.libvirtError as exc:
        status = "warning" if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT else "blocker"
        machine = v.machine or "(the default)"
        return [Finding("machine", status, f"machine {machine} ({v.virt_type}, {v.arch}) on the target: {_err(exc)}",
                        DOMCAPS)]
    return [Finding("machine", "ok", f"the target offers machine {v.machine} for {v.virt_type} {v.arch} guests",
                    DOMCAPS)]


@dataclass(frozen=True)
class PoolInfo:
    name: str
    type: str
    format: Optional[str]

    @property
    def shared(self) -> bool:
        return self.type in SHARED_POOLS or (self.type, self.format) in CLUSTER_FORMATS

    @property
    def cluster(self) -> bool:
        return (self.type, self.format) in CLUSTER_FORMATS or (self.type, None) in CLUSTER_FORMATS


def pool_of(conn: Any, path: str) -> Optional[PoolInfo]:
    """The storage pool holding ``path`` on ``conn``'s host (pools are refreshed by libvirt on start)."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        pool = conn.storageVolLookupByPath(path).storagePoolLookupByVolume()
        return _pool_info(pool)
    except libvirt.libvirtError:
        return None


def pool_at(conn: Any, directory: str) -> Optional[str]:
    """The name of the pool whose target is ``directory`` (virStoragePoolLookupByTargetPath)."""
    from ..host.hypervisor import quiet_libvirt
    from .facts import _root
    libvirt = quiet_libvirt()
    try:
        return str(conn.storagePoolLookupByTargetPath(directory).name())
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            return None
    # Drivers without that call (test:///): the same match, over the pools' XML.
    try:
        pools = conn.listAllStoragePools(0)
    except libvirt.libvirtError:
        return None
    want = os.path.normpath(directory)
    for pool in pools:
        path = _root(pool.XMLDesc(0)).findtext("target/path")
        if path and os.path.normpath(path.strip()) == want:
            return str(pool.name())
    return None


def _pool_info(pool: Any) -> PoolInfo:
    from .facts import _root
    root = _root(pool.XMLDesc(0))
    fmt = root.find("source/format")
    return PoolInfo(pool.name(), root.get("type") or "", fmt.get("type") if fmt is not None else None)


def check_storage(v: DomainView, target: Any, source: Any, source_qemu: Optional[int]) -> list[Finding]:
    out: list[Finding] = []
    for d in v.disks:
        label = f"disk {d.target}"
        if not d.path or d.readonly:
            out.append(Finding("storage", "ok", f"{label}: {'read-only' if d.path else 'empty'}: safe", SAFE))
            continue
        if d.type == "network":
            out.append(Finding("storage", "ok", f"{label}: network disk ({d.path}): shared", SAFE))
            continue
        if d.type == "nvme":
            out.append(Finding("storage", "blocker", f"{label}: NVMe disk: Migration without shared storage is "
                               "unsafe", SAFE))
            continue
        if d.type == "volume":
            out.extend(_volume(label, d, target, source, source_qemu))
            continue
        src_pool = pool_of(source, d.path) if source is not None else None
        tgt_pool = pool_of(target, d.path)
        where = src_pool or tgt_pool  # the target's pool counts when the source's is unknown (same NFS path)
        if where is not None and where.shared:
            if where.cluster:
                out.append(Finding("storage", "ok", f"{label}: {d.path} on a cluster filesystem (pool {where.name}, "
                                   f"{where.type}): shared, any cache is safe", SAFE + " (virFileIsClusterFS)"))
                continue
            out.append(Finding("storage", "ok", f"{label}: {d.path} on shared storage (pool {where.name}, "
                               f"{where.type})", SAFE))
            out.append(_cache_rule(label, d, source_qemu))
            continue
        out.extend(_to_copy(label, d, target, src_pool, source is not None))
    return out


def pool_named(conn: Any, name: str) -> Optional[PoolInfo]:
    """The storage pool ``name`` on ``conn``'s host, or None."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        return _pool_info(conn.storagePoolLookupByName(name))
    except libvirt.libvirtError:
        return None


def _volume(label: str, d: Disk, target: Any, source: Any, source_qemu: Optional[int]) -> list[Finding]:
    """A ``<disk type='volume'>``: each host resolves ``pool``/``volume`` in *its own* pool of that name.

    The source's pool says whether the storage is shared (libvirt judges the volume's
    translated path there, qemuMigrationSrcIsSafe); the target's pool of that name is where
    the destination opens the volume, or pre-creates it for a copy (qemuMigrationDstPrecreateDisk:
    virStoragePoolLookupByName for VIR_STORAGE_TYPE_VOLUME).
    """
    assert d.path is not None
    pool_name, _slash, vol_name = d.path.partition("/")
    tgt = pool_named(target, pool_name)
    if tgt is None:
        return [Finding("storage", "blocker", f"{label}: the target has no storage pool {pool_name!r} (the disk is "
                        f"volume {vol_name!r} of that pool, looked up by name on each host)", PRECREATE)]
    src = pool_named(source, pool_name) if source is not None else None
    if src is not None and src.shared and tgt.shared:
        if src.cluster and tgt.cluster:
            return [Finding("storage", "ok", f"{label}: volume {d.path} on a cluster filesystem on both hosts (pool "
                            f"{pool_name}: {src.type} on the source, {tgt.type} on the target): shared, any cache is "
                            "safe", SAFE + " (virFileIsClusterFS)")]
        return [Finding("storage", "ok", f"{label}: volume {d.path} on shared storage on both hosts (pool {pool_name}: "
                        f"{src.type} on the source, {tgt.type} on the target)", SAFE),
                _cache_rule(label, d, source_qemu)]
    if src is None and source is None and tgt.shared:
        return [Finding("storage", "warning", f"{label}: volume {d.path}: the target's pool {pool_name} is shared "
                        f"({tgt.type}); the source's is unknown (name the source with --from)", SAFE),
                _cache_rule(label, d, source_qemu)]
    if src is not None and src.shared:
        where = (f"on shared storage on the source (pool {pool_name}, {src.type}) but the target's pool {pool_name} "
                 f"is {tgt.type}, so the target would open another file")
    elif src is not None:
        where = f"local storage on the source (pool {pool_name}, {src.type})"
    elif source is not None:
        where = f"in no pool {pool_name!r} of the source"
    else:
        where = "storage of unknown kind (name the source with --from)"
    findings = [Finding("storage", "warning", f"{label}: volume {d.path} is {where}: migrate with "
                        "--copy-storage-all (or put it in a shared pool of that name on both hosts)", SAFE)]
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        target.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name)
        findings.append(Finding("storage", "ok", f"{label}: the target's pool {pool_name!r} already has volume "
                                f"{vol_name!r}", PRECREATE))
    except libvirt.libvirtError:
        findings.append(Finding("storage", "ok", f"{label}: libvirt can pre-create volume {vol_name!r} in the "
                                f"target's pool {pool_name!r} ({tgt.type})", PRECREATE))
    return findings


def _to_copy(label: str, d: Disk, target: Any, src_pool: Optional[PoolInfo], source_known: bool) -> list[Finding]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    if src_pool is not None:
        where = f"local storage on the source (pool {src_pool.name}, {src_pool.type})"
    elif source_known:
        where = "not in a storage pool of the source; libvirt checks its filesystem (virFileIsSharedFS) and " \
                "refuses a local one"
    else:
        where = "storage of unknown kind (name the source with --from)"
    findings = [Finding("storage", "warning", f"{label}: {d.path} is {where}: migrate with --copy-storage-all "
                        "(or put it on shared storage)", SAFE)]
    assert d.path is not None
    try:
        target.storageVolLookupByPath(d.path)
        findings.append(Finding("storage", "ok", f"{label}: the target already has {d.path}", PRECREATE))
        return findings
    except libvirt.libvirtError:
        pass
    directory = os.path.dirname(d.path)
    pool = pool_at(target, directory)
    if pool is not None:
        findings.append(Finding("storage", "ok", f"{label}: libvirt can pre-create it in the target's pool "
                                f"{pool!r} at {directory}", PRECREATE))
    else:
        # Files outside pools are invisible to the API: libvirt skips pre-creating a file that exists.
        findings.append(Finding("storage", "warning", f"{label}: the target has no storage pool at {directory}: "
                                f"libvirt can pre-create the copy only in a pool; otherwise {d.path} must exist there",
                                PRECREATE))
    return findings


def _cache_rule(label: str, d: Disk, source_qemu: Optional[int]) -> Finding:
    cache = d.cache or "default (writeback)"
    if d.shareable or d.cache in ("none", "directsync"):
        return Finding("storage", "ok", f"{label}: cache={d.cache or '-'}{' (shareable)' if d.shareable else ''}: "
                       "safe", SAFE)
    if source_qemu is not None and source_qemu >= DROP_CACHE_QEMU:
        return Finding("storage", "ok", f"{label}: cache={cache}: safe, the source QEMU {version_text(source_qemu)} "
                       "drops the page cache (QEMU_CAPS_MIGRATION_FILE_DROP_CACHE)", SAFE)
    if source_qemu is None:
        return Finding("storage", "warning", f"{label}: cache={cache}: safe only if the source QEMU can drop the page "
                       "cache (QEMU >= 4.2); otherwise use cache=none or directsync", SAFE)
    return Finding("storage", "blocker", f"{label}: cache={cache}: Migration may lead to data corruption if disks use "
                   "cache other than none or directsync", SAFE)


def check_memory(v: DomainView, t: HostFacts) -> list[Finding]:
    out = []
    if v.hugepage_kib is not None:
        size = v.hugepage_kib or 2048
        per_node = t.hugepages_free(size)
        need = -(-v.memory_bytes // (size * 1024))
        if not per_node:
            out.append(Finding("memory", "warning", f"hugepages: the target does not report free {size} KiB pages",
                               "https://libvirt.org/formatdomain.html#memory-backing"))
        elif sum(per_node.values()) < need:
            out.append(Finding("memory", "blocker", f"hugepages: the VM needs {need} free {size} KiB pages, the target "
                               f"has {sum(per_node.values())}", "https://libvirt.org/formatdomain.html#memory-backing"))
        else:
            out.append(Finding("memory", "ok", f"hugepages: {sum(per_node.values())} free {size} KiB pages on the "
                               f"target (needs {need})", "https://libvirt.org/formatdomain.html#memory-backing"))
    if t.free_memory_bytes is not None and v.memory_bytes > t.free_memory_bytes and v.hugepage_kib is None:
        out.append(Finding("memory", "warning", f"the target has {t.free_memory_bytes // 2**20} MiB free, less than "
                           f"the VM's {v.memory_bytes // 2**20} MiB", "virNodeGetFreeMemory"))
    return out


def migrate_check(xml: str, xml_from: str, vm: str, target_name: str, target: Any, t_facts: HostFacts,
                  source_name: Optional[str] = None, source: Any = None,
                  s_facts: Optional[HostFacts] = None, live: bool = False) -> Report:
    v = view(xml)
    source_domcaps = None
    if source is not None and v.cpu_mode == "host-model" and not live:
        try:
            source_domcaps = source.getDomainCapabilities(None, v.arch, v.machine or None, v.virt_type, 0)
        except Exception:  # noqa: BLE001 - reported below as "cannot compare"
            source_domcaps = None
    findings: list[Finding] = []
    findings += check_host_identity(v, target, source, t_facts, s_facts)
    findings += check_cpu(v, target, t_facts, source_domcaps, live)
    findings += check_machine(v, target)
    source_qemu = None
    if source is not None:
        try:
            source_qemu = source.getVersion()
        except Exception:  # noqa: BLE001
            source_qemu = None
    findings += check_storage(v, target, source, source_qemu)
    findings += xml_findings(v)
    findings += check_memory(v, t_facts)
    return Report(vm, source_name, target_name, xml_from, tuple(findings))


def live_xml(source: Any, name: str, uuid: Optional[str] = None) -> Optional[str]:
    """The running domain's XML as libvirt sends it to a destination, or None if it does not run there."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        dom = source.lookupByUUIDString(uuid) if uuid else source.lookupByName(name)
    except libvirt.libvirtError:
        return None
    if not dom.isActive():
        return None
    try:
        return str(dom.XMLDesc(XML_MIGRATABLE))
    except libvirt.libvirtError:
        return str(dom.XMLDesc(0))  # drivers without the flag (test:///)
