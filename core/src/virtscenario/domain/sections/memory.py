"""Guest memory: size, backing (hugepages, memfd, shared access, locking), limits and the balloon.

``<memory>``, ``<currentMemory>``, ``<memtune>``, ``<memoryBacking>`` and
``<devices><memballoon>``.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, KERNEL_MM, OSINFO_LINUX

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

MB = FD + "#memory-backing"

SPECS = (
    SettingSpec("vm.memory", "size", 2 * 1024**3, "Guest memory (bare numbers are MiB)", unit="MiB",
                minimum=64 * 1024**2, maximum=2**52,  # QEMU x86_64 TARGET_PHYS_ADDR_SPACE_BITS (52)
                rationale="2 GiB: libosinfo's minimum RAM for its generic Linux guest (linux2022, which inherits "
                          "Ubuntu 22.04's resources); scenarios size it for their workload",
                reference=OSINFO_LINUX),
    SettingSpec("memory.hugepages", "bool", False, "Back guest memory with static hugepages",
                rationale="off: static hugepages are reserved from the host whether the VM runs or not; "
                          "scenarios that need fewer TLB misses and no page faults turn them on",
                reference=KERNEL_MM + "/hugetlbpage.html"),
    SettingSpec("memory.hugepage_size", "size", 2 * 1024**2, "Hugepage size (2M or 1G; bare numbers are KiB)",
                unit="KiB", minimum=64 * 1024, maximum=16 * 1024**3,  # the smallest and largest any arch offers
                rationale="2 MiB: the size every x86_64 host offers and can reserve at run time; 1 GiB pages "
                          "usually have to be reserved at boot",
                reference=KERNEL_MM + "/hugetlbpage.html", applies_when=("memory.hugepages=on",)),
    SettingSpec("memory.nosharepages", "bool", False, "Keep KSM from merging this guest's pages",
                rationale="off: KSM only merges when the host runs it, and merging is the point of KSM; "
                          "latency-sensitive scenarios opt out",
                reference=MB),
    SettingSpec("memory.locked", "bool", False, "Lock guest memory in host RAM (needs a memlock allowance)",
                rationale="off: locked memory can never be swapped or reclaimed and needs a memtune hard_limit "
                          "(libvirt docs); only real-time and confidential guests need it",
                reference=MB),
    SettingSpec("memory.source", "choice", None, "Memory backing source", ("memfd", "anonymous", "file"),
                rationale="unset: QEMU's default anonymous private memory; virtiofs needs a shareable source "
                          "such as memfd",
                reference=MB),
    SettingSpec("memory.access", "choice", None, "Memory access mode (shared is needed by virtiofs)",
                ("shared", "private"),
                rationale="unset: private memory, QEMU's default; only a vhost-user device such as virtiofs "
                          "needs shared access",
                reference=MB),
    SettingSpec("memory.discard", "bool", False, "Discard guest memory on shutdown",
                rationale="off: only file-backed memory keeps pages after the guest stops; anonymous memory is "
                          "freed anyway",
                reference=MB),
    SettingSpec("memory.hard_limit_overhead", "size", None, "Set memtune hard_limit to memory plus this overhead",
                unit="MiB", minimum=0, maximum=2**52,  # as vm.memory: QEMU x86_64's physical address space
                rationale="unset: libvirt documents that a wrong hard_limit can get the guest killed, so it is "
                          "only set where locked or pinned memory requires a limit",
                reference=FD + "#memory-tuning"),
    SettingSpec("memory.balloon", "choice", "virtio", "Memory balloon device", ("virtio", "none"),
                rationale="virtio: lets the host reclaim memory from an idle guest (virsh setmem) and read its "
                          "memory statistics; libvirt adds one by default too",
                reference=FD + "#memory-balloon-device"),
)


@record
class HugePage(Record):
    """One ``<memoryBacking><hugepages><page size=... unit='KiB'>``, optionally for some guest NUMA nodes."""

    size_kib: int
    nodeset: Optional[str] = None


@record
class MemoryBacking(Record):
    """``<memoryBacking>``: hugepages, KSM opt-out (``nosharepages``), locked memory, source, access and allocation."""

    hugepages: list[HugePage] = field(default_factory=list)
    hugepages_default: bool = False  # <hugepages/> with no explicit page size
    nosharepages: bool = False
    locked: bool = False
    source: Optional[str] = None  # file|anonymous|memfd
    access: Optional[str] = None  # shared|private
    allocation: Optional[str] = None  # immediate|ondemand
    discard: bool = False

    def empty(self) -> bool:
        """Whether nothing would be written (no ``<memoryBacking>`` element then)."""
        return not (self.hugepages or self.hugepages_default or self.nosharepages or self.locked
                    or self.source or self.access or self.allocation or self.discard)


@record
class MemTune(Record):
    """``<memtune>`` limits in bytes (``None``: no limit written); locked or SEV memory needs ``hard_limit``."""

    hard_limit: Optional[int] = None  # bytes
    soft_limit: Optional[int] = None
    swap_hard_limit: Optional[int] = None


@record
class MemBalloon(Record):
    """``<memballoon model=...>``; ``model='none'`` says "no balloon" (a ``None`` record writes nothing)."""

    model: str = "virtio"  # virtio|none
    autodeflate: Optional[bool] = None
    free_page_reporting: Optional[bool] = None
    iommu: Optional[bool] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    s = settings.value
    dom.memory = s("vm.memory")
    mb = dom.memory_backing
    if s("memory.hugepages"):
        mb.hugepages.append(HugePage(s("memory.hugepage_size") // 1024))
    else:
        from . import unused
        unused(ctx, settings, "memory.hugepage_size", "memory.hugepages is off")
    mb.nosharepages = bool(s("memory.nosharepages"))
    mb.locked = bool(s("memory.locked"))
    mb.source = s("memory.source")
    mb.access = s("memory.access")
    mb.discard = bool(s("memory.discard"))
    overhead = s("memory.hard_limit_overhead")
    if overhead:
        dom.memtune = MemTune(hard_limit=dom.memory + overhead)
    model = s("memory.balloon")
    dom.devices.memballoon = MemBalloon(model=model, iommu=True if s("devices.iommu") and model == "virtio" else None)


def render_memory(root: Element, dom: Domain) -> None:
    from ..xml import kib, sub
    if dom.max_memory:
        sub(root, "maxMemory", kib(dom.max_memory), unit="KiB", slots=str(dom.max_memory_slots or 1))
    sub(root, "memory", kib(dom.memory), unit="KiB")
    sub(root, "currentMemory", kib(dom.current_memory or dom.memory), unit="KiB")
    if dom.memtune:
        el = sub(root, "memtune")
        mt = dom.memtune
        for tag, value in (("hard_limit", mt.hard_limit), ("soft_limit", mt.soft_limit),
                           ("swap_hard_limit", mt.swap_hard_limit)):
            if value is not None:
                sub(el, tag, kib(value), unit="KiB")


def render_backing(root: Element, dom: Domain) -> None:
    from ..xml import sub
    mb = dom.memory_backing
    if mb.empty():
        return
    el = sub(root, "memoryBacking")
    if mb.hugepages or mb.hugepages_default:
        hp = sub(el, "hugepages")
        for page in mb.hugepages:
            sub(hp, "page", size=str(page.size_kib), unit="KiB", nodeset=page.nodeset)
    if mb.nosharepages:
        sub(el, "nosharepages")
    if mb.locked:
        sub(el, "locked")
    if mb.source:
        sub(el, "source", type_=mb.source)
    if mb.access:
        sub(el, "access", mode=mb.access)
    if mb.allocation:
        sub(el, "allocation", mode=mb.allocation)
    if mb.discard:
        sub(el, "discard")


def render_balloon(devices: Element, dom: Domain) -> None:
    from ..xml import driver_iommu, on, sub
    balloon = dom.devices.memballoon
    if balloon is None:
        return
    el = sub(devices, "memballoon", model=balloon.model, autodeflate=on(balloon.autodeflate),
             freePageReporting=on(balloon.free_page_reporting))
    driver_iommu(el, balloon.iommu)
