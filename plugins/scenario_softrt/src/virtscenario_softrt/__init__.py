"""virtscenario-softrt: a soft real-time VM, written as a third-party plugin.

Built only on :mod:`virtscenario.api`. Sources: libvirt's "KVM Real Time Guest
Config" kbase and tuned's ``realtime-virtual-host`` profile (see README.md for
every decision and why). This module is imported on every virtscenario run:
it only defines data and hooks; the work happens when the ``softrt`` scenario
is generated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from virtscenario.api import Choice, Scenario, SettingSpec, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import BuildContext, Domain, HostChange, HostInfo, HostRequirement, HostRoot, Settings

    from .topology import RtSplit

VIRTSCENARIO_API = (1, 3)  # BuildContext.require_host (1.1), ResolvedSetting.by_user (1.2), adapt_setting (1.3)
NAME = "softrt"
PLUGIN = "virtscenario-softrt"

KBASE = "https://libvirt.org/kbase/kvm-realtime.html"
FORMATDOMAIN = "https://libvirt.org/formatdomain.html"
TUNED_RTVH = "https://github.com/redhat-performance/tuned/blob/master/profiles/realtime-virtual-host/tuned.conf"
TUNED_NETLAT = "https://github.com/redhat-performance/tuned/blob/master/profiles/network-latency/tuned.conf"
HWLAT = "https://docs.kernel.org/trace/hwlat_detector.html"
HUGETLB = "https://docs.kernel.org/admin-guide/mm/hugetlbpage.html"
QEMU_FIRMWARE = "https://gitlab.com/libvirt/libvirt/-/blob/v9.0.0/src/qemu/qemu_firmware.c (qemuFirmwareMatchDomain)"
GIB_KIB = 1024 * 1024


SCENARIO = Scenario(
    name=NAME,
    summary="Soft real-time guest: vCPUs on isolated host CPUs, FIFO-scheduled, locked hugepage memory",
    version="0.1.0",
    description="Pinning is computed from the host topology (--connect, --host-root, or the assumed host "
                "softrt.host_*) and the same split gives the host's isolcpus/nohz_full/rcu_nocbs.",
    settings=(
        Choice("vm.vcpus", 2, "kbase: a Linux real-time guest needs at least 2 vCPUs, one of them non-real-time for "
           "the guest's housekeeping and I/O", KBASE),
        Choice("cpu.mode", "host-passthrough", "kbase: the host CPU unchanged, so the guest sees the TSC and timer "
           "features the RT path relies on (under TCG the core adapts it to maximum)", KBASE),
        Choice("cpu.topology", "cores", "kbase: the vCPUs are cores of one socket with one thread each: every vCPU "
           "has a physical core to itself, so the guest must not think two share one", KBASE),
        Choice("cpu.features", "tsc-deadline", "kbase requires the TSC-deadline LAPIC timer: the guest arms one-shot "
           "timers with a single MSR write", KBASE),
        Choice("cpu.migratable", False, "migratable='off' keeps the host features that block migration, invtsc "
           "among them ('explicitly request such features to be removed from (on) or kept in (off) the virtual "
           "CPU'): the guest gets the invariant TSC as its clocksource, and a guest pinned to isolated CPUs never "
           "migrates anyway", FORMATDOMAIN + "#cpu-model-and-topology"),
        Choice("cpu.housekeeping_cpus", 1, "the kbase keeps host CPUs 'in each NUMA node' (2 per node in its "
           "example); one core per node, tuned realtime's count (calc_isolated_cores:1), keeps the host, the "
           "emulator threads, the iothread and IRQs and leaves the most CPUs isolated; --set "
           "cpu.housekeeping_cpus=2 follows the kbase example", KBASE),
        Choice("cpu.scheduler", "fifo", "kbase: <vcpusched scheduler='fifo'>: a vCPU thread is never preempted by "
           "ordinary host tasks", KBASE),
        Choice("cpu.priority", 1, "kbase: priority 1, the lowest RT priority: the host's own RT kernel threads "
           "(tuned realtime-virtual-host: ksoftirqd FIFO 2, rcuc FIFO 4) still preempt it", KBASE),
        Choice("cpu.iothreads", 1, "disk I/O runs in an iothread pinned to housekeeping CPUs, off the RT vCPUs",
           FORMATDOMAIN + "#iothreads-allocation"),
        Choice("memory.hugepages", True, "kbase: guest RAM on static hugepages: no page faults, fewer TLB misses",
           KBASE),
        Choice("memory.hugepage_size", "1G", "kbase: 1 GiB pages, when the host has enough of them reserved (free "
           "on the vCPUs' NUMA node, and mounted when that is known); otherwise 2 MiB pages, reserved ones or the "
           "ones the host plan reserves at run time (1 GiB pages usually need hugepagesz=1G at boot). The note "
           "says which", KBASE),
        Choice("memory.locked", True, "kbase: <locked/>: the host never swaps or reclaims guest memory", KBASE),
        Choice("memory.nosharepages", True, "kbase: <nosharepages/>: KSM never merges guest pages (a write to a "
           "merged page is a copy-on-write fault)", KBASE),
        Choice("memory.hard_limit_overhead", "1GiB", "locked memory needs a memtune hard_limit (libvirt docs); guest "
           "RAM + 1 GiB is the allowance libvirt itself uses for locked VFIO guests",
           FORMATDOMAIN + "#memory-backing"),
        Choice("memory.balloon", "none", "kbase: <memballoon model='none'/>: no balloon driver reclaiming or polling "
           "memory", KBASE),
        Choice("features.kvm_hint_dedicated", True, "KVM_HINTS_REALTIME: the guest learns its vCPUs are never "
           "preempted for long (pinned, isolated, FIFO), so it spins instead of using paravirtual yields",
           "https://docs.kernel.org/virt/kvm/x86/cpuid.html"),
        Choice("features.pmu", False, "kbase: <pmu state='off'/>: no PMU MSR traffic on guest context switches",
           KBASE),
        Choice("features.smm", False, "no SMM: time spent in system management mode is invisible to the kernel, "
           "and SMI handlers 'can spend an inordinate amount of time in the handler (sometimes measured in "
           "milliseconds)', a latency spike for real time", HWLAT),
        Choice("firmware.secure_boot", False, "the UEFI build without secure boot is the one that needs no SMM "
           "(the secure-boot descriptors carry requires-smm); left to itself libvirt picks the secure-boot build "
           "and turns SMM on, and libvirt 9.0 refuses smm=off unless secure boot is refused too", QEMU_FIRMWARE),
        Choice("firmware.enrolled_keys", False, "no Microsoft keys: they come with the secure-boot build only",
           QEMU_FIRMWARE),
        Choice("clock.hpet", False, "the emulated HPET traps to QEMU on every access; with TSC-deadline timers the "
           "guest does not need it", FORMATDOMAIN + "#time-keeping"),
        Choice("clock.kvmclock", True, "kvmclock reads time without an exit; tuned realtime-virtual-host keeps it "
           "quiet on the host (kvm kvmclock_periodic_sync=0)", TUNED_RTVH),
        Choice("clock.pit_tickpolicy", "delay", "missed PIT ticks are delivered late instead of in catch-up bursts "
           "that would stack latency", FORMATDOMAIN + "#time-keeping"),
        Choice("usb.controller", "none", "kbase: <controller type='usb' model='none'/>: no USB controller to emulate",
           KBASE),
        Choice("input.tablet", False, "no USB tablet (no USB controller, no display)", KBASE),
        Choice("sound.model", "none", "no audio device and its timer-driven emulation", KBASE),
        Choice("graphics.type", "none", "kbase: graphics are optional; reach the guest over SSH or the serial console",
           KBASE),
        Choice("console.serial", True, "kbase: the serial console is the remote access that needs no display", KBASE),
        Choice("disk.cache", "none", "O_DIRECT: no host page-cache writeback on the guest's I/O path",
           FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
        Choice("disk.io", "native", "Linux AIO with cache=none: requests go to the device without a thread pool hop",
           FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    ),
    host=(
        Choice("host.hugepages", True, "kbase: most host RAM as hugepages for the RT guests", KBASE),
        Choice("host.ksm", "off", "tuned realtime-virtual-host stops KSM (ksm/run=2): no page scanning on the host",
           TUNED_RTVH),
        Choice("host.thp", "never", "tuned network-latency (parent of realtime): no khugepaged compaction stalls",
           TUNED_NETLAT),
    ),
)

#: Settings of the assumed host used offline (no --connect, no --host-root).
SETTINGS = (
    SettingSpec("softrt.host_cpus", "int", 8, "Offline: logical CPUs of the assumed target host",
                minimum=2, maximum=8192, rationale="a small RT host: 1 housekeeping core, 7 isolated",
                reference=KBASE),
    SettingSpec("softrt.host_sockets", "int", 1, "Offline: sockets of the assumed target host",
                minimum=1, maximum=64, rationale="a single-socket host: the usual small real-time box, and no "
                "cross-socket latency to plan around", reference=KBASE),
    SettingSpec("softrt.host_threads_per_core", "int", 1, "Offline: SMT threads per core of the assumed host",
                minimum=1, maximum=8, rationale="kbase: SMT is disabled on real-time hosts", reference=KBASE),
    SettingSpec("softrt.use_smt_siblings", "bool", False,
                "Pin vCPUs to both SMT threads of isolated cores (default: one vCPU per core, sibling idle)",
                rationale="kbase: SMT is incompatible with real time; an idle sibling gives each RT vCPU a whole "
                          "core without rebooting with nosmt", reference=KBASE),
)

#: The split each generated VM used, for host_plan in the same process (``create``).
#: virtscenario 1.0's customize_model cannot yet hand a computed host requirement
#: to the pipeline; see README.md "Host side".
_PLANNED: dict[str, RtSplit] = {}


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    return [SCENARIO]


@hookimpl
def register_settings() -> Iterable[SettingSpec]:
    return SETTINGS


def target_host(settings: Settings, context: BuildContext) -> HostInfo:
    """The host the VM is for: known (--connect, --host-root) or the documented assumed shape."""
    from .topology import assumed_host
    if context.host is not None and context.host.cpus:
        return context.host
    host = assumed_host(settings.value("softrt.host_cpus"), settings.value("softrt.host_sockets"),
                        settings.value("softrt.host_threads_per_core"))
    context.note(f"softrt: offline, the CPU split is for an {host.source} (softrt.host_cpus, "
                 "softrt.host_sockets, softrt.host_threads_per_core; --connect or --host-root read the real one)",
                 source=PLUGIN)
    return host


@hookimpl
def customize_model(domain: Domain, settings: Settings, context: BuildContext) -> None:
    if context.scenario.name != NAME:
        return
    from virtscenario.api import model

    from .topology import compute_split
    host = target_host(settings, context)
    wanted = settings.value("host.isolated_cpus")
    split = compute_split(host, domain.vcpus, settings.value("cpu.housekeeping_cpus"),
                          bool(settings.value("softrt.use_smt_siblings")),
                          None if wanted in (None, "", "auto") else str(wanted))
    tune = domain.cputune
    tune.vcpupin = [model.Pin(vcpu, str(cpu)) for vcpu, cpu in enumerate(split.vcpu_cpus)]
    tune.emulatorpin = split.housekeeping_list
    tune.iothreadpin = [model.Pin(i, split.housekeeping_list) for i in range(1, domain.iothreads + 1)]
    _hugepages(domain, settings, host, context, split)
    if split.idle_siblings:
        context.note(f"softrt: the host has SMT; the sibling threads {_fmt(split.idle_siblings)}"
                     " of the RT cores stay isolated and idle (kbase: SMT is incompatible with real time)",
                     source=PLUGIN)
    if split.shared_cores:
        context.note(f"softrt: CPUs {_fmt(split.shared_cores)} share a core with housekeeping CPUs: expect jitter",
                     "warning", PLUGIN)
    if domain.vcpus < 2:
        context.note("softrt: 1 vCPU: a Linux RT guest needs a second, non-real-time vCPU for housekeeping and "
                     "I/O (kbase)", "warning", PLUGIN)
    context.note(f"softrt: vCPUs on isolated CPUs {_fmt(split.vcpu_cpus)}; emulator and iothreads on "
                 f"housekeeping CPUs {split.housekeeping_list}; isolated {split.isolated_list}", source=PLUGIN)
    _PLANNED[context.vm_name] = split
    # The plan (and vm.yaml) get the split computed here, so both sides agree.
    context.require_host("host.isolated_cpus", split.isolated_list, "computed from the host topology: the CPUs "
                         "the RT vCPUs are pinned to are taken from the host scheduler", KBASE)


def _fmt(cpus: Sequence[int]) -> str:
    from virtscenario.api import format_cpulist
    return format_cpulist(list(cpus))


def _hugepages(domain: Domain, settings: Settings, host: HostInfo, context: BuildContext, split: RtSplit) -> None:
    """The page size the VM can start with: 1 GiB only when reserved, else 2 MiB (reserved, or by the plan).

    "Offered" is not enough: libvirt fails ("Unable to find any usable hugetlbfs mount for
    1048576 KiB", or no free pages) when none is reserved and mounted.
    """
    pages = domain.memory_backing.hugepages
    if not pages or pages[0].size_kib != GIB_KIB or settings["memory.hugepage_size"].by_user:
        return  # the user chose the size explicitly: the rules and libvirt judge it
    node_of = {c.id: c.node for c in host.cpus}
    nodes = sorted({node_of.get(cpu, 0) for cpu in split.vcpu_cpus})
    where = f"NUMA node{'s' if len(nodes) > 1 else ''} {_fmt(nodes)}"
    if _ready(domain, host, GIB_KIB, nodes):
        context.note(f"softrt: 1 GiB hugepages, reserved on {where}", source=PLUGIN)
        return
    pages[0].size_kib = 2048
    count = -(-domain.memory // (GIB_KIB * 1024))
    boot = f"1 GiB pages need hugepagesz=1G hugepages={count} on the kernel command line"
    if _ready(domain, host, 2048, nodes):
        why = f"2 MiB hugepages, reserved on {where}; 1 GiB pages are not ({boot})"
    else:
        why = (f"2 MiB hugepages: none are reserved for this VM yet; the host plan reserves them on {where} at run "
               f"time and mounts hugetlbfs (virtscenario host apply softrt); {boot}")
    context.note(f"softrt: {why}", source=PLUGIN)
    # The setting says what the XML uses, so vm.yaml and every host plan reserve this size.
    context.adapt_setting("memory.hugepage_size", "2M", f"{why}: libvirt cannot start a VM on pages that are not "
                          "reserved and mounted, and 1 GiB pages can rarely be reserved after boot", HUGETLB, PLUGIN)


def _ready(domain: Domain, host: HostInfo, size_kib: int, nodes: list[int]) -> bool:
    """Enough pages of ``size_kib`` free on ``nodes`` (split as the host plan splits them), and mounted."""
    page = size_kib * 1024
    if domain.memory % page or (host.hugetlbfs_kib is not None and size_kib not in host.hugetlbfs_kib):
        return False
    base, rest = divmod(domain.memory // page, len(nodes))
    for i, node in enumerate(nodes):
        have = host.hugepages_available(size_kib, node)
        if have is None or have < base + (1 if i < rest else 0):
            return False
    return True


@hookimpl
def domain_rules() -> Iterable[Any]:
    from virtscenario.api import DomainRule
    return [DomainRule(
        "rt-vcpus-pinned",
        "a vCPU thread with a real-time policy on a shared, unpinned CPU can starve the host's own tasks there",
        KBASE, _rt_unpinned, severity="warning")]


def _rt_unpinned(domain: Domain, _settings: Settings) -> Iterator[str]:
    rt = [s for s in domain.cputune.vcpusched if s.scheduler in ("fifo", "rr")]
    pinned = {p.id for p in domain.cputune.vcpupin}
    if rt and len(pinned) < domain.vcpus:
        yield f"vCPUs use the {rt[0].scheduler} scheduler but only {len(pinned)} of {domain.vcpus} are pinned"


@hookimpl
def host_checks() -> Iterable[Any]:
    from virtscenario.api import HostCheck

    from .hostplan import check_isolated, check_rt_budget
    return [HostCheck("softrt-rt-group-sched", "FIFO vCPU threads are allowed (no RT group scheduling)",
                      check_rt_budget),
            HostCheck("softrt-isolated-cpus", "CPUs are isolated for real-time vCPUs", check_isolated)]


@hookimpl
def host_plan(requirements: Sequence[HostRequirement], host: HostRoot) -> Iterable[HostChange]:
    if not any(r.scenario == NAME for r in requirements):
        return []
    from .hostplan import plan
    return plan(requirements, host, _PLANNED)
