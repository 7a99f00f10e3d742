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

VIRTSCENARIO_API = (1, 2)  # BuildContext.require_host (1.1), ResolvedSetting.by_user (1.2)
NAME = "softrt"
PLUGIN = "virtscenario-softrt"

KBASE = "https://libvirt.org/kbase/kvm-realtime.html"
FORMATDOMAIN = "https://libvirt.org/formatdomain.html"
TUNED_RT = "https://github.com/redhat-performance/tuned/blob/master/profiles/realtime/tuned.conf"
TUNED_RTVH = "https://github.com/redhat-performance/tuned/blob/master/profiles/realtime-virtual-host/tuned.conf"
TUNED_NETLAT = "https://github.com/redhat-performance/tuned/blob/master/profiles/network-latency/tuned.conf"
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
        Choice("cpu.housekeeping_cpus", 1, "tuned realtime: by default one core per socket (calc_isolated_cores:1) "
           "keeps the host, the emulator threads, the iothread and IRQs; the rest is isolated", TUNED_RT),
        Choice("cpu.scheduler", "fifo", "kbase: <vcpusched scheduler='fifo'>: a vCPU thread is never preempted by "
           "ordinary host tasks", KBASE),
        Choice("cpu.priority", 1, "kbase: priority 1, the lowest RT priority: the host's own RT kernel threads "
           "(tuned realtime-virtual-host: ksoftirqd FIFO 2, rcuc FIFO 4) still preempt it", KBASE),
        Choice("cpu.iothreads", 1, "disk I/O runs in an iothread pinned to housekeeping CPUs, off the RT vCPUs",
           FORMATDOMAIN + "#iothreads-allocation"),
        Choice("memory.hugepages", True, "kbase: guest RAM on static hugepages: no page faults, fewer TLB misses",
           KBASE),
        Choice("memory.hugepage_size", "1G", "kbase: 1 GiB pages (2 MiB when the host offers no 1 GiB pages or the "
           "memory is not whole GiB)", KBASE),
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
    _hugepages(domain, settings, host, context)
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


def _hugepages(domain: Domain, settings: Settings, host: HostInfo, context: BuildContext) -> None:
    """1 GiB pages when the host offers them and memory is whole GiB; else 2 MiB (unless the user chose)."""
    pages = domain.memory_backing.hugepages
    if not pages or pages[0].size_kib != GIB_KIB:
        return
    if settings["memory.hugepage_size"].by_user:
        return  # the user asked for 1 GiB explicitly: the rules and libvirt judge it
    reason = ""
    if host.hugepage_sizes_kib and GIB_KIB not in host.hugepage_sizes_kib:
        reason = "the host offers no 1 GiB hugepages"
    elif domain.memory % (GIB_KIB * 1024):
        reason = "the memory is not a whole number of GiB"
    if reason:
        pages[0].size_kib = 2048
        context.note(f"softrt: 2 MiB hugepages instead of 1 GiB: {reason}", source=PLUGIN)


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
