"""A typed model of a libvirt guest (the subset virtscenario decides).

Fields set to ``None`` (or empty) are not rendered. Sizes are bytes, rendered in
KiB. The renderer (:mod:`virtscenario.render`) turns a :class:`Domain` into lxml
elements in libvirt's canonical element order.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal, Optional

from .records import Record, record

OnOff = Optional[bool]


@record
class Metadata(Record):
    """Recorded under ``<metadata><vs:scenario xmlns:vs=...>``."""

    scenario: str = ""
    scenario_version: str = ""
    plugin: str = ""
    core_version: str = ""


@record
class CpuTopology(Record):
    sockets: int = 1
    dies: int = 1
    cores: int = 1
    threads: int = 1


@record
class NumaCell(Record):
    id: int
    cpus: str
    memory: int  # bytes
    mem_access: Optional[str] = None  # shared|private


@record
class CpuFeature(Record):
    name: str
    policy: str = "require"  # force|require|optional|disable|forbid


@record
class Cpu(Record):
    mode: Optional[str] = None  # host-passthrough|host-model|maximum|custom
    migratable: OnOff = None
    check: Optional[str] = None  # none|partial|full
    model: Optional[str] = None
    model_fallback: Optional[str] = None
    cache_mode: Optional[str] = None  # passthrough|emulate|disable
    topology: Optional[CpuTopology] = None
    features: list[CpuFeature] = field(default_factory=list)
    numa: list[NumaCell] = field(default_factory=list)


@record
class Pin(Record):
    id: int
    cpuset: str


@record
class VcpuSched(Record):
    vcpus: str
    scheduler: str  # fifo|rr|batch|idle|other
    priority: Optional[int] = None


@record
class CpuTune(Record):
    vcpupin: list[Pin] = field(default_factory=list)
    emulatorpin: Optional[str] = None
    iothreadpin: list[Pin] = field(default_factory=list)
    vcpusched: list[VcpuSched] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.vcpupin or self.emulatorpin or self.iothreadpin or self.vcpusched)


@record
class NumaTune(Record):
    mode: str = "strict"
    nodeset: Optional[str] = None
    placement: Optional[str] = None


@record
class HugePage(Record):
    size_kib: int
    nodeset: Optional[str] = None


@record
class MemoryBacking(Record):
    hugepages: list[HugePage] = field(default_factory=list)
    hugepages_default: bool = False  # <hugepages/> with no explicit page size
    nosharepages: bool = False
    locked: bool = False
    source: Optional[str] = None  # file|anonymous|memfd
    access: Optional[str] = None  # shared|private
    allocation: Optional[str] = None  # immediate|ondemand
    discard: bool = False

    def empty(self) -> bool:
        return not (self.hugepages or self.hugepages_default or self.nosharepages or self.locked
                    or self.source or self.access or self.allocation or self.discard)


@record
class MemTune(Record):
    hard_limit: Optional[int] = None  # bytes
    soft_limit: Optional[int] = None
    swap_hard_limit: Optional[int] = None


@record
class FirmwareFeature(Record):
    name: str  # secure-boot|enrolled-keys|amd-sev|amd-sev-es|amd-sev-snp|intel-tdx
    enabled: bool


@record
class Os(Record):
    arch: str = "x86_64"
    machine: Optional[str] = None
    type: str = "hvm"
    firmware: Optional[str] = None  # efi|bios (libvirt autoselection)
    firmware_features: list[FirmwareFeature] = field(default_factory=list)
    loader: Optional[str] = None
    loader_readonly: OnOff = None
    loader_type: Optional[str] = None
    loader_secure: OnOff = None
    loader_stateless: OnOff = None
    nvram: Optional[str] = None
    boot: list[str] = field(default_factory=list)  # hd|cdrom|network|fd (empty: per-device boot order)
    bootmenu: OnOff = None


@record
class HyperV(Record):
    relaxed: bool = True
    vapic: bool = True
    spinlocks_retries: Optional[int] = 8191
    vpindex: bool = True
    synic: bool = True
    stimer: bool = True
    frequencies: bool = True
    tlbflush: bool = True
    ipi: bool = True


@record
class Features(Record):
    acpi: bool = True
    apic: bool = True
    pae: bool = False
    smm: OnOff = None
    vmport: OnOff = None
    pmu: OnOff = None
    hyperv: Optional[HyperV] = None
    kvm_hidden: OnOff = None
    kvm_hint_dedicated: OnOff = None
    kvm_poll_control: OnOff = None
    ioapic_driver: Optional[str] = None


@record
class Timer(Record):
    name: str  # rtc|pit|hpet|kvmclock|hypervclock|tsc
    present: OnOff = None
    tickpolicy: Optional[str] = None


@record
class Clock(Record):
    offset: str = "utc"
    timers: list[Timer] = field(default_factory=list)


@record
class Pm(Record):
    suspend_to_mem: OnOff = None
    suspend_to_disk: OnOff = None


@record
class Address(Record):
    """A PCI address; only used where the XML needs one explicitly."""

    type: str = "pci"
    domain: int = 0
    bus: int = 0
    slot: int = 0
    function: int = 0


@record
class Encryption(Record):
    format: str = "luks"
    secret_uuid: str = ""


@record
class Disk(Record):
    target: str
    source: str = ""
    type: Literal["file", "block"] = "file"
    device: Literal["disk", "cdrom"] = "disk"
    format: str = "qcow2"
    bus: str = "virtio"
    cache: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None
    detect_zeroes: Optional[str] = None
    iothread: Optional[int] = None
    iommu: OnOff = None
    readonly: bool = False
    shareable: bool = False
    boot_order: Optional[int] = None
    encryption: Optional[Encryption] = None
    serial: Optional[str] = None


@record
class Interface(Record):
    type: Literal["network", "bridge", "user", "direct"]
    source: str = ""  # network name, bridge name, or host interface for direct
    mac: str = ""
    model: str = "virtio"
    queues: Optional[int] = None
    iommu: OnOff = None
    boot_order: Optional[int] = None


@record
class Controller(Record):
    type: str  # usb|pci|scsi|virtio-serial|sata
    model: Optional[str] = None
    index: Optional[int] = None
    ports: Optional[int] = None
    iommu: OnOff = None


@record
class Input(Record):
    type: str  # tablet|mouse|keyboard
    bus: str = "virtio"


@record
class Graphics(Record):
    type: str  # vnc|spice|none|egl-headless
    listen: Optional[str] = "address"  # address|none|socket
    listen_address: Optional[str] = "127.0.0.1"
    autoport: bool = True
    keymap: Optional[str] = None
    gl: OnOff = None


@record
class Video(Record):
    model: str  # virtio|qxl|vga|bochs|ramfb|none
    heads: int = 1
    primary: bool = True
    accel3d: OnOff = None
    iommu: OnOff = None


@record
class Sound(Record):
    model: str  # ich9|ich6|ac97
    audio_type: Optional[str] = None


@record
class Tpm(Record):
    model: str = "tpm-crb"  # tpm-crb|tpm-tis
    backend: str = "emulator"  # emulator|passthrough
    version: Optional[str] = "2.0"
    device_path: Optional[str] = None  # passthrough only


@record
class Rng(Record):
    model: str = "virtio"
    backend: str = "/dev/urandom"
    rate_bytes: Optional[int] = None
    rate_period_ms: Optional[int] = None
    iommu: OnOff = None


@record
class Watchdog(Record):
    model: str  # i6300esb|ib700 (libvirt 9.0 has no itco)
    action: str = "reset"


@record
class Channel(Record):
    type: str  # unix|spicevmc|qemu-vdagent
    target_type: str = "virtio"
    target_name: str = "org.qemu.guest_agent.0"


@record
class Console(Record):
    type: str = "pty"
    target_type: str = "serial"  # serial|virtio


@record
class Filesystem(Record):
    source_dir: str
    target_dir: str
    driver: str = "virtiofs"
    accessmode: str = "passthrough"
    readonly: bool = False
    queue: Optional[int] = None


@record
class MemBalloon(Record):
    model: str = "virtio"  # virtio|none
    autodeflate: OnOff = None
    free_page_reporting: OnOff = None
    iommu: OnOff = None


@record
class LaunchSecurity(Record):
    type: Literal["sev", "sev-snp", "tdx"]
    policy: Optional[int] = None
    cbitpos: Optional[int] = None
    reduced_phys_bits: Optional[int] = None
    kernel_hashes: OnOff = None
    author_key: OnOff = None  # sev-snp
    vcek: OnOff = None  # sev-snp
    quote_generation_socket: Optional[str] = None  # tdx


@record
class Devices(Record):
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
    hostdevs: list[str] = field(default_factory=list)  # PCI addresses; only for rules (migration)


@record
class Domain(Record):
    name: str
    uuid: str
    type: Literal["kvm", "qemu"] = "kvm"
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
        out += [c for c in self.devices.controllers if c.type in ("virtio-serial", "scsi") and
                (c.type == "virtio-serial" or c.model == "virtio-scsi")]
        out += [r for r in self.devices.rngs if r.model == "virtio"]
        out += [v for v in self.devices.videos if v.model == "virtio"]
        if self.devices.memballoon and self.devices.memballoon.model == "virtio":
            out.append(self.devices.memballoon)
        return out
