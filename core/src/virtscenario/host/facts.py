"""Host facts read from /proc and /sys through a HostRoot, and the local libvirt version."""

from __future__ import annotations

import os
import re
from typing import Optional

from ..records import FrozenRecord, frozen_record
from .root import HostRoot


@frozen_record
class HostCpu(FrozenRecord):
    """One logical CPU of the host: its id (``cpuN``), core, socket (physical package) and NUMA node."""

    id: int
    core: int
    socket: int
    node: int = 0


@frozen_record
class HugePagePool(FrozenRecord):
    """Static hugepages of one size reserved on one NUMA node (``node`` -1: the whole host).

    ``free`` is None when only the reservation is known (libvirt's capabilities report the
    per-cell ``nr_hugepages``, not what running guests already use).
    """

    node: int
    size_kib: int
    total: int
    free: Optional[int] = None

    @property
    def available(self) -> int:
        return self.total if self.free is None else self.free


@frozen_record
class HostInfo(FrozenRecord):
    """What is known about the host a VM is generated for (``context.host``; ``None`` offline).

    Read from ``/proc/cpuinfo``, ``/proc/meminfo`` and ``/sys`` by :func:`read_host`. ``flags`` are
    the CPU flags of ``/proc/cpuinfo``; ``source`` says where the facts come from.
    ``hugepage_sizes_kib`` are the sizes the CPU and kernel *support*; ``hugepage_pools``
    what is *reserved* per node; ``hugetlbfs_kib`` the page sizes with a hugetlbfs mount
    (None: unknown, e.g. read through libvirt's API).
    """

    arch: str = "x86_64"
    cpu_vendor: str = ""  # GenuineIntel, AuthenticAMD
    cpu_model: str = ""
    cpus: tuple[HostCpu, ...] = ()
    memory_bytes: int = 0  # MemTotal
    flags: frozenset[str] = frozenset()  # of /proc/cpuinfo
    hugepage_sizes_kib: tuple[int, ...] = ()
    source: str = "unknown"  # where the facts come from
    hugepage_pools: tuple[HugePagePool, ...] = ()
    hugetlbfs_kib: Optional[tuple[int, ...]] = None

    def hugepages_available(self, size_kib: int, node: int) -> Optional[int]:
        """Pages of ``size_kib`` free (or reserved) on ``node``; None when nothing is known."""
        pools = [p for p in self.hugepage_pools if p.size_kib == size_kib]
        on_node = [p for p in pools if p.node == node]
        if on_node:
            return on_node[0].available
        whole = [p for p in pools if p.node == -1]
        return whole[0].available if whole else None

    @property
    def sockets(self) -> int:
        """Number of CPU sockets (0 when no CPU is known)."""
        return len({c.socket for c in self.cpus}) or 0

    @property
    def cores_per_socket(self) -> int:
        """Physical cores per socket."""
        if not self.cpus:
            return 0
        return len({(c.socket, c.core) for c in self.cpus}) // max(1, self.sockets)

    @property
    def threads_per_core(self) -> int:
        """SMT threads per core (2 with hyper-threading)."""
        if not self.cpus:
            return 0
        return len(self.cpus) // max(1, len({(c.socket, c.core) for c in self.cpus}))

    @property
    def nodes(self) -> tuple[int, ...]:
        """The host's NUMA node ids."""
        return tuple(sorted({c.node for c in self.cpus}))


def parse_cpuinfo(text: str) -> tuple[str, str, frozenset[str]]:
    """(vendor, model name, flags) of the first processor; flags are whole words."""
    vendor = model = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return vendor, model, flags


def parse_cpulist(text: str) -> list[int]:
    """Expand a kernel CPU list such as ``0-3,8,10-11``."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def format_cpulist(cpus: list[int] | tuple[int, ...]) -> str:
    """Compress CPU ids into ranges (``0-3,8``), as the kernel and tuned want them."""
    ids = sorted(set(cpus))
    ranges: list[str] = []
    start = prev = None
    for cpu in ids:
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:  # type: ignore[operator]
            prev = cpu
        else:
            ranges.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = cpu
    if start is not None:
        ranges.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ",".join(ranges)


def read_host(host: HostRoot) -> HostInfo:
    """The :class:`HostInfo` of ``host``: CPUs and their topology, memory, flags, hugepage sizes."""
    vendor, model, flags = parse_cpuinfo(host.read("/proc/cpuinfo", ""))
    node_of: dict[int, int] = {}
    for entry in host.listdir("/sys/devices/system/node"):
        if re.fullmatch(r"node\d+", entry):
            for cpu in parse_cpulist(host.read(f"/sys/devices/system/node/{entry}/cpulist", "")):
                node_of[cpu] = int(entry[4:])
    cpus: list[HostCpu] = []
    for entry in host.listdir("/sys/devices/system/cpu"):
        if not re.fullmatch(r"cpu\d+", entry):
            continue
        cid = int(entry[3:])
        topo = f"/sys/devices/system/cpu/{entry}/topology"
        if not host.exists(topo):
            continue
        core = int(host.read(f"{topo}/core_id", str(cid)).strip() or cid)
        socket = int(host.read(f"{topo}/physical_package_id", "0").strip() or 0)
        cpus.append(HostCpu(cid, core, socket, node_of.get(cid, 0)))
    memory = 0
    for line in host.read("/proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    sizes = []
    pools: list[HugePagePool] = []
    for entry in host.listdir("/sys/kernel/mm/hugepages"):
        m = re.fullmatch(r"hugepages-(\d+)kB", entry)
        if m:
            sizes.append(int(m.group(1)))
            pools.extend(_pool(host, f"/sys/kernel/mm/hugepages/{entry}", -1, int(m.group(1))))
    for entry in host.listdir("/sys/devices/system/node"):
        if re.fullmatch(r"node\d+", entry):
            for size in sizes:
                pools.extend(_pool(host, f"/sys/devices/system/node/{entry}/hugepages/hugepages-{size}kB",
                                   int(entry[4:]), size))
    vendor_name = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor)
    return HostInfo(arch="x86_64", cpu_vendor=vendor_name, cpu_model=model,
                    cpus=tuple(sorted(cpus, key=lambda c: c.id)),
                    memory_bytes=memory, flags=flags, hugepage_sizes_kib=tuple(sorted(sizes)),
                    source=f"host files under {host.root}" if host.is_fake else "this host",
                    hugepage_pools=tuple(pools), hugetlbfs_kib=hugetlbfs_sizes(host))


def _pool(host: HostRoot, directory: str, node: int, size_kib: int) -> list[HugePagePool]:
    total = host.read(f"{directory}/nr_hugepages", "").strip()
    free = host.read(f"{directory}/free_hugepages", "").strip()
    if not total.isdigit():
        return []
    return [HugePagePool(node, size_kib, int(total), int(free) if free.isdigit() else None)]


def hugetlbfs_sizes(host: HostRoot) -> Optional[tuple[int, ...]]:
    """Page sizes (KiB) with a hugetlbfs mount: ``pagesize=`` or the default (Hugepagesize).

    None when the tree has no /proc/mounts (a partial --host-root: unknown, not "none").
    """
    if not host.exists("/proc/mounts"):
        return None
    default = 0
    for line in host.read("/proc/meminfo", "").splitlines():
        if line.startswith("Hugepagesize:"):
            default = int(line.split()[1])
    out: set[int] = set()
    for line in host.read("/proc/mounts", "").splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "hugetlbfs":
            continue
        size = default
        for option in fields[3].split(","):
            if option.startswith("pagesize="):
                from ..units import parse_size
                size = parse_size(option[9:], "KiB") // 1024
        if size:
            out.add(size)
    return tuple(sorted(out))


#: Where distributions install libvirt.so (Debian multiarch, Fedora/SUSE lib64, others).
LIBVIRT_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def local_libvirt_version() -> Optional[int]:
    """Version of the installed libvirt library, read from its file name (no import, no glob).

    ``libvirt.so.0.9000.0`` is libvirt 9.0.0 -> 9000000.
    """
    for directory in LIBVIRT_LIB_DIRS:
        # libvirt.so.0 is a symlink to the versioned file: one readlink, not a listing of /usr/lib.
        try:
            name = os.path.basename(os.readlink(os.path.join(directory, "libvirt.so.0")))
        except OSError:
            continue
        m = re.fullmatch(r"libvirt\.so\.0\.(\d+)\.(\d+)", name)
        if m:
            major, minor = divmod(int(m.group(1)), 1000)
            return major * 1_000_000 + minor * 1000 + int(m.group(2))
    return None


def version_text(version: Optional[int]) -> str:
    if version is None:
        return "unknown"
    major, rest = divmod(version, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"
