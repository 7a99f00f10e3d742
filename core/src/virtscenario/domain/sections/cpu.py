"""vCPUs: count, model, topology, features, iothreads, pinning, real-time scheduling.

``<vcpu>``, ``<iothreads>``, ``<cputune>`` and ``<cpu>``. Pinning splits the host's CPUs
into housekeeping and dedicated ones (:func:`housekeeping_split`); the guest memory then
follows the pinned vCPUs' NUMA nodes (:mod:`.numa`).
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, OSINFO_LINUX, VIRTINST

if TYPE_CHECKING:  # pragma: no cover
    from ...host.facts import HostInfo
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

CPU_DOC = FD + "#cpu-model-and-topology"
TUNE_DOC = FD + "#cpu-tuning"
#: QEMU's q35 vCPU limit with x2APIC, the bound offline (connected: domain capabilities say).
OFFLINE_MAX_VCPUS = 4096

SPECS = (
    SettingSpec("vm.vcpus", "int", 2, "Number of virtual CPUs", minimum=1, maximum=OFFLINE_MAX_VCPUS,
                rationale="2 vCPUs: libosinfo's generic Linux guest needs at least 1; a second lets the guest run "
                          "one task while another waits (the maximum is the q35 machine's 4096, or what --connect "
                          "reports)",
                reference=OSINFO_LINUX),
    SettingSpec("cpu.mode", "choice", "host-passthrough", "CPU model mode",
                ("host-passthrough", "host-model", "maximum", "custom"),
                rationale="virt-install's x86 default: the guest gets every host CPU feature (under TCG the "
                          "core adapts it to 'maximum')",
                reference=f"{VIRTINST}/domain/cpu.py (_get_app_default_mode)"),
    SettingSpec("cpu.migratable", "bool", None, "host-passthrough: hide features that block migration",
                rationale="unset: libvirt's default for host-passthrough is migratable='on'",
                reference=CPU_DOC, applies_when=("cpu.mode=host-passthrough",)),
    SettingSpec("cpu.check", "choice", None, "How strictly libvirt checks the CPU definition",
                ("none", "partial", "full"),
                rationale="unset: libvirt picks the check for the mode (none for host-passthrough)",
                reference=CPU_DOC),
    SettingSpec("cpu.model", "str", None, "Named CPU model for mode=custom (e.g. EPYC, x86-64-v3 baselines)",
                rationale="unset: a named model is only needed with cpu.mode=custom, to keep a fleet on one "
                          "CPU definition",
                reference=CPU_DOC, applies_when=("cpu.mode=custom",)),
    SettingSpec("cpu.cache", "choice", None, "L3 cache information shown to the guest",
                ("passthrough", "emulate", "disable"),
                rationale="unset: QEMU's default cache description for the CPU model",
                reference=CPU_DOC),
    SettingSpec("cpu.topology", "choice", "cores",
                "Topology: all vCPUs as cores of one socket, or SMT pairs like the host", ("cores", "host", "none"),
                rationale="virt-install's default: one socket with N cores (without a topology libvirt gives "
                          "each vCPU a socket of its own)",
                reference=f"{VIRTINST}/domain/cpu.py (set_defaults_from_vcpus)"),
    SettingSpec("cpu.features", "str", None, "CPU features: comma list, 'name' requires, '-name' disables",
                rationale="unset: the features of the CPU mode, unchanged",
                reference=CPU_DOC),
    SettingSpec("cpu.pinning", "choice", "none",
                "Pin vCPUs, emulator and iothreads to host CPUs (auto: when the host topology is known and has "
                "the CPUs)", ("none", "auto"),
                rationale="none: pinning reserves host CPUs for one VM; only dedicated workloads want that",
                reference=TUNE_DOC),
    SettingSpec("cpu.housekeeping_cpus", "int", 1,
                "Host cores per NUMA node (of each socket) kept for the host, emulator and iothreads when pinning",
                minimum=1, maximum=1024,
                rationale="one core per NUMA node stays with the host: libvirt's kvm-realtime kbase reserves host "
                          "CPUs 'in each NUMA node' (2 in its example); one core is tuned's realtime default "
                          "(calc_isolated_cores:1), which leaves the most CPUs to the guest",
                reference=f"{FD.rsplit('/', 1)[0]}/kbase/kvm-realtime.html", applies_when=("cpu.pinning=auto",)),
    SettingSpec("cpu.scheduler", "choice", "none", "vCPU scheduler policy (fifo/rr for real time)",
                ("none", "fifo", "rr"),
                rationale="none: vCPU threads run under the host's normal scheduler; a FIFO thread 'runs until "
                          "either it is blocked by an I/O request, it is preempted by a higher priority thread, or "
                          "it calls sched_yield', so only hosts set up for real time (isolated CPUs) want one",
                reference="https://man7.org/linux/man-pages/man7/sched.7.html"),
    SettingSpec("cpu.priority", "int", 1, "Real-time priority for fifo/rr vCPU threads", minimum=1, maximum=99,
                rationale="1, the lowest real-time priority, so the host's own real-time kernel threads still "
                          "preempt the vCPUs (libvirt's kvm-realtime kbase uses 1)",
                reference=f"{FD.rsplit('/', 1)[0]}/kbase/kvm-realtime.html", applies_when=("cpu.scheduler!=none",)),
    SettingSpec("cpu.iothreads", "int", 0, "Number of iothreads; disks are spread over them",
                minimum=0, maximum=64,
                rationale="0: disk I/O runs in QEMU's main loop; scenarios with busy disks add iothreads",
                reference=FD + "#iothreads-allocation"),
)


@record
class CpuTopology(Record):
    """``<cpu><topology>``: sockets × dies × cores × threads must equal the vCPU count."""

    sockets: int = 1
    dies: int = 1
    cores: int = 1
    threads: int = 1


@record
class NumaCell(Record):
    """One guest NUMA node, ``<cpu><numa><cell>``: its vCPUs (a cpulist such as ``0-3``), its memory in bytes."""

    id: int
    cpus: str
    memory: int  # bytes
    mem_access: Optional[str] = None  # shared|private


@record
class CpuFeature(Record):
    """``<cpu><feature policy=... name=...>``: a CPUID flag required, disabled or forbidden."""

    name: str
    policy: str = "require"  # force|require|optional|disable|forbid


@record
class Cpu(Record):
    """``<cpu>``: mode, model, topology, features and guest NUMA cells (``None`` fields are not written)."""

    mode: Optional[str] = None  # host-passthrough|host-model|maximum|custom
    migratable: Optional[bool] = None
    check: Optional[str] = None  # none|partial|full
    model: Optional[str] = None
    model_fallback: Optional[str] = None
    cache_mode: Optional[str] = None  # passthrough|emulate|disable
    topology: Optional[CpuTopology] = None
    features: list[CpuFeature] = field(default_factory=list)
    numa: list[NumaCell] = field(default_factory=list)


@record
class Pin(Record):
    """One ``<cputune><vcpupin>`` or ``<iothreadpin>``: vCPU or iothread ``id`` runs on the host CPUs of ``cpuset``."""

    id: int
    cpuset: str


@record
class VcpuSched(Record):
    """``<cputune><vcpusched>``: the vCPUs of ``vcpus`` (a cpulist) get a real-time or other scheduler."""

    vcpus: str
    scheduler: str  # fifo|rr|batch|idle|other
    priority: Optional[int] = None


@record
class CpuTune(Record):
    """``<cputune>``: vCPU, emulator and iothread pinning, vCPU schedulers; written only when not empty."""

    vcpupin: list[Pin] = field(default_factory=list)
    emulatorpin: Optional[str] = None
    iothreadpin: list[Pin] = field(default_factory=list)
    vcpusched: list[VcpuSched] = field(default_factory=list)

    def empty(self) -> bool:
        """Whether nothing would be written (no ``<cputune>`` element then)."""
        return not (self.vcpupin or self.emulatorpin or self.iothreadpin or self.vcpusched)


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from . import unused
    s = settings.value
    dom.vcpus = s("vm.vcpus")
    nthreads = s("cpu.iothreads")
    virtio_disks = sum(1 for disk in plan.disks if disk.bus == "virtio")
    if nthreads > virtio_disks:
        # An iothread serves whole disks (libvirt 9.0 has no per-queue mapping): more
        # iothreads than virtio disks would sit idle, so declare only those used.
        ctx.note(f"cpu.iothreads={nthreads} reduced to {virtio_disks}: one iothread per virtio disk")
        nthreads = virtio_disks
    dom.iothreads = nthreads

    cpu = dom.cpu
    cpu.mode = s("cpu.mode")
    if cpu.mode == "host-passthrough":
        cpu.migratable = s("cpu.migratable")
    else:
        unused(ctx, settings, "cpu.migratable", f"it applies to host-passthrough, not cpu.mode={cpu.mode}")
    cpu.check = s("cpu.check")
    if cpu.mode == "custom":
        if not s("cpu.model"):
            from ...errors import ConfigError
            raise ConfigError("cpu.mode=custom needs cpu.model (e.g. --set cpu.model=EPYC)")
        cpu.model = s("cpu.model")
        cpu.model_fallback = "forbid"
    else:
        unused(ctx, settings, "cpu.model", f"a named model is used with cpu.mode=custom, not {cpu.mode}")
    cpu.cache_mode = s("cpu.cache")
    if cpu.cache_mode == "passthrough" and cpu.mode not in ("host-passthrough", "maximum"):
        # libvirt only passes the host cache through with host-passthrough/maximum CPUs.
        ctx.note(f"cpu.cache=passthrough needs cpu.mode host-passthrough or maximum; using emulate "
                 f"with cpu.mode={cpu.mode}")
        cpu.cache_mode = "emulate"
    topo = s("cpu.topology")
    host = ctx.host
    if topo == "host" and host and host.threads_per_core == 2 and dom.vcpus % 2 == 0:
        cpu.topology = CpuTopology(sockets=1, cores=dom.vcpus // 2, threads=2)
    elif topo in ("cores", "host"):
        cpu.topology = CpuTopology(sockets=1, cores=dom.vcpus, threads=1)
    for name in (s("cpu.features") or "").split(","):
        name = name.strip()
        if name:
            cpu.features.append(CpuFeature(name.lstrip("-+"), "disable" if name.startswith("-") else "require"))
    if s("cpu.pinning") == "auto":
        _pin(dom, settings, ctx)
    else:
        unused(ctx, settings, "cpu.housekeeping_cpus", "it sizes the host's share when cpu.pinning=auto")
    if s("cpu.scheduler") != "none":
        dom.cputune.vcpusched.append(VcpuSched(f"0-{dom.vcpus - 1}", s("cpu.scheduler"), s("cpu.priority")))
    else:
        unused(ctx, settings, "cpu.priority", "it is the real-time priority of cpu.scheduler fifo or rr")


def housekeeping_split(host: HostInfo, housekeeping_cores: int) -> tuple[list[int], list[int]]:
    """Split host CPUs into (housekeeping, dedicated), keeping SMT siblings together.

    The first ``housekeeping_cores`` cores of each NUMA node of each socket (all their
    threads) stay with the host: a package split into several nodes keeps housekeeping
    CPUs on every node, as libvirt's kvm-realtime kbase reserves them "in each NUMA node".
    The rest are ordered core by core so sibling threads are adjacent.
    """
    cores: dict[tuple[int, int, int], list[int]] = {}
    for c in host.cpus:
        cores.setdefault((c.socket, c.node, c.core), []).append(c.id)
    house: list[int] = []
    dedicated: list[int] = []
    per_group: dict[tuple[int, int], int] = {}
    for (socket, node, _core), ids in sorted(cores.items()):
        if per_group.get((socket, node), 0) < housekeeping_cores:
            per_group[(socket, node)] = per_group.get((socket, node), 0) + 1
            house.extend(sorted(ids))
        else:
            dedicated.extend(sorted(ids))
    return house, dedicated


def _pin(dom: Domain, settings: Settings, ctx: BuildContext) -> None:
    from ...host.facts import format_cpulist
    host = ctx.host
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
        tune.vcpupin.append(Pin(vcpu, str(dedicated[vcpu])))
    tune.emulatorpin = format_cpulist(house)
    for iothread in range(1, dom.iothreads + 1):
        tune.iothreadpin.append(Pin(iothread, format_cpulist(house)))


def render_vcpus(root: Element, dom: Domain) -> None:
    from ..xml import sub
    sub(root, "vcpu", str(dom.vcpus), placement=dom.vcpu_placement, cpuset=dom.vcpu_cpuset)
    if dom.iothreads:
        sub(root, "iothreads", str(dom.iothreads))


def render_tuning(root: Element, dom: Domain) -> None:
    from ..xml import num, sub
    ct = dom.cputune
    if not ct.empty():
        el = sub(root, "cputune")
        for pin in ct.vcpupin:
            sub(el, "vcpupin", vcpu=str(pin.id), cpuset=pin.cpuset)
        if ct.emulatorpin:
            sub(el, "emulatorpin", cpuset=ct.emulatorpin)
        for pin in ct.iothreadpin:
            sub(el, "iothreadpin", iothread=str(pin.id), cpuset=pin.cpuset)
        for sched in ct.vcpusched:
            sub(el, "vcpusched", vcpus=sched.vcpus, scheduler=sched.scheduler, priority=num(sched.priority))


def render_cpu(root: Element, dom: Domain) -> None:
    from ..xml import kib, on, sub
    cpu = dom.cpu
    if not cpu.mode:
        return
    el = sub(root, "cpu", mode=cpu.mode, check=cpu.check, migratable=on(cpu.migratable))
    if cpu.model:
        sub(el, "model", cpu.model, fallback=cpu.model_fallback)
    if cpu.topology:
        t = cpu.topology
        sub(el, "topology", sockets=str(t.sockets), dies=str(t.dies), cores=str(t.cores), threads=str(t.threads))
    if cpu.cache_mode:
        sub(el, "cache", mode=cpu.cache_mode)
    for feat in cpu.features:
        sub(el, "feature", policy=feat.policy, name=feat.name)
    if cpu.numa:
        numa = sub(el, "numa")
        for cell in cpu.numa:
            sub(numa, "cell", id=str(cell.id), cpus=cell.cpus, memory=kib(cell.memory), unit="KiB",
                memAccess=cell.mem_access)
