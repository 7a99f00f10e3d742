"""Resolved settings -> VM model. The core's generic mapping of every setting key.

Scenarios decide values (with reasons) in their plugins; this module only knows
how each key shows up in libvirt's model, so any scenario can use any knob.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from dataclasses import field
from typing import Optional

from . import __version__
from . import model as m
from .context import BuildContext
from .errors import ConfigError
from .hostinfo import format_cpulist, version_text
from .records import FrozenRecord, Record, frozen_record, record
from .types import HostInfo, Settings

#: Default launch-security policies, as libvirt and virt-install document them.
SEV_POLICY = 0x03  # NODBG | NOKS (libvirt kbase launch_security_sev)
SEV_ES_POLICY = 0x07  # + ES (virt-install when domcaps report SEV-ES)
SEV_SNP_POLICY = 0x30000  # SMT allowed + reserved bit 17 (nova SEV-SNP spec, libvirt tests)
TDX_POLICY = 0x10000000  # sept-ve-disable, QEMU's default (libvirt commit e919a4dd)
#: Minimum libvirt for each launch-security type (schema and driver support).
LAUNCH_SECURITY_MIN_LIBVIRT = {"sev": 4_005_000, "sev-es": 8_000_000, "sev-snp": 10_005_000, "tdx": 11_006_000}


@record
class Identity(Record):
    """What must stay stable across regenerations of one VM (kept in its vm.yaml)."""

    uuid: str = ""
    macs: list[str] = field(default_factory=list)
    secret_uuids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls) -> Identity:
        return cls(uuid=str(uuidlib.uuid4()))

    def mac(self, index: int) -> str:
        while len(self.macs) <= index:
            # 52:54:00 is the prefix libvirt and QEMU use for KVM guests (locally administered range).
            octets = [random.SystemRandom().randrange(256) for _ in range(3)]
            self.macs.append("52:54:00:" + ":".join(f"{o:02x}" for o in octets))
        return self.macs[index]

    def secret_uuid(self, image_path: str) -> str:
        if image_path not in self.secret_uuids:
            self.secret_uuids[image_path] = str(uuidlib.uuid4())
        return self.secret_uuids[image_path]


@frozen_record
class DiskPlan(FrozenRecord):
    """One disk of the VM: an image to create (size set) or an existing one."""

    path: str
    format: str
    size: Optional[int]
    bus: str
    cache: Optional[str]
    io: Optional[str]
    discard: Optional[str]
    encrypted: bool = False
    block: bool = False

    @property
    def create(self) -> bool:
        return self.size is not None


@frozen_record
class NetPlan(FrozenRecord):
    kind: str  # network|bridge|user
    source: str
    model: str
    mac: str
    queues: Optional[int]


def _target(bus: str, index: int) -> str:
    prefix = "vd" if bus == "virtio" else "sd"
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return prefix + letters


def build_domain(settings: Settings, ctx: BuildContext, identity: Identity, disks: list[DiskPlan],
                 nets: list[NetPlan], cdrom: Optional[str], machine: str, launch_security: str,
                 share_dir: Optional[str]) -> m.Domain:
    s = settings.value
    dom = m.Domain(name=ctx.vm_name, uuid=identity.uuid, type=s("vm.virt_type"))
    dom.title = s("vm.title")
    dom.metadata = m.Metadata(ctx.scenario.name, ctx.scenario.version, ctx.plugin, __version__)
    dom.description = f"{ctx.scenario.name}: {ctx.scenario.summary}"
    dom.memory = s("vm.memory")
    dom.vcpus = s("vm.vcpus")
    dom.on_poweroff, dom.on_reboot, dom.on_crash = s("vm.on_poweroff"), s("vm.on_reboot"), s("vm.on_crash")
    iommu = True if s("devices.iommu") else None

    nthreads = s("cpu.iothreads")
    virtio_disks = sum(1 for plan in disks if plan.bus == "virtio")
    if nthreads > virtio_disks:
        # An iothread serves whole disks (libvirt 9.0 has no per-queue mapping): more
        # iothreads than virtio disks would sit idle, so declare only those used.
        if nthreads:
            ctx.note(f"cpu.iothreads={nthreads} reduced to {virtio_disks}: one iothread per virtio disk")
        nthreads = virtio_disks
    dom.iothreads = nthreads
    _memory(dom, settings)
    _cpu(dom, settings, ctx.host, ctx)
    _os(dom, settings, machine, launch_security, bool(cdrom))
    _features(dom, settings)
    _clock(dom, settings)
    dom.pm = m.Pm(suspend_to_mem=s("pm.suspend_to_mem"), suspend_to_disk=s("pm.suspend_to_disk"))

    dev = dom.devices
    dev.emulator = s("vm.emulator")
    counters: dict[str, int] = {}
    virtio_index = 0
    for plan in disks:
        key = "vd" if plan.bus == "virtio" else "sd"
        idx = counters.get(key, 0)
        counters[key] = idx + 1
        disk = m.Disk(target=_target(plan.bus, idx), source=plan.path, type="block" if plan.block else "file",
                      format=plan.format, bus=plan.bus, cache=plan.cache, io=plan.io, discard=plan.discard,
                      iommu=iommu if plan.bus == "virtio" else None)
        if plan.bus == "virtio" and nthreads:
            # Spread virtio disks over the declared iothreads (1-based ids), so none sits unused.
            disk.iothread = virtio_index % nthreads + 1
            virtio_index += 1
        if plan.encrypted:
            disk.encryption = m.Encryption("luks", identity.secret_uuid(plan.path))
        dev.disks.append(disk)
    if cdrom:
        idx = counters.get("sd", 0)
        counters["sd"] = idx + 1
        dev.disks.append(m.Disk(target=_target("sata", idx), source=cdrom, device="cdrom", format="raw",
                                bus="sata", readonly=True))
    if any(d.bus == "scsi" for d in disks):
        dev.controllers.append(m.Controller("scsi", model="virtio-scsi", index=0, iommu=iommu))
    if s("usb.controller") != "none":
        dev.controllers.append(m.Controller("usb", model=s("usb.controller"), index=0, ports=15))
    else:
        # Omitting the controller is not enough: libvirt then adds a default qemu-xhci on q35.
        dev.controllers.append(m.Controller("usb", model="none", index=0))
    wants_serial_bus = s("channel.guest_agent") or (s("channel.vdagent") and s("graphics.type") == "spice")
    if iommu and wants_serial_bus:
        # libvirt adds the virtio-serial controller implicitly, but without iommu: declare it.
        dev.controllers.append(m.Controller("virtio-serial", index=0, iommu=True))

    if s("filesystem.share") and share_dir:
        readonly = bool(s("filesystem.readonly"))
        if readonly and not _virtiofs_readonly_supported(ctx.libvirt_version):
            readonly = False
            ctx.note(f"virtiofs share {share_dir} is read-write: libvirt {version_text(ctx.libvirt_version)} "
                     "refuses <readonly/> on virtiofs (supported from libvirt 11.0); mount it read-only in "
                     f"the guest (mount -t virtiofs -o ro {s('filesystem.target')} /mnt)", "warning")
        dev.filesystems.append(m.Filesystem(source_dir=share_dir, target_dir=s("filesystem.target"),
                                            readonly=readonly))

    queues_setting = s("network.queues")
    for net in nets:
        queues = net.queues if net.queues is not None else queues_setting
        if queues == 0:
            queues = min(dom.vcpus, 8)
        if net.kind == "user" and net.model == "virtio" and queues and queues > 1:
            # libvirt refuses to start it: "multiqueue is not supported for network interfaces of type user".
            ctx.note(f"network.queues: user networking (slirp) has a single queue; the {queues} queues apply "
                     "to network= and bridge= interfaces only")
            queues = 1
        nic = m.Interface(type=net.kind, source=net.source, mac=net.mac, model=net.model,  # type: ignore[arg-type]
                          queues=queues if net.model == "virtio" and queues and queues > 1 else None,
                          iommu=iommu if net.model == "virtio" else None)
        dev.interfaces.append(nic)

    if s("console.serial"):
        dev.consoles.append(m.Console("pty", "serial"))
    if s("channel.guest_agent"):
        dev.channels.append(m.Channel("unix", "virtio", "org.qemu.guest_agent.0"))
    gtype = s("graphics.type")
    if s("channel.vdagent") and gtype == "spice":
        dev.channels.append(m.Channel("spicevmc", "virtio", "com.redhat.spice.0"))

    if gtype != "none":
        if s("input.tablet") and s("usb.controller") != "none":
            dev.inputs.append(m.Input("tablet", "usb"))
        listen = s("graphics.listen")
        dev.graphics.append(m.Graphics(type=gtype, listen="none" if listen == "none" else "address",
                                       listen_address=None if listen == "none" else listen,
                                       keymap=s("graphics.keymap"),
                                       gl=True if s("video.accel3d") and gtype == "spice" else None))
        vmodel = s("video.model")
        dev.videos.append(m.Video(model=vmodel, accel3d=s("video.accel3d") if vmodel == "virtio" else None,
                                  iommu=iommu if vmodel == "virtio" else None))
    else:
        dev.videos.append(m.Video(model="none"))
    if s("input.keyboard"):
        dev.inputs.append(m.Input("keyboard", s("input.keyboard")))
    if s("input.mouse"):
        dev.inputs.append(m.Input("mouse", s("input.mouse")))

    if s("tpm.model") != "none":
        dev.tpms.append(m.Tpm(model=s("tpm.model"), backend=s("tpm.backend"),
                              version=s("tpm.version") if s("tpm.backend") == "emulator" else None,
                              device_path="/dev/tpm0" if s("tpm.backend") == "passthrough" else None))
    if s("sound.model") != "none":
        dev.sounds.append(m.Sound(s("sound.model")))
    if s("watchdog.model") != "none":
        dev.watchdogs.append(m.Watchdog(s("watchdog.model"), s("watchdog.action")))
    dev.memballoon = m.MemBalloon(model=s("memory.balloon"),
                                  iommu=iommu if s("memory.balloon") == "virtio" else None)
    if s("rng.model") != "none":
        dev.rngs.append(m.Rng(model="virtio", backend="/dev/urandom", iommu=iommu))

    if launch_security != "none":
        dom.launch_security = _launch_security(launch_security, settings, ctx)
    return dom


def _virtiofs_readonly_supported(version: Optional[int]) -> bool:
    return version is not None and version >= 11_000_000


def _memory(dom: m.Domain, settings: Settings) -> None:
    s = settings.value
    mb = dom.memory_backing
    if s("memory.hugepages"):
        size_kib = s("memory.hugepage_size") // 1024
        mb.hugepages.append(m.HugePage(size_kib))
    mb.nosharepages = bool(s("memory.nosharepages"))
    mb.locked = bool(s("memory.locked"))
    mb.source = s("memory.source")
    mb.access = s("memory.access")
    mb.discard = bool(s("memory.discard"))
    overhead = s("memory.hard_limit_overhead")
    if overhead:
        dom.memtune = m.MemTune(hard_limit=dom.memory + overhead)


def _cpu(dom: m.Domain, settings: Settings, host: Optional[HostInfo], ctx: BuildContext) -> None:
    s = settings.value
    cpu = dom.cpu
    cpu.mode = s("cpu.mode")
    cpu.migratable = s("cpu.migratable") if cpu.mode == "host-passthrough" else None
    cpu.check = s("cpu.check")
    if cpu.mode == "custom":
        if not s("cpu.model"):
            raise ConfigError("cpu.mode=custom needs cpu.model (e.g. --set cpu.model=EPYC)")
        cpu.model = s("cpu.model")
        cpu.model_fallback = "forbid"
    cpu.cache_mode = s("cpu.cache")
    if cpu.cache_mode == "passthrough" and cpu.mode not in ("host-passthrough", "maximum"):
        # libvirt only passes the host cache through with host-passthrough/maximum CPUs.
        ctx.note(f"cpu.cache=passthrough needs cpu.mode host-passthrough or maximum; using emulate "
                 f"with cpu.mode={cpu.mode}")
        cpu.cache_mode = "emulate"
    topo = s("cpu.topology")
    if topo == "host" and host and host.threads_per_core == 2 and dom.vcpus % 2 == 0:
        cpu.topology = m.CpuTopology(sockets=1, cores=dom.vcpus // 2, threads=2)
    elif topo in ("cores", "host"):
        cpu.topology = m.CpuTopology(sockets=1, cores=dom.vcpus, threads=1)
    for name in (s("cpu.features") or "").split(","):
        name = name.strip()
        if name:
            cpu.features.append(m.CpuFeature(name.lstrip("-+"), "disable" if name.startswith("-") else "require"))
    if s("cpu.pinning") == "auto":
        _pinning(dom, settings, host, ctx)
    if s("cpu.scheduler") != "none":
        dom.cputune.vcpusched.append(m.VcpuSched(f"0-{dom.vcpus - 1}", s("cpu.scheduler"), s("cpu.priority")))


def housekeeping_split(host: HostInfo, housekeeping_cores: int) -> tuple[list[int], list[int]]:
    """Split host CPUs into (housekeeping, dedicated), keeping SMT siblings together.

    The first ``housekeeping_cores`` cores of each socket (all their threads) stay
    with the host; the rest are ordered core by core so sibling threads are adjacent.
    """
    cores: dict[tuple[int, int], list[int]] = {}
    for c in host.cpus:
        cores.setdefault((c.socket, c.core), []).append(c.id)
    house: list[int] = []
    dedicated: list[int] = []
    per_socket: dict[int, int] = {}
    for (socket, _core), ids in sorted(cores.items()):
        if per_socket.get(socket, 0) < housekeeping_cores:
            per_socket[socket] = per_socket.get(socket, 0) + 1
            house.extend(sorted(ids))
        else:
            dedicated.extend(sorted(ids))
    return house, dedicated


def _pinning(dom: m.Domain, settings: Settings, host: Optional[HostInfo], ctx: BuildContext) -> None:
    if not host or not host.cpus:
        ctx.note("cpu.pinning=auto: host topology unknown (offline); vCPUs are not pinned — "
                 "use --connect or --host-root to pin")
        return
    house, dedicated = housekeeping_split(host, settings.value("cpu.housekeeping_cpus"))
    if len(dedicated) < dom.vcpus:
        ctx.note(f"cpu.pinning=auto: the host has {len(dedicated)} CPUs left after housekeeping "
                 f"({format_cpulist(house)}), fewer than {dom.vcpus} vCPUs; vCPUs are not pinned", "warning")
        return
    tune = dom.cputune
    for vcpu in range(dom.vcpus):
        tune.vcpupin.append(m.Pin(vcpu, str(dedicated[vcpu])))
    tune.emulatorpin = format_cpulist(house)
    for iothread in range(1, dom.iothreads + 1):
        tune.iothreadpin.append(m.Pin(iothread, format_cpulist(house)))
    node_of = {c.id: c.node for c in host.cpus}
    nodes = {node_of[cpu] for cpu in dedicated[:dom.vcpus]}
    if len(host.nodes) > 1 and len(nodes) == 1 and dom.numatune is None:
        # Keep memory on the node of the pinned vCPUs. 'preferred', not 'strict': the host's
        # hugepage pool is not reserved per node by default, and strict would refuse to start then.
        node = nodes.pop()
        dom.numatune = m.NumaTune(mode="preferred", nodeset=str(node))
        ctx.note(f"cpu.pinning=auto: vCPUs on NUMA node {node}; guest memory preferred from that node")
    elif len(nodes) > 1:
        ctx.note(f"cpu.pinning=auto: the vCPUs span NUMA nodes {format_cpulist(sorted(nodes))}; memory is not "
                 "bound (a guest NUMA topology would be needed)", "warning")


def _os(dom: m.Domain, settings: Settings, machine: str, launch_security: str, has_cdrom: bool) -> None:
    s = settings.value
    os_ = dom.os
    os_.arch = s("vm.arch")
    os_.machine = machine
    if s("firmware.type") == "efi":
        os_.firmware = "efi"
        for key, name in (("firmware.secure_boot", "secure-boot"), ("firmware.enrolled_keys", "enrolled-keys")):
            if s(key) is not None:
                os_.firmware_features.append(m.FirmwareFeature(name, bool(s(key))))
        if s("firmware.stateless"):
            os_.loader_stateless = True
    os_.boot = ["cdrom", "hd"] if has_cdrom else ["hd"]


def _features(dom: m.Domain, settings: Settings) -> None:
    s = settings.value
    f = dom.features
    smm = s("features.smm")
    if smm is None and s("firmware.secure_boot"):
        smm = True  # secure boot firmware needs SMM to protect its variable store
    f.smm = smm
    f.pmu = s("features.pmu")
    if s("features.hyperv"):
        f.hyperv = m.HyperV()
    f.kvm_hint_dedicated = s("features.kvm_hint_dedicated")
    f.kvm_poll_control = s("features.kvm_poll_control")


def _clock(dom: m.Domain, settings: Settings) -> None:
    s = settings.value
    timers = [m.Timer("rtc", tickpolicy=s("clock.rtc_tickpolicy")),
              m.Timer("pit", tickpolicy=s("clock.pit_tickpolicy")),
              m.Timer("hpet", present=bool(s("clock.hpet")))]
    if s("clock.kvmclock") is not None:
        timers.append(m.Timer("kvmclock", present=bool(s("clock.kvmclock"))))
    if s("features.hyperv"):
        timers.append(m.Timer("hypervclock", present=True))
    dom.clock = m.Clock(offset=s("clock.offset"), timers=timers)


def _launch_security(kind: str, settings: Settings, ctx: BuildContext) -> m.LaunchSecurity:
    policy = settings.value("launch_security.policy")
    caps = ctx.caps
    if kind in ("sev", "sev-es"):
        ls = m.LaunchSecurity("sev", policy=policy if policy is not None else
                              (SEV_ES_POLICY if kind == "sev-es" else SEV_POLICY))
        if caps and caps.sev.supported:
            ls.cbitpos, ls.reduced_phys_bits = caps.sev.cbitpos, caps.sev.reduced_phys_bits
        return ls
    if kind == "sev-snp":
        ls = m.LaunchSecurity("sev-snp", policy=policy if policy is not None else SEV_SNP_POLICY)
        if caps and caps.sev.supported:
            ls.cbitpos, ls.reduced_phys_bits = caps.sev.cbitpos, caps.sev.reduced_phys_bits
        return ls
    return m.LaunchSecurity("tdx", policy=policy if policy is not None else TDX_POLICY)
