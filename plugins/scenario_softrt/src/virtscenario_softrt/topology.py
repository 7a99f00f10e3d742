"""The housekeeping/isolated CPU split: computed once, used by the XML and by the host plan.

Pure functions over :class:`virtscenario.api.HostInfo`; no I/O except
:func:`read_topology`, which reads sysfs through a :class:`~virtscenario.api.HostRoot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from virtscenario.api import (
    ConfigError,
    HostCpu,
    HostInfo,
    VirtscenarioError,
    format_cpulist,
    housekeeping_split,
    parse_cpulist,
)

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import HostRoot

#: Hugepage sizes (KiB) of the assumed host: x86-64 server CPUs offer both (pdpe1gb).
ASSUMED_HUGEPAGES_KIB = (2048, 1048576)


@dataclass(frozen=True)
class RtSplit:
    """Which host CPUs stay with the host and which run the real-time vCPUs.

    ``isolated`` is everything taken from the host scheduler (kernel ``isolcpus``,
    ``nohz_full``, ``rcu_nocbs``, tuned ``isolated_cores``); ``vcpu_cpus[i]`` is the
    host CPU vCPU ``i`` is pinned to; ``idle_siblings`` are isolated SMT siblings
    left idle so that no other thread shares an RT vCPU's core.
    """

    housekeeping: tuple[int, ...]
    isolated: tuple[int, ...]
    vcpu_cpus: tuple[int, ...]
    idle_siblings: tuple[int, ...] = ()
    shared_cores: tuple[int, ...] = ()  # RT CPUs whose SMT sibling does housekeeping work
    origin: str = ""  # where the topology came from (HostInfo.source)

    @property
    def housekeeping_list(self) -> str:
        return format_cpulist(list(self.housekeeping))

    @property
    def isolated_list(self) -> str:
        return format_cpulist(list(self.isolated))


def assumed_host(cpus: int, sockets: int = 1, threads_per_core: int = 1) -> HostInfo:
    """The documented host shape used offline (settings softrt.host_*), numbered like Linux on x86."""
    if cpus % (sockets * threads_per_core):
        raise ConfigError(f"softrt.host_cpus={cpus} cannot be split into {sockets} socket(s) of "
                          f"{threads_per_core}-thread cores (softrt.host_sockets, softrt.host_threads_per_core)")
    cores_total = cpus // threads_per_core
    per_socket = cores_total // sockets
    out = [HostCpu(thread * cores_total + core, core % per_socket, core // per_socket, core // per_socket)
           for thread in range(threads_per_core) for core in range(cores_total)]
    return HostInfo(cpus=tuple(sorted(out, key=lambda c: c.id)), hugepage_sizes_kib=ASSUMED_HUGEPAGES_KIB,
                    source=f"assumed host of {cpus} CPUs, {sockets} socket(s), {threads_per_core} thread(s) per core")


def read_topology(host: HostRoot) -> HostInfo:
    """CPU topology of ``host`` (used by the host plan without a VM): the core's reader."""
    from virtscenario.api import read_host
    return read_host(host)


def _cores(host: HostInfo, ids: list[int]) -> list[list[int]]:
    """``ids`` grouped by physical core, cores in (socket, core) order, threads ascending."""
    by_core: dict[tuple[int, int], list[int]] = {}
    where = {c.id: (c.socket, c.core) for c in host.cpus}
    for cpu in ids:
        by_core.setdefault(where.get(cpu, (0, cpu)), []).append(cpu)
    return [sorted(v) for _k, v in sorted(by_core.items())]


def compute_split(host: HostInfo, vcpus: int, housekeeping_cores: int, use_siblings: bool = False,
                  isolated: Optional[str] = None) -> RtSplit:
    """Split ``host`` for ``vcpus`` real-time vCPUs, or refuse in one line.

    ``isolated`` (setting ``host.isolated_cpus``) names the isolated CPUs
    explicitly, e.g. those of an already tuned host; otherwise the first
    ``housekeeping_cores`` cores of every NUMA node of every socket, with their SMT
    siblings, do housekeeping and the rest is isolated (the core's housekeeping_split).
    Without ``use_siblings`` each vCPU gets a whole core: it is pinned to the
    core's first thread and the sibling stays isolated and idle.
    """
    all_ids = [c.id for c in host.cpus]
    if isolated is not None:
        try:
            iso = sorted(set(parse_cpulist(isolated)))
        except ValueError:
            raise ConfigError(f"host.isolated_cpus={isolated!r} is not a CPU list such as 2-7,10-15") from None
        unknown = sorted(set(iso) - set(all_ids))
        if unknown:
            raise ConfigError(f"host.isolated_cpus={isolated}: the host has no CPU {format_cpulist(unknown)} "
                              f"(it has {format_cpulist(all_ids)})")
        house = sorted(set(all_ids) - set(iso))
        if not house:
            raise ConfigError(f"host.isolated_cpus={isolated} leaves no CPU for the host's housekeeping")
    else:
        house, iso = housekeeping_split(host, housekeeping_cores)
    where = {c.id: (c.socket, c.core) for c in host.cpus}
    house_cores = {where[c] for c in house if c in where}
    usable: list[int] = []
    idle: list[int] = []
    shared: list[int] = []
    for threads in _cores(host, iso):
        if use_siblings:
            usable.extend(threads)
        else:
            usable.append(threads[0])
            idle.extend(threads[1:])
        if where.get(threads[0]) in house_cores:
            shared.extend(threads)
    if len(usable) < vcpus:
        smt = host.threads_per_core
        shape = f"{len(all_ids)} CPUs" + (f" ({smt} threads per core)" if smt > 1 else "")
        kept = (f"host.isolated_cpus={isolated} leaves" if isolated is not None else
                f"keeping {housekeeping_cores} core(s) per NUMA node for housekeeping ({format_cpulist(house)}) leaves")
        fix = f"use --vcpus {len(usable)}, " if usable else ""
        raise VirtscenarioError(
            f"softrt: the host has {shape}; {kept} {len(usable)} dedicated CPU(s) for {vcpus} real-time vCPUs: "
            f"{fix}fewer housekeeping cores (--set cpu.housekeeping_cpus=N), or a bigger host"
            + (" (or --set softrt.use_smt_siblings=on)" if not use_siblings and smt > 1 else ""))
    return RtSplit(tuple(house), tuple(iso), tuple(usable[:vcpus]), tuple(idle), tuple(sorted(shared)), host.source)
