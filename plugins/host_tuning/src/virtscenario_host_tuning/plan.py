"""Scenario host requirements -> an ordered host plan, with conflicts resolved by documented rules.

The plan only reads (through the HostRoot). Each :class:`Action` wraps the
public :class:`HostChange` with what ``host apply`` needs to carry it out and
to persist it. Requirements the host cannot meet become *refusals* (one line
each): ``host plan``/``host apply`` stop on them, ``create`` shows them as
advice.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from virtscenario.api import HostChange, HostRequirement, format_cpulist, format_size, parse_cpulist

from . import facts, sysfs

GIB = 1024**3
MIB = 1024**2
DEFAULT_RESERVE = 2 * GIB
DEFAULT_PAGE_BYTES = 2 * MIB
SEV_CONF = "/etc/modprobe.d/virtscenario-sev.conf"
KSM_UNITS = ("ksmtuned.service", "ksm.service")
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
SCHEDULER_MODULES = {"bfq": "bfq", "kyber": "kyber-iosched", "mq-deadline": "mq-deadline"}
KSM_REF = "https://docs.kernel.org/admin-guide/mm/ksm.html"
HUGETLB_REF = "https://docs.kernel.org/admin-guide/mm/hugetlbpage.html"
BFQ_REF = "https://docs.kernel.org/block/bfq-iosched.html"
SEV_REF = "https://libvirt.org/kbase/launch_security_sev.html"
KERNEL_PARAMS_REF = "https://docs.kernel.org/admin-guide/kernel-parameters.html"


# -- conflict rules ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    pick: Callable[[list[Any]], Any]
    text: str


def _first_in(order: Sequence[Any]) -> Callable[[list[Any]], Any]:
    return lambda values: min(values, key=lambda v: order.index(v) if v in order else len(order))


#: When scenarios used on one host disagree on a knob, these rules decide (docs/host-tuning.md).
RULES: dict[str, Rule] = {
    "host.ksm": Rule(_first_in(["off", "on"]),
                     "safety first: KSM off beats on (merged pages are a cross-VM side channel)"),
    "host.ksm_merge_across_nodes": Rule(_first_in([False, True]),
                                        "NUMA locality first: not merging across nodes beats merging"),
    "host.swappiness": Rule(min, "the lowest swappiness wins (the VM most hurt by swapping decides)"),
    "host.thp": Rule(_first_in(["never", "madvise", "always"]),
                     "least aggressive wins: never > madvise > always (QEMU madvises guest RAM, so madvise "
                     "still gives every VM transparent hugepages)"),
    "host.thp_shmem": Rule(_first_in(["never", "advise", "within_size", "always"]),
                           "least aggressive wins: never > advise > within_size > always"),
    "host.thp_defrag": Rule(_first_in(["never", "defer", "defer+madvise", "madvise", "always"]),
                            "fewest allocation stalls win: never > defer > defer+madvise > madvise > always"),
    "host.io_scheduler": Rule(_first_in(["mq-deadline", "bfq", "kyber", "none"]),
                              "the kernel's general-purpose default wins: mq-deadline > bfq > kyber > none"),
    "host.hugepages_reserve": Rule(max, "the largest host reserve wins"),
    "host.sev": Rule(_first_in([True, False]), "enabled when any VM needs it (other VMs are not affected)"),
}


def _norm(key: str, value: Any) -> Any:
    """Values as the rules compare them (vm.yaml may hold yes/no strings or numbers)."""
    if key in ("host.ksm_merge_across_nodes", "host.sev", "host.hugepages"):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "y", "yes", "on", "true")
        return bool(value)
    if key == "host.ksm":
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value).strip().lower()
    if key in ("host.swappiness", "host.hugepages_reserve"):
        return int(value)
    if isinstance(value, str):
        return value.strip()
    return value


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def who(req: HostRequirement) -> str:
    return f"{req.scenario} ({req.vm})" if req.vm else req.scenario


@dataclass(frozen=True)
class Decision:
    value: Any
    winners: tuple[HostRequirement, ...]
    conflict: str

    @property
    def source(self) -> str:
        return ", ".join(sorted({w.scenario for w in self.winners}))

    @property
    def reason(self) -> str:
        return self.winners[0].rationale

    @property
    def reference(self) -> str:
        return self.winners[0].reference


def decide(key: str, reqs: Sequence[HostRequirement]) -> Optional[Decision]:
    if not reqs:
        return None
    values = [_norm(key, r.value) for r in reqs]
    rule = RULES.get(key)
    value = rule.pick(values) if rule else values[0]
    winners = tuple(r for r, v in zip(reqs, values) if v == value)
    wanted: dict[str, list[str]] = {}
    for req, val in zip(reqs, values):
        wanted.setdefault(show(val), [])
        if who(req) not in wanted[show(val)]:
            wanted[show(val)].append(who(req))
    conflict = ""
    if len(wanted) > 1:
        parts = "; ".join(f"{', '.join(names)} want{'s' if len(names) == 1 else ''} {val}"
                          for val, names in wanted.items())
        conflict = f"{parts} -> {show(value)} (rule: {rule.text if rule else 'first requirement wins'})"
    return Decision(value, winners, conflict)


# -- the plan -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Action:
    """A HostChange plus how to carry it out (``op``) and how to persist it.

    ``op``: ``tunable`` (write ``data`` to a procfs/sysfs file), ``file`` (write a
    file under /etc), ``mount`` (mount hugetlbfs with options ``data``) or
    ``advice`` (shown, never done). ``persist``: (kind, key, value) for the files
    backend; ``tuned``: (section, option, value) for the tuned backend.
    """

    change: HostChange
    op: str
    data: bytes = b""
    reference: str = ""
    persist: Optional[tuple[str, str, str]] = None
    tuned: Optional[tuple[str, str, str]] = None

    @property
    def needed(self) -> bool:
        return self.op != "advice" and not self.change.advice_only and self.change.needed


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[HostChange]:
        return [a.change for a in self.actions]

    @property
    def needed(self) -> list[Action]:
        return [a for a in self.actions if a.needed]

    @property
    def conflicts(self) -> list[str]:
        seen: dict[str, str] = {}
        for a in self.actions:
            if a.change.conflict and a.change.conflict not in seen.values():
                seen[a.change.knob] = a.change.conflict
        return [f"{k}: {v}" for k, v in seen.items()]

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def advice(self, knob: str, current: str, target: str, reason: str, source: str, reference: str = "",
               reboot: bool = False, conflict: str = "", path: str = "") -> None:
        self.add(Action(HostChange(knob, path, current, target, reason, source, reboot, True, conflict),
                        "advice", reference=reference))


def build_plan(requirements: Iterable[HostRequirement], host: Any) -> Plan:
    reqs = list(requirements)
    by_key: dict[str, list[HostRequirement]] = defaultdict(list)
    for req in reqs:
        by_key[req.key].append(req)
    plan = Plan()
    _thp(plan, host, by_key)
    _ksm(plan, host, by_key)
    _swappiness(plan, host, by_key)
    _io_scheduler(plan, host, by_key)
    _hugepages(plan, host, reqs, by_key)
    _sev(plan, host, by_key)
    _isolated_cpus(plan, host, by_key)
    from .vfio import plan_vfio  # PCI passthrough (issue 15)
    plan_vfio(plan, host, by_key)
    return plan


def _tunable(plan: Plan, host: Any, knob: str, path: str, target: str, d: Decision, *,
             persist: Optional[tuple[str, str, str]] = None, tuned: Optional[tuple[str, str, str]] = None,
             reason: str = "", source: str = "", current: Optional[str] = None, reboot: bool = False) -> None:
    text = sysfs.read_text(host, path)
    if text is None:
        plan.advice(knob, "unavailable", target, f"{path} does not exist on this host: nothing to tune",
                    source or d.source, d.reference, conflict=d.conflict, path=path)
        return
    if sysfs.is_selection(text) and target not in sysfs.options(text):
        plan.advice(knob, sysfs.selected(text) or "", target,
                    f"this kernel does not offer {target} (offers: {' '.join(sysfs.options(text))})",
                    source or d.source, d.reference, conflict=d.conflict, path=path)
        return
    now = current if current is not None else (sysfs.selected(text) or "")
    change = HostChange(knob, path, now, target, reason or d.reason, source or d.source, reboot, False, d.conflict)
    plan.add(Action(change, "tunable", (target + "\n").encode(), d.reference, persist, tuned))


# -- THP, KSM, swappiness, IO scheduler -------------------------------------------------------------
def _thp(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    # tuned's [vm] plugin knows enabled and defrag; shmem_enabled goes through [sysfs].
    for key, name, knob, tuned_opt in (("host.thp", "enabled", "thp.enabled", "transparent_hugepages"),
                                       ("host.thp_defrag", "defrag", "thp.defrag", "transparent_hugepage.defrag"),
                                       ("host.thp_shmem", "shmem_enabled", "thp.shmem_enabled", "")):
        d = decide(key, by_key.get(key, []))
        if d is None:
            continue
        path = f"{facts.THP_DIR}/{name}"
        value = show(d.value)
        tuned = ("vm", tuned_opt, value) if tuned_opt else ("sysfs", path, value)
        _tunable(plan, host, knob, path, value, d, persist=("tmpfiles", path, value), tuned=tuned)


def _ksm(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    d_run = decide("host.ksm", by_key.get("host.ksm", []))
    d_merge = decide("host.ksm_merge_across_nodes", by_key.get("host.ksm_merge_across_nodes", []))
    if d_run is None and d_merge is None:
        return
    run_path, merge_path = f"{facts.KSM_DIR}/run", f"{facts.KSM_DIR}/merge_across_nodes"
    any_d = d_run or d_merge
    assert any_d is not None
    if not sysfs.exists(host, run_path):
        plan.advice("ksm.run", "unavailable", "-", "this kernel has no KSM (CONFIG_KSM): nothing to tune",
                    any_d.source, KSM_REF, path=run_path)
        return
    run_before = sysfs.current(host, run_path) or ""
    run_now = run_before
    # Disabling writes 2: stop ksmd *and* unmerge, so no page stays shared between VMs.
    final: Optional[tuple[str, Decision, str, bool]] = None  # target, decision, reason, persist it
    if d_run is not None:
        final = ("1" if d_run.value == "on" else "2", d_run, d_run.reason, True)
    if d_merge is not None:
        merge_target = "1" if d_merge.value else "0"
        if not sysfs.exists(host, merge_path):
            plan.advice("ksm.merge_across_nodes", "unavailable", merge_target,
                        "this kernel has no merge_across_nodes (built without NUMA)", d_merge.source, KSM_REF,
                        conflict=d_merge.conflict, path=merge_path)
        elif len(facts.numa_nodes(host)) <= 1 and (sysfs.current(host, merge_path) or "") != merge_target:
            # One node: KSM cannot merge across nodes, and changing the knob would unmerge every page.
            merge_now = sysfs.current(host, merge_path) or ""
            plan.advice("ksm.merge_across_nodes", merge_now, merge_now,
                        f"one NUMA node: no page can be merged across nodes, so {merge_target} would change "
                        "nothing; left as it is (changing it needs KSM stopped and unmerged)", d_merge.source,
                        KSM_REF, conflict=d_merge.conflict, path=merge_path)
        else:
            merge_now = sysfs.current(host, merge_path) or ""
            # The kernel refuses (EBUSY) to change merge_across_nodes while pages are shared (ksm.rst: it
            # "can be changed only when there are no ksm shared pages in the system"). Stopped (run 0) with
            # none shared, none can appear before the write: it is written directly and KSM stays stopped.
            idle = run_now == "0" and _count(host, f"{facts.KSM_DIR}/pages_shared") == 0
            if merge_now != merge_target and run_now != "2" and not idle:
                _tunable(plan, host, "ksm.run (unmerge first)", run_path, "2", Decision("2", d_merge.winners, ""),
                         reason="merge_across_nodes can only change while no page is shared: stop KSM and "
                                "unmerge first")
                if final is None:
                    final = (run_before, Decision(run_before, d_merge.winners, ""),
                             "restart KSM as it was before merge_across_nodes changed", False)
                run_now = "2"
            _tunable(plan, host, "ksm.merge_across_nodes", merge_path, merge_target, d_merge,
                     persist=("tmpfiles", merge_path, merge_target), tuned=("sysfs", merge_path, merge_target))
    if final is not None:
        target, decision, reason, keep = final
        if target == "2" and run_now == "0" and _count(host, f"{facts.KSM_DIR}/pages_shared") == 0:
            # 2 stops ksmd *and* unmerges: with ksmd stopped and nothing merged it changes nothing (ksm.rst).
            target, reason = "0", f"{reason}; KSM is already stopped and nothing is merged (pages_shared 0)"
        _tunable(plan, host, "ksm.run", run_path, target, decision, current=run_now, reason=reason,
                 persist=("tmpfiles", run_path, target) if keep else None,
                 tuned=("sysfs", run_path, target) if keep else None)
    if d_run is not None and d_run.value == "off":
        units = [u for u in KSM_UNITS if any(sysfs.exists(host, f"{d}/{u}") for d in UNIT_DIRS)]
        if units:
            plan.advice("ksm services", "installed", "disabled",
                        f"{' and '.join(units)} start KSM again at boot: systemctl disable --now {' '.join(units)}",
                        d_run.source, KSM_REF)


def _swappiness(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    d = decide("host.swappiness", by_key.get("host.swappiness", []))
    if d is None:
        return
    value = str(d.value)
    _tunable(plan, host, "vm.swappiness", "/proc/sys/vm/swappiness", value, d,
             persist=("sysctl", "vm.swappiness", value), tuned=("sysctl", "vm.swappiness", value))


def _io_scheduler(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    d = decide("host.io_scheduler", by_key.get("host.io_scheduler", []))
    if d is None:
        return
    value = show(d.value)
    devices = facts.block_devices(host)
    if not devices:
        plan.advice("io_scheduler", "-", value, "no real block device (NVMe, virtio, SCSI/SATA) with an IO "
                    "scheduler found; loop, zram, ram, dm and md devices are never tuned", d.source, d.reference,
                    conflict=d.conflict, path="/sys/block")
        return
    for dev in devices:
        knob = f"io_scheduler.{dev.name}"
        if dev.fast_multiqueue and value != "none":
            # The kernel's own rule (block/elevator.c, elevator_get_default): devices with several
            # hardware queues get no scheduler; BFQ's per-request cost caps their IOPS (bfq-iosched.rst).
            plan.advice(knob, dev.current, dev.current,
                        f"{dev.name} is a solid-state device with {dev.queues} hardware queues: left at "
                        f"{dev.current or 'its scheduler'} ({value} is for rotational and single-queue devices; "
                        "the kernel gives multi-queue devices none, and BFQ's per-request overhead caps the IOPS "
                        "of fast devices)", d.source, BFQ_REF, conflict=d.conflict, path=dev.scheduler_path)
            continue
        if value not in dev.offered:
            module = SCHEDULER_MODULES.get(value, value)
            plan.advice(knob, dev.current, value, f"{dev.name} does not offer {value} (offers: "
                        f"{' '.join(dev.offered)}): modprobe {module}, then plan again", d.source, d.reference,
                        conflict=d.conflict, path=dev.scheduler_path)
            continue
        _tunable(plan, host, knob, dev.scheduler_path, value, d, persist=("udev-scheduler", dev.name, value),
                 tuned=("disk", dev.name, value))


# -- static hugepages and hugetlbfs ------------------------------------------------------------------
@dataclass
class _Vm:
    label: str
    scenario: str
    memory: int = 0
    wants: bool = False                 # host.hugepages
    uses: Optional[bool] = None         # memory.hugepages (None: not told -> assumed when host.hugepages)
    page_bytes: int = DEFAULT_PAGE_BYTES
    nodes: Optional[str] = None         # host.hugepages_nodes


def _vms(reqs: Sequence[HostRequirement]) -> list[_Vm]:
    vms: dict[tuple[str, Optional[str]], _Vm] = {}
    for req in reqs:
        vm = vms.setdefault((req.scenario, req.vm), _Vm(req.vm or f"new {req.scenario} VM", req.scenario))
        vm.memory = max(vm.memory, int(req.vm_memory_bytes or 0))
        if req.key == "host.hugepages":
            vm.wants = bool(_norm(req.key, req.value))
        elif req.key == "memory.hugepages":
            vm.uses = bool(_norm("host.hugepages", req.value))
        elif req.key == "memory.hugepage_size" and req.value:
            vm.page_bytes = int(req.value)
        elif req.key == "host.hugepages_nodes" and req.value not in (None, ""):
            vm.nodes = str(req.value).strip()
    return list(vms.values())


def _hugepages(plan: Plan, host: Any, reqs: Sequence[HostRequirement],
               by_key: dict[str, list[HostRequirement]]) -> None:
    hp_reqs = by_key.get("host.hugepages", [])
    if not any(_norm("host.hugepages", r.value) for r in hp_reqs):
        return
    d_reserve = decide("host.hugepages_reserve", by_key.get("host.hugepages_reserve", []))
    reserve = int(d_reserve.value) if d_reserve else DEFAULT_RESERVE
    vms = _vms(reqs)
    users = [vm for vm in vms if vm.wants and vm.uses is not False and vm.memory > 0]
    skipped = [vm for vm in vms if vm not in users and (vm.wants or any(r.scenario == vm.scenario for r in hp_reqs))]
    source = ", ".join(sorted({vm.scenario for vm in users})) or ", ".join(sorted({r.scenario for r in hp_reqs}))
    if not users:
        plan.advice("hugepages", "-", "-", "no VM in this plan backs its memory with static hugepages "
                    "(memory.hugepages off)", source, HUGETLB_REF)
        return
    supported = facts.hugepage_sizes_kib(host)
    default_kib = facts.default_hugepage_kib(host)
    nodes_all = facts.numa_nodes(host) or [0]
    mem_total = facts.mem_total(host)
    if mem_total <= 0:
        plan.refusals.append("hugepages: cannot read MemTotal from /proc/meminfo")
        return
    by_size: dict[int, list[_Vm]] = defaultdict(list)
    for vm in users:
        by_size[vm.page_bytes // 1024].append(vm)
    rationale = next((r.rationale for r in hp_reqs if _norm("host.hugepages", r.value)), "")
    reference = next((r.reference for r in hp_reqs if _norm("host.hugepages", r.value)), HUGETLB_REF)
    not_using = f"; not for {', '.join(v.label for v in skipped)} (no static hugepages)" if skipped else ""
    planned: dict[int, int] = {}            # size -> total pages after the plan
    per_node_bytes: dict[int, int] = defaultdict(int)
    new_actions: list[Action] = []
    for size_kib in sorted(by_size):
        label = facts.size_label(size_kib)
        group = by_size[size_kib]
        if size_kib not in supported:
            offered = ", ".join(facts.size_label(s) for s in supported) or "none"
            plan.refusals.append(f"hugepages: {', '.join(v.label for v in group)} use{'s' if len(group) == 1 else ''} "
                                 f"{label} pages, which this host "
                                 f"does not offer (offers: {offered})")
            continue
        page_bytes = size_kib * 1024
        counts = {vm.label: math.ceil(vm.memory / page_bytes) for vm in group}
        who_text = ", ".join(f"{vm.label} ({format_size(vm.memory)})" for vm in group)
        total_pages = sum(counts.values())
        verb = "needs" if len(group) == 1 else "need"
        reason = (f"{rationale + ': ' if rationale else ''}{who_text} {verb} {total_pages} x {label} pages "
                  f"({format_size(total_pages * page_bytes)}); {format_size(reserve)} kept for the host{not_using}")
        if not any(vm.nodes for vm in group):
            path = "/proc/sys/vm/nr_hugepages" if size_kib == default_kib else facts.hugepages_path(size_kib)
            now = _count(host, path)
            target = max(now, total_pages)  # never shrink a pool someone else reserved
            planned[size_kib] = target
            persist = ("sysctl", "vm.nr_hugepages", str(target)) if path.startswith("/proc/sys/") else \
                ("tmpfiles", path, str(target))
            tuned = ("sysctl", "vm.nr_hugepages", str(target)) if path.startswith("/proc/sys/") else \
                ("sysfs", path, str(target))
            change = HostChange(f"hugepages.{label}", path, str(now), str(target), reason, source, False, False,
                                d_reserve.conflict if d_reserve else "")
            new_actions.append(Action(change, "tunable", f"{target}\n".encode(), reference, persist, tuned))
        else:
            node_pages: dict[int, int] = defaultdict(int)
            for vm in group:
                nodes = nodes_all if vm.nodes in (None, "all") else _parse_nodes(vm.nodes)
                if nodes is None or any(n not in nodes_all for n in nodes):
                    plan.refusals.append(f"hugepages: host.hugepages_nodes={vm.nodes!r} of {vm.label} is not 'all' "
                                         f"or a list of this host's NUMA nodes ({format_cpulist(nodes_all)})")
                    return
                base, rest = divmod(counts[vm.label], len(nodes))
                for i, node in enumerate(nodes):
                    node_pages[node] += base + (1 if i < rest else 0)
            total = 0
            for node in sorted(node_pages):
                path = facts.hugepages_path(size_kib, node)
                now = _count(host, path)
                target = max(now, node_pages[node])
                total += target
                per_node_bytes[node] += target * page_bytes
                change = HostChange(f"hugepages.{label}.node{node}", path, str(now), str(target),
                                    f"{reason}; {node_pages[node]} pages on node {node}", source, False, False,
                                    d_reserve.conflict if d_reserve else "")
                new_actions.append(Action(change, "tunable", f"{target}\n".encode(), reference,
                                          ("tmpfiles", path, str(target)), ("sysfs", path, str(target))))
            planned[size_kib] = max(total, _count(host, facts.hugepages_path(size_kib)))
    if plan.refusals:
        return
    # Pages of sizes this plan does not touch stay reserved: count them too.
    used = sum(planned.get(s, _count(host, facts.hugepages_path(s))) * s * 1024 for s in supported)
    if used + reserve > mem_total:
        plan.refusals.append(
            f"hugepages: the plan reserves {format_size(_round_mib(used))} of hugepages but this host has "
            f"{_gib(mem_total)} (MemTotal) and keeps {format_size(reserve)} for itself (host.hugepages_reserve): "
            "lower the VMs' memory or the reserve")
        return
    node_reserve = reserve // max(1, len(nodes_all))
    for node, nbytes in sorted(per_node_bytes.items()):
        node_total = facts.node_mem_total(host, node)
        if node_total and nbytes + node_reserve > node_total:
            plan.refusals.append(f"hugepages: node {node} would hold {format_size(_round_mib(nbytes))} of hugepages "
                                 f"but has {_gib(node_total)} (keeping {format_size(node_reserve)} there for the host)")
            return
    for action in new_actions:
        plan.add(action)
    for size_kib in sorted(planned):
        _hugetlbfs(plan, host, size_kib, default_kib, source)
        if size_kib == 1024 * 1024 and any(a.needed and a.change.knob.startswith("hugepages.1G") for a in new_actions):
            plan.advice("kernel cmdline (1G pages)", _cmdline_args(host, ("hugepagesz", "hugepages")) or "-",
                        f"hugepagesz=1G hugepages={planned[size_kib]}",
                        "1G pages need contiguous memory: reserving them at runtime can fail on a fragmented host; "
                        "reserving them at boot always works", source, HUGETLB_REF, reboot=True)


def _hugetlbfs(plan: Plan, host: Any, size_kib: int, default_kib: int, source: str) -> None:
    label = facts.size_label(size_kib)
    mounted = facts.hugetlbfs_mounts(host)
    point = "/dev/hugepages" if size_kib == default_kib else f"/dev/hugepages{label}"
    options = "" if size_kib == default_kib else f"pagesize={label}"
    fstab = f"hugetlbfs {point} hugetlbfs {options or 'defaults'} 0 0"
    if size_kib in mounted:
        change = HostChange(f"hugetlbfs.{label}", mounted[size_kib], "mounted", "mounted",
                            f"libvirt backs guest memory with files on a hugetlbfs mount of {label} pages", source)
        # Already mounted (systemd's dev-hugepages.mount, an fstab line...): whatever mounted it will again.
        plan.add(Action(change, "mount", options.encode(), HUGETLB_REF))
        return
    reason = (f"libvirt backs guest memory with files on a hugetlbfs mount of {label} pages; restart libvirtd "
              "(or virtqemud) afterwards so it finds the mount")
    fake = host.is_fake
    if fake:
        reason += " (not mounted under --host-root; --persist writes the /etc/fstab line)"
    change = HostChange(f"hugetlbfs.{label}", point, "not mounted", f"mounted ({options or 'default size'})", reason,
                        source, False, fake)
    plan.add(Action(change, "advice" if fake else "mount", options.encode(), HUGETLB_REF, ("fstab", point, fstab)))


def _count(host: Any, path: str) -> int:
    value = sysfs.current(host, path)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _parse_nodes(text: str) -> Optional[list[int]]:
    try:
        nodes = parse_cpulist(text)
    except ValueError:
        return None
    return nodes or None


def _round_mib(nbytes: int) -> int:
    return int(math.ceil(nbytes / MIB)) * MIB


def _gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f} GiB"


def _cmdline_args(host: Any, names: Sequence[str]) -> str:
    return " ".join(a for a in facts.cmdline(host) if a.split("=", 1)[0] in names)


# -- SEV and the kernel command line ---------------------------------------------------------------
def sev_conf(params: Sequence[str]) -> bytes:
    return ("# Written by virtscenario host apply: AMD SEV for confidential guests.\n"
            "# Module options apply when kvm_amd loads: reboot, or reload kvm_amd while no VM runs.\n"
            f"options kvm_amd {' '.join(f'{p}=1' for p in params)}\n").encode()


def _sev(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    d = decide("host.sev", by_key.get("host.sev", []))
    if d is None or d.value is not True:
        return
    flags = facts.cpu_flags(host)
    vendor = facts.cpu_vendor(host)
    if vendor != "AMD" and "sev" not in flags:
        # securevm-like scenarios ask for SEV and use TDX on Intel: nothing to do here for SEV.
        plan.advice("kvm_amd options", "-", "-", f"AMD SEV does not apply to this {vendor or 'unknown'} CPU "
                    "(Intel hosts use TDX: see 'virtscenario host check')", d.source, SEV_REF)
        return
    if "sev" not in flags:
        plan.refusals.append(f"host.sev ({d.source}): this CPU has no SEV support (no 'sev' flag in /proc/cpuinfo; "
                             "needs an AMD EPYC with SEV enabled in the firmware)")
        return
    params = [p for p in ("sev", "sev_es", "sev_snp") if p in flags]
    loaded = sysfs.exists(host, "/sys/module/kvm_amd")

    def state(p: str) -> str:
        value = facts.module_param(host, "kvm_amd", p)
        return "-" if value is None else ("1" if facts.param_enabled(value) else "0")

    current = " ".join(f"{p}={state(p)}" for p in params) if loaded else "kvm_amd not loaded"
    target = " ".join(f"{p}=1" for p in params)
    content = sev_conf(params)
    pending = current != target and sysfs.read_bytes(host, SEV_CONF) == content
    if pending:  # written by an earlier apply: only the reboot (or module reload) is missing
        change = HostChange("kvm_amd options", SEV_CONF, current, target,
                            f"{d.reason}; {SEV_CONF} is already written: reboot, or reload kvm_amd while no VM "
                            "runs", d.source, True, True, d.conflict)
        plan.add(Action(change, "advice", content, SEV_REF))
    else:
        change = HostChange("kvm_amd options", SEV_CONF, current, target,
                            f"{d.reason}; written to {SEV_CONF}, applied when kvm_amd loads (reboot, or reload "
                            "kvm_amd while no VM runs: virtscenario never reloads it)", d.source, current != target,
                            False, d.conflict)
        plan.add(Action(change, "file", content, SEV_REF))
    args = facts.cmdline(host)
    if "mem_encrypt=on" not in args:
        # Not a "kernel cmdline" knob: the tuned backend puts those into [bootloader], and SME is optional.
        plan.advice("host memory encryption (SME, optional)", _cmdline_args(host, ("mem_encrypt",)) or "-",
                    "mem_encrypt=on", "optional, not needed by SEV guests: libvirt's SEV guide says mem_encrypt=on "
                    "'turns on the SME memory encryption feature on the host which protects against the physical "
                    "attack on the hypervisor memory' (kernel command line, then reboot)", d.source, SEV_REF)
    if "sev_snp" in params and not sysfs.listdir(host, "/sys/class/iommu"):
        current = _cmdline_args(host, ("amd_iommu", "iommu"))
        offs = [a for a in current.split() if a in ("iommu=off", "amd_iommu=off")]
        # amd_iommu= has no 'on' value: Linux enables the AMD IOMMU when the firmware describes it.
        plan.advice("IOMMU (SEV-SNP)", current or "-", f"no {' '.join(offs)}" if offs else "AMD-Vi on in firmware",
                    "SEV-SNP needs the IOMMU and /sys/class/iommu is empty: "
                    + (f"remove {' '.join(offs)} from the kernel command line" if offs else
                       "enable AMD-Vi (IOMMU) in the firmware setup; Linux turns it on by itself then "
                       "(amd_iommu= has no 'on' value)"), d.source, KERNEL_PARAMS_REF, reboot=True)


def _isolated_cpus(plan: Plan, host: Any, by_key: dict[str, list[HostRequirement]]) -> None:
    reqs = [r for r in by_key.get("host.isolated_cpus", []) if str(r.value or "").strip()]
    if not reqs:
        return
    cpus: set[int] = set()
    for req in reqs:
        try:
            cpus.update(parse_cpulist(str(req.value)))
        except ValueError:
            plan.refusals.append(f"host.isolated_cpus={req.value!r} ({who(req)}) is not a CPU list such as 2-5,8")
            return
    cpu_list = format_cpulist(sorted(cpus))
    distinct = {str(r.value).strip() for r in reqs}
    conflict = ""
    if len(distinct) > 1:
        conflict = (f"{'; '.join(f'{who(r)} wants {r.value}' for r in reqs)} -> {cpu_list} "
                    "(rule: union, every real-time VM keeps its CPUs isolated)")
    target = f"isolcpus=managed_irq,domain,{cpu_list} nohz_full={cpu_list} rcu_nocbs={cpu_list}"
    current = _cmdline_args(host, ("isolcpus", "nohz_full", "rcu_nocbs")) or "-"
    source = ", ".join(sorted({r.scenario for r in reqs}))
    if set(target.split()) <= set(facts.cmdline(host)):
        current = target
    plan.advice("kernel cmdline (isolated CPUs)", current, target,
                f"{reqs[0].rationale}; set GRUB_CMDLINE_LINUX and reboot", source, reqs[0].reference, reboot=True,
                conflict=conflict)
