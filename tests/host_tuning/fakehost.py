"""Builds fake host trees (/proc, /sys, /etc, /dev, /usr, /run) for --host-root tests.

Every host is generated from a few parameters, so each test states what kind of
machine it runs on. Files carry the exact formats the kernel uses (selection
files with brackets, meminfo in kB, "Node N" prefixes in node meminfo).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GIB_KB = 1024 * 1024

BASE_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
              "ht syscall nx lm constant_tsc rep_good nopl cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic "
              "movbe popcnt aes xsave avx f16c rdrand lahf_lm abm")


@dataclass
class HostSpec:
    vendor: str = "AuthenticAMD"
    model: str = "AMD EPYC 7763 64-Core Processor"
    flags: tuple[str, ...] = ()
    cpus: int = 4
    nodes: int = 1
    mem_gib: int = 64
    hugepage_sizes_kb: tuple[int, ...] = (2048, 1048576)
    kvm_module: Optional[str] = "kvm_amd"          # loaded KVM vendor module (None: none)
    module_params: dict[str, str] = field(default_factory=dict)
    dev_kvm: bool = True
    dev_sev: bool = False
    iommu_units: tuple[str, ...] = ("ivhd0",)
    cmdline: str = "BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro quiet"
    mounts: tuple[str, ...] = ("proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
                               "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
                               "/dev/sda2 / ext4 rw,relatime 0 0")
    cgroup: str = "0::/init.scope\n"
    container_marker: Optional[str] = None         # "/.dockerenv" or "/run/.containerenv"
    # name -> (scheduler file, has a backing device)
    block: dict[str, tuple[str, bool]] = field(default_factory=lambda: {
        "nvme0n1": ("[none] mq-deadline kyber bfq\n", True),
        "sda": ("none [mq-deadline] kyber bfq\n", True),
        "vda": ("none [mq-deadline] kyber\n", True),
        "loop0": ("[none] mq-deadline kyber bfq\n", False),
        "zram0": ("", False),
        "dm-0": ("none\n", False),
    })
    block_queues: dict[str, int] = field(default_factory=lambda: {"nvme0n1": 4})  # hardware queues (default 1)
    thp_enabled: str = "always [madvise] never\n"
    thp_defrag: str = "always defer defer+madvise [madvise] never\n"
    thp_shmem: Optional[str] = "always within_size advise [never] deny force\n"  # None: an older kernel
    ksm: bool = True
    ksm_run: str = "0\n"
    ksm_pages_shared: str = "0\n"
    merge_across_nodes: Optional[str] = "1\n"
    swappiness: str = "60\n"
    tools: tuple[str, ...] = ("/usr/bin/qemu-img", "/usr/bin/swtpm", "/usr/libexec/virtiofsd")
    libvirt_socket: bool = True
    fstab: str = "# /etc/fstab: static file system information.\nUUID=1234-abcd / ext4 errors=remount-ro 0 1\n"
    extra_files: dict[str, str] = field(default_factory=dict)


def amd_sev(**kw: object) -> HostSpec:
    """An AMD EPYC host with SEV, SEV-ES and SEV-SNP, kvm_amd loaded with SEV on, /dev/sev present."""
    spec = HostSpec(flags=("svm", "npt", "sme", "sev", "sev_es", "sev_snp", "pdpe1gb"), dev_sev=True,
                    module_params={"kvm_amd/sev": "Y\n", "kvm_amd/sev_es": "Y\n", "kvm_amd/sev_snp": "Y\n"})
    return _update(spec, kw)


def amd_sev_disabled(**kw: object) -> HostSpec:
    """SEV-capable EPYC whose kvm_amd has SEV switched off (the case securevm must fix)."""
    kw.setdefault("module_params", {"kvm_amd/sev": "N\n", "kvm_amd/sev_es": "N\n", "kvm_amd/sev_snp": "N\n"})
    return amd_sev(**kw)


def intel(**kw: object) -> HostSpec:
    """An Intel Xeon host with VT-x, VT-d, 1G pages, two NUMA nodes, TDX-capable but disabled."""
    spec = HostSpec(vendor="GenuineIntel", model="Intel(R) Xeon(R) Platinum 8580", flags=("vmx", "ept", "pdpe1gb",
                    "tdx_host_platform"), cpus=8, nodes=2, kvm_module="kvm_intel",
                    module_params={"kvm_intel/tdx": "N\n"}, iommu_units=("dmar0", "dmar1"))
    return _update(spec, kw)


def no_virt(**kw: object) -> HostSpec:
    """A machine without hardware virtualization: flags that only *contain* svm/vmx as substrings."""
    spec = HostSpec(vendor="GenuineIntel", model="Intel(R) Celeron(R)", flags=("svm_lock",),
                    kvm_module=None, dev_kvm=False, iommu_units=(), hugepage_sizes_kb=(2048,), ksm=False,
                    tools=("/usr/bin/qemu-img",), libvirt_socket=False)
    return _update(spec, kw)


def container(**kw: object) -> HostSpec:
    """A Docker container on a KVM host: /.dockerenv, docker cgroup, and the VM's hypervisor flag."""
    spec = HostSpec(flags=("svm", "hypervisor"), container_marker="/.dockerenv", hugepage_sizes_kb=(2048,),
                    cgroup="12:memory:/docker/3f2a9c\n0::/docker/3f2a9c\n", iommu_units=())
    return _update(spec, kw)


def _update(spec: HostSpec, kw: dict[str, object]) -> HostSpec:
    for key, value in kw.items():
        if not hasattr(spec, key):
            raise TypeError(f"HostSpec has no field {key!r}")
        setattr(spec, key, value)
    return spec


def build(root: Path, spec: HostSpec) -> Path:
    """Write the tree for ``spec`` under ``root`` (created) and return ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    def put(path: str, text: str) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    flags = " ".join([BASE_FLAGS, *spec.flags])
    per_node = max(1, spec.cpus // spec.nodes)
    cpuinfo = []
    for cpu in range(spec.cpus):
        cpuinfo.append(f"processor\t: {cpu}\nvendor_id\t: {spec.vendor}\nmodel name\t: {spec.model}\n"
                       f"physical id\t: 0\ncore id\t\t: {cpu}\nflags\t\t: {flags}\n")
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        put(f"{topo}/core_id", f"{cpu}\n")
        put(f"{topo}/physical_package_id", "0\n")
    put("/proc/cpuinfo", "\n".join(cpuinfo) + "\n")
    mem_kb = spec.mem_gib * GIB_KB
    default_kb = 2048 if 2048 in spec.hugepage_sizes_kb else (spec.hugepage_sizes_kb or (0,))[0]
    put("/proc/meminfo", f"MemTotal:       {mem_kb} kB\nMemFree:        {mem_kb - 1024} kB\n"
                         f"HugePages_Total:       0\nHugepagesize:       {default_kb} kB\n")
    put("/proc/cmdline", spec.cmdline + "\n")
    put("/proc/mounts", "".join(m + "\n" for m in spec.mounts))
    put("/proc/1/cgroup", spec.cgroup)
    put("/proc/sys/vm/swappiness", spec.swappiness)
    if spec.hugepage_sizes_kb:
        put("/proc/sys/vm/nr_hugepages", "0\n")
    for size in spec.hugepage_sizes_kb:
        put(f"/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages", "0\n")
        put(f"/sys/kernel/mm/hugepages/hugepages-{size}kB/free_hugepages", "0\n")
    for node in range(spec.nodes):
        cpus = range(node * per_node, (node + 1) * per_node)
        put(f"/sys/devices/system/node/node{node}/cpulist", f"{cpus[0]}-{cpus[-1]}\n")
        node_kb = mem_kb // spec.nodes
        put(f"/sys/devices/system/node/node{node}/meminfo",
            f"Node {node} MemTotal:       {node_kb} kB\nNode {node} MemFree:        {node_kb - 512} kB\n")
        for size in spec.hugepage_sizes_kb:
            put(f"/sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/nr_hugepages", "0\n")
    put("/sys/devices/system/node/has_memory", f"0-{spec.nodes - 1}\n" if spec.nodes > 1 else "0\n")
    put("/sys/kernel/mm/transparent_hugepage/enabled", spec.thp_enabled)
    put("/sys/kernel/mm/transparent_hugepage/defrag", spec.thp_defrag)
    if spec.thp_shmem is not None:
        put("/sys/kernel/mm/transparent_hugepage/shmem_enabled", spec.thp_shmem)
    if spec.ksm:
        put("/sys/kernel/mm/ksm/run", spec.ksm_run)
        put("/sys/kernel/mm/ksm/pages_shared", spec.ksm_pages_shared)
        if spec.merge_across_nodes is not None:
            put("/sys/kernel/mm/ksm/merge_across_nodes", spec.merge_across_nodes)
    for name, (scheduler, real) in spec.block.items():
        base = f"/sys/block/{name}"
        put(f"{base}/queue/scheduler", scheduler)
        put(f"{base}/queue/rotational", "1\n" if name == "sda" else "0\n")
        if real:
            put(f"{base}/device/model", "FAKE DISK\n")
            # blk-mq: one directory per hardware queue (NVMe: one per CPU; SATA, virtio here: one)
            for queue in range(spec.block_queues.get(name, 1)):
                put(f"{base}/mq/{queue}/nr_tags", "1023\n")
    for unit in spec.iommu_units:
        put(f"/sys/class/iommu/{unit}/uevent", "")
    if spec.kvm_module:
        put("/sys/module/kvm/parameters/halt_poll_ns", "200000\n")
        put(f"/sys/module/{spec.kvm_module}/initstate", "live\n")
    for name, value in spec.module_params.items():
        module, param = name.split("/")
        if module == spec.kvm_module:
            put(f"/sys/module/{module}/parameters/{param}", value)
    (root / "dev").mkdir(exist_ok=True)
    if spec.dev_kvm:
        put("/dev/kvm", "")
    if spec.dev_sev:
        put("/dev/sev", "")
    put("/etc/fstab", spec.fstab)
    put("/etc/hostname", "fakehost\n")
    for tool in spec.tools:
        put(tool, "#!/bin/sh\n")
        os.chmod(root / tool.lstrip("/"), 0o755)
    if spec.libvirt_socket:
        put("/run/libvirt/libvirt-sock", "")
    if spec.container_marker:
        put(spec.container_marker, "")
    for path, text in spec.extra_files.items():
        put(path, text)
    return root


def snapshot(root: Path) -> dict[str, object]:
    """Every directory (mode), file (bytes, mode) and symbolic link (target) under ``root``, links
    never followed: compare two to prove nothing changed, nothing was left and nothing went missing."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[f"dir:{rel}"] = os.lstat(dirpath).st_mode & 0o7777
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            key = os.path.normpath(os.path.join(rel, name))
            if stat.S_ISLNK(st.st_mode):
                out[f"link:{key}"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                out[f"file:{key}"] = (path.read_bytes(), st.st_mode & 0o7777)
            elif not stat.S_ISDIR(st.st_mode):
                out[f"other:{key}"] = st.st_mode
    return out


def diff(before: dict[str, object], after: dict[str, object]) -> list[str]:
    keys = sorted(set(before) | set(after))
    return [k for k in keys if before.get(k) != after.get(k)]
