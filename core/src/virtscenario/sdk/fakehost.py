"""A fake host: /proc and /sys files under a directory, read through a HostRoot like --host-root."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from ..host.root import HostRoot


def make_fake_host(root: Union[str, Path], *, cpus: int = 8, sockets: int = 1, threads_per_core: int = 1,
                   memory: str = "16GiB", hugepage_sizes_kib: Sequence[int] = (2048, 1048576),
                   vendor: str = "GenuineIntel", model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
                   flags: Sequence[str] = (), cmdline: str = "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet",
                   reserved_hugepages: Optional[Mapping[int, int]] = None,
                   files: Optional[Mapping[str, str]] = None) -> HostRoot:
    """Create a host tree under ``root`` and return a HostRoot over it.

    CPUs are numbered like Linux numbers them on x86: the first thread of every
    core, socket by socket, then the sibling threads (``cpu0`` and ``cpu8`` are
    SMT siblings on an 8-core, 16-thread host). One NUMA node per socket.
    ``reserved_hugepages`` maps a page size (KiB) to the pages reserved, and free, on
    *each* node; every reserved size gets a hugetlbfs mount in ``/proc/mounts``.
    ``files`` adds or replaces files (absolute host path -> content).
    """
    from ..host.root import HostRoot
    from ..units import parse_size
    if cpus < 1 or sockets < 1 or threads_per_core < 1 or cpus % (sockets * threads_per_core):
        raise ValueError(f"{cpus} CPUs cannot be split into {sockets} sockets of {threads_per_core}-thread cores")
    base = Path(root)
    cores_total = cpus // threads_per_core
    cores_per_socket = cores_total // sockets
    tree: dict[str, str] = {}
    smt = ["ht"] if threads_per_core > 1 else []
    virt = ["vmx"] if vendor == "GenuineIntel" else ["svm"]
    big = ["pdpe1gb"] if 1048576 in hugepage_sizes_kib else []
    all_flags = " ".join(dict.fromkeys(["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "apic", "cmov", "lm",
                                        "constant_tsc", "nonstop_tsc", "x2apic", "tsc_deadline_timer",
                                        "avx2", *smt, *virt, *big, *flags]))
    siblings: dict[int, list[int]] = {}
    layout = []
    for thread in range(threads_per_core):
        for core in range(cores_total):
            cpu = thread * cores_total + core
            siblings.setdefault(core, []).append(cpu)
            layout.append((cpu, core % cores_per_socket, core // cores_per_socket))
    info = []
    for cpu, core_id, socket in sorted(layout):
        info.append(f"processor\t: {cpu}\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
                    f"physical id\t: {socket}\ncore id\t\t: {core_id}\ncpu cores\t: {cores_per_socket}\n"
                    f"flags\t\t: {all_flags}\n")
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        tree[f"{topo}/core_id"] = f"{core_id}\n"
        tree[f"{topo}/physical_package_id"] = f"{socket}\n"
        sib = siblings[socket * cores_per_socket + core_id]
        tree[f"{topo}/thread_siblings_list"] = ",".join(map(str, sib)) + "\n"
    from ..host.facts import format_cpulist
    for socket in range(sockets):
        ids = [c for c, _core, s in layout if s == socket]
        tree[f"/sys/devices/system/node/node{socket}/cpulist"] = format_cpulist(ids) + "\n"
    tree["/sys/devices/system/cpu/online"] = f"0-{cpus - 1}\n" if cpus > 1 else "0\n"
    tree["/sys/devices/system/cpu/isolated"] = "\n"
    tree["/sys/devices/system/cpu/smt/active"] = "1\n" if threads_per_core > 1 else "0\n"
    tree["/proc/cpuinfo"] = "\n".join(info)
    kib = parse_size(memory, "MiB") // 1024
    tree["/proc/meminfo"] = (f"MemTotal:       {kib} kB\nMemFree:        {kib * 3 // 4} kB\n"
                             f"MemAvailable:   {kib * 7 // 8} kB\nHugePages_Total:       0\n"
                             "HugePages_Free:        0\nHugepagesize:       2048 kB\n")
    tree["/proc/cmdline"] = cmdline + "\n"
    reserved = dict(reserved_hugepages or {})
    mounts = ["proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
              "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0"]
    for size in hugepage_sizes_kib:
        per_node = reserved.get(size, 0)
        tree[f"/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages"] = f"{per_node * sockets}\n"
        tree[f"/sys/kernel/mm/hugepages/hugepages-{size}kB/free_hugepages"] = f"{per_node * sockets}\n"
        for node in range(sockets):
            for name in ("nr_hugepages", "free_hugepages"):
                tree[f"/sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/{name}"] = f"{per_node}\n"
        if per_node:
            label = f"{size // 1048576}G" if size % 1048576 == 0 else f"{size // 1024}M"
            mounts.append(f"hugetlbfs /dev/hugepages{'' if size == 2048 else label} hugetlbfs "
                          f"rw,relatime,pagesize={label} 0 0")
    tree["/proc/mounts"] = "".join(line + "\n" for line in mounts)
    tree["/proc/sys/vm/nr_hugepages"] = f"{reserved.get(2048, 0) * sockets}\n"
    tree["/proc/sys/vm/swappiness"] = "60\n"
    tree["/sys/kernel/mm/transparent_hugepage/enabled"] = "always [madvise] never\n"
    tree["/sys/kernel/mm/transparent_hugepage/defrag"] = "always defer defer+madvise [madvise] never\n"
    tree["/sys/kernel/mm/ksm/run"] = "0\n"
    tree.update(files or {})
    for host_path, content in tree.items():
        path = base / host_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return HostRoot(base)


