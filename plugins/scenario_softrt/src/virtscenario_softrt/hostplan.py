"""The host side of softrt: kernel command line and tuned advice from the same CPU split as the XML.

Everything here is advice (``advice_only``): the kernel command line and the tuned
profile change at the next boot, which virtscenario never triggers.

Who writes what: ``isolcpus``/``nohz_full``/``rcu_nocbs`` belong to whichever
plugin handles a concrete ``host.isolated_cpus`` requirement (virtscenario's host
tuning plugin does); softrt adds them itself only when its computed split could
not reach the requirements. ``irqaffinity`` and the tuned profile are softrt's.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Optional, Sequence

from virtscenario.api import CheckResult, HostChange, HostRequirement, HostRoot, format_cpulist, parse_cpulist

from . import KBASE, NAME, TUNED_RTVH
from .topology import RtSplit, compute_split, read_topology

TUNED_VARIABLES = "/etc/tuned/realtime-virtual-host-variables.conf"
TUNED_ACTIVE = "/etc/tuned/active_profile"
RT_GROUP_FILE = "/sys/fs/cgroup/cpu/cpu.rt_runtime_us"


def cmdline_args(host: HostRoot) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in host.read("/proc/cmdline", "").split():
        key, _eq, value = token.partition("=")
        out[key] = value
    return out


def tuned_variable(host: HostRoot, name: str) -> str:
    for line in host.read(TUNED_VARIABLES, "").splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() == name:
            return value.strip()
    return ""


def _concrete(value: object) -> Optional[list[int]]:
    if value in (None, "", "auto"):
        return None
    try:
        return parse_cpulist(str(value))
    except ValueError:
        return None


def plan(requirements: Sequence[HostRequirement], host: HostRoot,
         planned: Mapping[str, RtSplit]) -> Iterator[HostChange]:
    """One set of advice per softrt VM in ``requirements`` (or for the scenario, without a VM)."""
    vms = sorted({r.vm or "" for r in requirements if r.scenario == NAME})
    args = cmdline_args(host)
    if vms and rt_group_sched(host):
        yield HostChange(f"RT group scheduling ({RT_GROUP_FILE})", "", "on", "off",
                         "libvirt's per-VM cgroups get no real-time budget, so FIFO vCPUs cannot start: boot a "
                         "kernel without CONFIG_RT_GROUP_SCHED", f"scenario {NAME}", reboot_required=True,
                         advice_only=True)
    for vm in vms:
        source = f"scenario {NAME}" + (f" (VM {vm})" if vm else "")
        given = next((_concrete(r.value) for r in requirements
                      if r.scenario == NAME and (r.vm or "") == vm and r.key == "host.isolated_cpus"), None)
        split = planned.get(vm) if vm else None
        if split is not None and (given is None or format_cpulist(given) == split.isolated_list):
            iso, house = list(split.isolated), list(split.housekeeping)
        elif given is not None:
            split = None  # set by hand, or by another process: the rest of this host is housekeeping
            iso = given
            house = sorted({c.id for c in read_topology(host).cpus} - set(iso))
        else:
            # No VM generated in this process: the split create would compute on this host
            # with the scenario's defaults (1 housekeeping core per NUMA node).
            split = compute_split(read_topology(host), 0, 1)
            iso, house = list(split.isolated), list(split.housekeeping)
        iso_list, house_list = format_cpulist(iso), format_cpulist(house)
        if not iso_list:
            continue
        where = f" [CPU split from: {split.origin}]" if split is not None and split.origin else ""
        if given is None:
            for key, target, why in (
                    ("isolcpus", f"managed_irq,domain,{iso_list}", "no ordinary task or managed IRQ is scheduled"),
                    ("nohz_full", iso_list, "no periodic scheduler tick while one task runs"),
                    ("rcu_nocbs", iso_list, "RCU callbacks run elsewhere")):
                yield HostChange(f"kernel cmdline {key}", "", args.get(key, ""), target,
                                 f"kbase kvm-realtime: on the CPUs of the RT vCPUs {why}; add to "
                                 f"GRUB_CMDLINE_LINUX and reboot{where}", source, reboot_required=True,
                                 advice_only=True)
        if house_list:
            yield HostChange("kernel cmdline irqaffinity", "", args.get("irqaffinity", ""), house_list,
                             "tuned realtime-virtual-host: device IRQs go to the housekeeping CPUs only; add to "
                             "GRUB_CMDLINE_LINUX and reboot", source, reboot_required=True, advice_only=True)
        yield HostChange("tuned realtime-virtual-host isolated_cores", "", tuned_variable(host, "isolated_cores"),
                         iso_list, f"set isolated_cores={iso_list} in {TUNED_VARIABLES}, then 'tuned-adm profile "
                         "realtime-virtual-host' (it also stops KSM and sets kvm kvmclock_periodic_sync=0, "
                         f"nx_huge_pages=0, kvm_intel ple_gap=0; see {TUNED_RTVH}){where}", source,
                         reboot_required=True, advice_only=True)
        yield HostChange("tuned profile", "", host.read(TUNED_ACTIVE, "").strip(), "realtime-virtual-host",
                         f"kbase kvm-realtime ({KBASE}): the host side of a real-time guest", source,
                         reboot_required=True, advice_only=True)


def rt_group_sched(host: HostRoot) -> bool:
    """cgroup v1 with CONFIG_RT_GROUP_SCHED: every cgroup needs its own RT budget.

    libvirt puts vCPU threads in per-VM cgroups whose ``cpu.rt_runtime_us`` is 0,
    so the kernel refuses SCHED_FIFO for them (EPERM, "Cannot set scheduler
    parameters"). Distribution kernels leave RT_GROUP_SCHED off.
    """
    return host.exists(RT_GROUP_FILE)


def check_rt_budget(host: HostRoot) -> CheckResult:
    if rt_group_sched(host):
        return CheckResult("softrt-rt-group-sched", "FAIL",
                           "RT group scheduling is on (cgroup v1 cpu.rt_runtime_us): libvirt's VM cgroups have no "
                           "real-time budget, so FIFO vCPUs cannot start",
                           "boot a kernel without CONFIG_RT_GROUP_SCHED, or --set cpu.scheduler=none")
    return CheckResult("softrt-rt-group-sched", "PASS", "no RT group scheduling: FIFO vCPU threads are allowed")


def check_isolated(host: HostRoot) -> CheckResult:
    isolated = host.read("/sys/devices/system/cpu/isolated", "").strip()
    if isolated:
        return CheckResult("softrt-isolated-cpus", "PASS", f"isolated CPUs: {isolated}")
    return CheckResult("softrt-isolated-cpus", "WARN", "no CPU is isolated from the scheduler",
                       "see the kernel command line of 'virtscenario create softrt --dry-run'")
