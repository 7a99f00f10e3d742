"""A typed model of a libvirt guest (the subset virtscenario decides).

The :class:`Domain` aggregate; every element record lives in the section module that
builds and renders it and is re-exported here, so plugins write ``model.Disk``.
Fields set to ``None`` (or empty) are not rendered. Sizes are bytes, rendered in KiB.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ..records import Record, record
from .sections.clock import Clock, Timer
from .sections.cpu import Cpu, CpuFeature, CpuTopology, CpuTune, NumaCell, Pin, VcpuSched
from .sections.devices import Channel, Console, Controller, Rng, Tpm, Watchdog
from .sections.disks import Disk, DiskPlan, Encryption, ImagePlan
from .sections.display import Graphics, Input, Sound, Video
from .sections.features import Features, HyperV
from .sections.filesystem import Filesystem
from .sections.firmware import FirmwareFeature, FirmwarePlan, Os
from .sections.hostdevs import HostDev, HostDevArg
from .sections.lifecycle import Pm
from .sections.memory import HugePage, MemBalloon, MemoryBacking, MemTune
from .sections.nics import Interface, NetPlan
from .sections.numa import MemNode, NumaTune
from .sections.security import LaunchSecurity
from .sections.vm import Metadata

if TYPE_CHECKING:  # pragma: no cover
    from ..vm.cloudinit import SeedPlan
    from ..vm.identity import Identity
    from .bootargs import DirectBoot

__all__ = [
    "Channel", "Clock", "Console", "Controller", "Cpu", "CpuFeature", "CpuTopology", "CpuTune", "Devices", "Disk",
    "DiskPlan", "Domain", "Encryption", "Features", "Filesystem", "FirmwareFeature", "FirmwarePlan", "Graphics",
    "HostDev", "HugePage", "HyperV", "ImagePlan", "Input", "Interface", "LaunchSecurity", "MemBalloon", "MemTune",
    "MemNode", "MemoryBacking", "Metadata", "NetPlan", "NumaCell", "NumaTune", "Os", "Pin", "Pm", "Rng", "Sound",
    "Timer", "Tpm", "VcpuSched", "Video", "VmPlan", "Watchdog",
]


@record
class Devices(Record):
    """``<devices>``: one list per device kind, rendered in libvirt's order (``hostdevs`` are PCI
    addresses only the rules read; nothing renders them)."""

    emulator: Optional[str] = None
    disks: list[Disk] = field(default_factory=list)
    controllers: list[Controller] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    consoles: list[Console] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    inputs: list[Input] = field(default_factory=list)
    tpms: list[Tpm] = field(default_factory=list)
    graphics: list[Graphics] = field(default_factory=list)
    sounds: list[Sound] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    watchdogs: list[Watchdog] = field(default_factory=list)
    memballoon: Optional[MemBalloon] = None
    rngs: list[Rng] = field(default_factory=list)
    panics: list[str] = field(default_factory=list)  # <panic model=...>
    hostdevs: list[HostDev] = field(default_factory=list)


@record
class Domain(Record):
    """One libvirt guest, as the core built it from the resolved settings (``customize_model``'s
    ``domain``; the rules' first argument).

    Mutate it in ``customize_model``: the core renders it after the hook. Sizes are bytes;
    ``None`` (or an empty list) means "not written". ``name``, ``uuid``, ``description``
    and ``metadata`` are the core's (the uuid is the VM's identity, kept on ``--force``);
    set ``title`` if you like. ``type`` is ``kvm`` or ``qemu`` (TCG).
    """

    name: str
    uuid: str
    type: str = "kvm"  # kvm|qemu
    title: Optional[str] = None
    description: Optional[str] = None
    metadata: Metadata = field(default_factory=Metadata)
    memory: int = 2 * 1024**3  # bytes
    current_memory: Optional[int] = None
    max_memory: Optional[int] = None
    max_memory_slots: Optional[int] = None
    memtune: Optional[MemTune] = None
    memory_backing: MemoryBacking = field(default_factory=MemoryBacking)
    vcpus: int = 2
    vcpu_placement: Optional[str] = "static"
    vcpu_cpuset: Optional[str] = None
    iothreads: int = 0
    cputune: CpuTune = field(default_factory=CpuTune)
    numatune: Optional[NumaTune] = None
    os: Os = field(default_factory=Os)
    features: Features = field(default_factory=Features)
    cpu: Cpu = field(default_factory=Cpu)
    clock: Clock = field(default_factory=Clock)
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    pm: Pm = field(default_factory=Pm)
    devices: Devices = field(default_factory=Devices)
    launch_security: Optional[LaunchSecurity] = None

    def virtio_devices(self) -> list[object]:
        """Every virtio device that takes ``<driver iommu=.../>``."""
        out: list[object] = [d for d in self.devices.disks if d.bus == "virtio"]
        out += [i for i in self.devices.interfaces if i.model == "virtio"]
        out += [c for c in self.devices.controllers if c.type == "virtio-serial" or c.model == "virtio-scsi"]
        out += [r for r in self.devices.rngs if r.model == "virtio"]
        out += [v for v in self.devices.videos if v.model == "virtio"]
        if self.devices.memballoon and self.devices.memballoon.model == "virtio":
            out.append(self.devices.memballoon)
        return out


@record
class VmPlan(Record):
    """What ``generate`` decided before the model is built: identity, hook answers, devices."""

    identity: Identity
    machine: str
    launch_security: str
    firmware: Optional[FirmwarePlan] = None  # the loader and launch type the host's firmware satisfies
    disks: list[DiskPlan] = field(default_factory=list)
    nets: list[NetPlan] = field(default_factory=list)
    cdrom: Optional[str] = None
    share_dir: Optional[str] = None
    hostdevs: list[HostDevArg] = field(default_factory=list)
    direct_boot: Optional[DirectBoot] = None  # --boot kernel=...
    seed: Optional[SeedPlan] = None  # --cloud-init: the NoCloud seed ISO, a second CD-ROM
    os_uri: Optional[str] = None  # --os: libosinfo's id of the guest OS
