"""Host facts the checks and the planner need, read through a HostRoot.

Small functions, one fact each, no caching: a HostRoot is cheap to read and
tests build a new fake tree per case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from virtscenario.api import parse_cpulist

from . import sysfs

THP_DIR = "/sys/kernel/mm/transparent_hugepage"
KSM_DIR = "/sys/kernel/mm/ksm"
HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"
NODE_DIR = "/sys/devices/system/node"

#: Block devices that are never tuned: kernel-virtual or not disks.
VIRTUAL_BLOCK = re.compile(r"^(loop|zram|ram|dm-|md|nbd|sr|fd)\d*$")

CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
_CGROUP_CONTAINER = re.compile(r"(docker|containerd|kubepods|lxc|libpod|podman|crio|machine\.slice/.*\.scope)")


def cpu_flags(host: Any) -> frozenset[str]:
    """Flags of the first processor, as whole words (never a substring search)."""
    from virtscenario.api import parse_cpuinfo
    return parse_cpuinfo(sysfs.read_text(host, "/proc/cpuinfo") or "")[2]


def cpu_vendor(host: Any) -> str:
    from virtscenario.api import parse_cpuinfo
    vendor = parse_cpuinfo(sysfs.read_text(host, "/proc/cpuinfo") or "")[0]
    return {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor)


def meminfo(host: Any, path: str = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` (or a node's meminfo) as {field: bytes-or-count}."""
    out: dict[str, int] = {}
    for line in (sysfs.read_text(host, path) or "").splitlines():
        line = re.sub(r"^Node \d+\s+", "", line)
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        out[key.strip()] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def mem_total(host: Any) -> int:
    return meminfo(host).get("MemTotal", 0)


def default_hugepage_kib(host: Any) -> int:
    return meminfo(host).get("Hugepagesize", 2048 * 1024) // 1024


def hugepage_sizes_kib(host: Any) -> list[int]:
    """Page sizes the running kernel can reserve (``/sys/kernel/mm/hugepages/hugepages-<N>kB``)."""
    sizes = []
    for entry in sysfs.listdir(host, HUGEPAGES_DIR):
        match = re.fullmatch(r"hugepages-(\d+)kB", entry)
        if match:
            sizes.append(int(match.group(1)))
    return sorted(sizes)


def numa_nodes(host: Any) -> list[int]:
    """NUMA nodes that have memory (``has_memory``; every ``nodeN`` when that file is absent)."""
    nodes = [int(e[4:]) for e in sysfs.listdir(host, NODE_DIR) if re.fullmatch(r"node\d+", e)]
    with_memory = sysfs.read_text(host, f"{NODE_DIR}/has_memory")
    if with_memory is not None and with_memory.strip():
        keep = set(parse_cpulist(with_memory))
        nodes = [n for n in nodes if n in keep]
    return sorted(nodes)


def node_mem_total(host: Any, node: int) -> int:
    return meminfo(host, f"{NODE_DIR}/node{node}/meminfo").get("MemTotal", 0)


def hugepages_path(size_kib: int, node: Optional[int] = None) -> str:
    if node is None:
        return f"{HUGEPAGES_DIR}/hugepages-{size_kib}kB/nr_hugepages"
    return f"{NODE_DIR}/node{node}/hugepages/hugepages-{size_kib}kB/nr_hugepages"


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: str


def mounts(host: Any) -> list[Mount]:
    out = []
    for line in (sysfs.read_text(host, "/proc/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append(Mount(parts[0], parts[1].replace("\\040", " "), parts[2], parts[3]))
    return out


def hugetlbfs_mounts(host: Any) -> dict[int, str]:
    """{page size in KiB: mount point} of mounted hugetlbfs (no pagesize option = default size)."""
    default = default_hugepage_kib(host)
    out: dict[int, str] = {}
    for mount in mounts(host):
        if mount.fstype != "hugetlbfs":
            continue
        size = default
        for opt in mount.options.split(","):
            if opt.startswith("pagesize="):
                size = _size_kib(opt.split("=", 1)[1]) or default
        out.setdefault(size, mount.target)
    return out


def _size_kib(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMGkmg])?", text.strip())
    if not match:
        return 0
    return int(match.group(1)) * {"K": 1, "M": 1024, "G": 1024 * 1024}.get((match.group(2) or "K").upper(), 1)


def size_label(size_kib: int) -> str:
    if size_kib % (1024 * 1024) == 0:
        return f"{size_kib // (1024 * 1024)}G"
    if size_kib % 1024 == 0:
        return f"{size_kib // 1024}M"
    return f"{size_kib}K"


@dataclass(frozen=True)
class BlockDevice:
    name: str
    scheduler_path: str
    offered: tuple[str, ...]
    current: str
    rotational: bool
    queues: int = 1  # blk-mq hardware queues (/sys/block/DEV/mq/*)

    @property
    def fast_multiqueue(self) -> bool:
        """An SSD with several hardware queues (NVMe): the kernel gives it no scheduler."""
        return self.queues > 1 and not self.rotational


def block_devices(host: Any) -> list[BlockDevice]:
    """Real block devices with an IO scheduler: NVMe, virtio, SCSI/SATA, Xen...

    Skips kernel-virtual devices (loop, zram, ram, device-mapper, md, nbd), CD/DVD
    and floppy drives, and anything without a backing ``device`` (which is how
    the kernel marks virtual block devices: they live under /sys/devices/virtual).
    """
    out = []
    for name in sysfs.listdir(host, "/sys/block"):
        if VIRTUAL_BLOCK.match(name):
            continue
        base = f"/sys/block/{name}"
        if not sysfs.exists(host, f"{base}/device"):
            continue
        path = f"{base}/queue/scheduler"
        text = sysfs.read_text(host, path)
        if text is None or not text.strip():
            continue
        rotational = (sysfs.read_text(host, f"{base}/queue/rotational") or "0").strip() == "1"
        queues = len(sysfs.listdir(host, f"{base}/mq")) or 1
        out.append(BlockDevice(name, path, tuple(sysfs.options(text)), sysfs.selected(text) or "", rotational,
                               queues))
    return out


def cmdline(host: Any) -> list[str]:
    return (sysfs.read_text(host, "/proc/cmdline") or "").split()


def module_param(host: Any, module: str, param: str) -> Optional[str]:
    value = sysfs.read_text(host, f"/sys/module/{module}/parameters/{param}")
    return value.strip() if value is not None else None


def param_enabled(value: Optional[str]) -> bool:
    return value is not None and value.strip() in ("Y", "y", "1")


@dataclass(frozen=True)
class Environment:
    container: str  # "" or what gave it away
    vm: bool        # the CPU says it runs under a hypervisor


def environment(host: Any) -> Environment:
    found = [m for m in CONTAINER_MARKERS if sysfs.exists(host, m)]
    cgroup = sysfs.read_text(host, "/proc/1/cgroup") or ""
    match = _CGROUP_CONTAINER.search(cgroup)
    if match:
        found.append(f"/proc/1/cgroup ({match.group(1)})")
    return Environment(", ".join(found), "hypervisor" in cpu_flags(host))


def virtualization_flag(flags: frozenset[str]) -> str:
    return "vmx" if "vmx" in flags else "svm" if "svm" in flags else ""
