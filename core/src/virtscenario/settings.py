"""Setting keys, their types and core defaults, and resolution with provenance.

Precedence, lowest to highest: core defaults -> scenario (and plugin overrides for
it) -> user settings file -> command line (``--set`` and dedicated flags). Every
resolved value records its source, and the rationale and reference of the layer
that decided it.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .types import Choice, ResolvedSetting, Scenario, Settings, SettingSpec
from .units import parse_size

FORMATDOMAIN = "https://libvirt.org/formatdomain.html"
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def _s(key: str, kind: str, default: Any, help: str, *choices: str, **kw: Any) -> SettingSpec:
    return SettingSpec(key=key, kind=kind, default=default, help=help, choices=tuple(choices), **kw)  # type: ignore[arg-type]


#: The core's setting keys. Plugins add keys with the ``register_settings`` hook.
CORE_SETTINGS: tuple[SettingSpec, ...] = (
    # -- the VM as a whole
    _s("vm.vcpus", "int", 2, "Number of virtual CPUs", minimum=1, maximum=4096,
       rationale="virt-install's default for a general guest", reference=FORMATDOMAIN + "#cpu-allocation"),
    _s("vm.memory", "size", 2 * 1024**3, "Guest memory (bare numbers are MiB)", unit="MiB",
       rationale="enough for a current Linux distribution installer",
       reference=FORMATDOMAIN + "#memory-allocation"),
    _s("vm.virt_type", "choice", "kvm", "Domain type: kvm (hardware) or qemu (TCG emulation)", "kvm", "qemu",
       rationale="KVM is the point of this tool; --connect adapts to qemu when KVM is unavailable",
       reference=FORMATDOMAIN + "#element-and-attribute-overview"),
    _s("vm.arch", "choice", "x86_64", "Guest architecture", "x86_64",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    _s("vm.machine", "str", "q35", "Machine type; 'q35' lets libvirt pick the newest q35",
       rationale="q35 (PCIe) is required by UEFI secure boot and confidential computing; the alias always "
                 "maps to the newest versioned q35, never a hard-coded version",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    _s("vm.emulator", "str", None, "Emulator binary; unset lets libvirt choose",
       reference=FORMATDOMAIN + "#devices"),
    _s("vm.migratable", "bool", False, "The VM is meant to live-migrate: rules refuse what ties it to one host",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("vm.title", "str", None, "Short title shown by virsh list --title", reference=FORMATDOMAIN + "#general-metadata"),
    _s("vm.on_poweroff", "choice", "destroy", "Action when the guest powers off",
       "destroy", "restart", "preserve", "rename-restart", reference=FORMATDOMAIN + "#events-configuration"),
    _s("vm.on_reboot", "choice", "restart", "Action when the guest reboots",
       "destroy", "restart", "preserve", "rename-restart", reference=FORMATDOMAIN + "#events-configuration"),
    _s("vm.on_crash", "choice", "destroy", "Action when the guest crashes",
       "destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart",
       reference=FORMATDOMAIN + "#events-configuration"),
    # -- firmware
    _s("firmware.type", "choice", "efi", "Firmware, chosen by libvirt's autoselection", "efi", "bios",
       rationale="UEFI is what current OSes expect; libvirt picks the image from the firmware descriptors",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    _s("firmware.secure_boot", "bool", None, "Request a secure-boot capable firmware (unset: no preference)",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    _s("firmware.enrolled_keys", "bool", None, "Request firmware with Microsoft keys enrolled (unset: no preference)",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    _s("firmware.stateless", "bool", False, "Stateless firmware (no NVRAM), as confidential guests need",
       reference=FORMATDOMAIN + "#bios-bootloader"),
    # -- CPU
    _s("cpu.mode", "choice", "host-passthrough", "CPU model mode",
       "host-passthrough", "host-model", "maximum", "custom",
       rationale="virt-install's x86 default since 2022: best performance, safe with migratable='on'",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.migratable", "bool", None, "host-passthrough: hide features that block migration",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.check", "choice", None, "How strictly libvirt checks the CPU definition", "none", "partial", "full",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.model", "str", None, "Named CPU model for mode=custom (e.g. EPYC, x86-64-v3 baselines)",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.cache", "choice", None, "L3 cache information shown to the guest", "passthrough", "emulate", "disable",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.topology", "choice", "cores", "Topology: all vCPUs as cores of one socket, or SMT pairs like the host",
       "cores", "host", "none", rationale="virt-install prefers cores over sockets: guests license and schedule "
       "better on one socket", reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.features", "str", None, "CPU features: comma list, 'name' requires, '-name' disables",
       reference=FORMATDOMAIN + "#cpu-model-and-topology"),
    _s("cpu.pinning", "choice", "none", "Pin vCPUs, emulator and iothreads to host CPUs (auto: when the host "
       "topology is known and has the CPUs)", "none", "auto", reference=FORMATDOMAIN + "#cpu-tuning"),
    _s("cpu.housekeeping_cpus", "int", 1, "Host cores kept for the host, emulator and iothreads when pinning",
       minimum=1, maximum=1024, reference=FORMATDOMAIN + "#cpu-tuning"),
    _s("cpu.scheduler", "choice", "none", "vCPU scheduler policy (fifo/rr for real time)", "none", "fifo", "rr",
       reference=FORMATDOMAIN + "#cpu-tuning"),
    _s("cpu.priority", "int", 1, "Real-time priority for fifo/rr vCPU threads", minimum=1, maximum=99,
       reference=FORMATDOMAIN + "#cpu-tuning"),
    _s("cpu.iothreads", "int", 0, "Number of iothreads; disks are spread over them", minimum=0, maximum=64,
       reference=FORMATDOMAIN + "#iothreads-allocation"),
    # -- memory
    _s("memory.hugepages", "bool", False, "Back guest memory with static hugepages",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.hugepage_size", "size", 2 * 1024**2, "Hugepage size (2M or 1G; bare numbers are KiB)", unit="KiB",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.nosharepages", "bool", False, "Keep KSM from merging this guest's pages",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.locked", "bool", False, "Lock guest memory in host RAM (needs a memlock allowance)",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.source", "choice", None, "Memory backing source", "memfd", "anonymous", "file",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.access", "choice", None, "Memory access mode (shared is needed by virtiofs)", "shared", "private",
       reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.discard", "bool", False, "Discard guest memory on shutdown", reference=FORMATDOMAIN + "#memory-backing"),
    _s("memory.hard_limit_overhead", "size", None, "Set memtune hard_limit to memory plus this overhead",
       unit="MiB", reference=FORMATDOMAIN + "#memory-tuning"),
    _s("memory.balloon", "choice", "virtio", "Memory balloon device", "virtio", "none",
       reference=FORMATDOMAIN + "#memory-balloon-device"),
    # -- disks and images
    _s("disk.format", "choice", "qcow2", "Image format", "qcow2", "raw",
       reference="https://www.qemu.org/docs/master/system/images.html"),
    _s("disk.cache", "choice", "none", "Host page-cache mode of the disk",
       "none", "writeback", "writethrough", "directsync", "unsafe",
       rationale="cache=none (O_DIRECT) is data-safe with guest flushes and is the mode migration accepts",
       reference=FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    _s("disk.io", "choice", None, "I/O submission mode", "native", "threads", "io_uring",
       reference=FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    _s("disk.bus", "choice", "virtio", "Disk bus", "virtio", "scsi", "sata",
       reference=FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    _s("disk.discard", "choice", None, "Pass guest discard (TRIM) to the image", "unmap", "ignore",
       reference=FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    _s("disk.detect_zeroes", "choice", None, "Detect zero writes", "off", "on", "unmap",
       reference=FORMATDOMAIN + "#hard-drives-floppy-disks-cdroms"),
    _s("disk.size", "size", 20 * 1024**3, "Size of a new image (bare numbers are GiB)", unit="GiB",
       reference="https://www.qemu.org/docs/master/tools/qemu-img.html"),
    _s("disk.preallocation", "choice", "off", "Image preallocation", "off", "metadata", "falloc", "full",
       reference="https://www.qemu.org/docs/master/tools/qemu-img.html"),
    _s("disk.cluster_size", "size", None, "qcow2 cluster size (bare numbers are KiB)", unit="KiB",
       reference="https://www.qemu.org/docs/master/tools/qemu-img.html"),
    _s("disk.lazy_refcounts", "bool", False, "qcow2 lazy refcounts", reference="https://www.qemu.org/docs/master/tools/qemu-img.html"),
    _s("disk.compression", "choice", None, "qcow2 compression type", "zlib", "zstd",
       reference="https://www.qemu.org/docs/master/tools/qemu-img.html"),
    _s("disk.encryption", "bool", False, "LUKS-encrypt new qcow2 images",
       reference="https://libvirt.org/formatstorageencryption.html"),
    _s("disk.directory", "str", None, "Where new images go (default: the VM's store directory)",
       reference="docs/settings.md"),
    # -- network
    _s("network.model", "choice", "virtio", "NIC model", "virtio", "e1000e", "e1000", "rtl8139",
       reference=FORMATDOMAIN + "#network-interfaces"),
    _s("network.queues", "int", 1, "virtio-net queue pairs (0: one per vCPU, at most 8)", minimum=0, maximum=256,
       reference=FORMATDOMAIN + "#setting-nic-driver-specific-options"),
    _s("network.default", "str", "network=default", "Network used when no --network is given",
       reference=FORMATDOMAIN + "#network-interfaces"),
    # -- display, input, sound
    _s("graphics.type", "choice", "vnc", "Remote display", "vnc", "spice", "none",
       reference=FORMATDOMAIN + "#graphical-framebuffers"),
    _s("graphics.listen", "str", "127.0.0.1", "Listen address, or 'none' for local-only (no TCP)",
       rationale="listening on loopback only: reach it through an SSH tunnel, never exposed unauthenticated",
       reference=FORMATDOMAIN + "#graphical-framebuffers"),
    _s("graphics.keymap", "str", None, "VNC keymap (unset: the client's keyboard is used)",
       reference=FORMATDOMAIN + "#graphical-framebuffers"),
    _s("video.model", "choice", "virtio", "Video model", "virtio", "qxl", "vga", "bochs", "none",
       reference=FORMATDOMAIN + "#video-devices"),
    _s("video.accel3d", "bool", None, "virtio-gpu 3D acceleration (needs spice with GL)",
       reference=FORMATDOMAIN + "#video-devices"),
    _s("input.tablet", "bool", True, "USB tablet: absolute pointer, no mouse grab under VNC/SPICE",
       reference=FORMATDOMAIN + "#input-devices"),
    _s("input.keyboard", "choice", None, "Extra keyboard device (q35 always has PS/2)", "virtio", "usb", "ps2",
       reference=FORMATDOMAIN + "#input-devices"),
    _s("input.mouse", "choice", None, "Extra mouse device", "virtio", "usb", "ps2",
       reference=FORMATDOMAIN + "#input-devices"),
    _s("sound.model", "choice", "none", "Sound card", "ich9", "ich6", "ac97", "none",
       reference=FORMATDOMAIN + "#sound-devices"),
    _s("usb.controller", "choice", "qemu-xhci", "USB controller", "qemu-xhci", "none",
       reference=FORMATDOMAIN + "#usb-controller"),
    # -- other devices
    _s("watchdog.model", "choice", "none", "Watchdog device", "i6300esb", "none",
       reference=FORMATDOMAIN + "#watchdog-device"),
    _s("watchdog.action", "choice", "reset", "Watchdog action", "reset", "shutdown", "poweroff", "pause",
       "none", "dump", "inject-nmi", reference=FORMATDOMAIN + "#watchdog-device"),
    _s("tpm.model", "choice", "none", "TPM device", "tpm-crb", "tpm-tis", "none", reference=FORMATDOMAIN + "#tpm-device"),
    _s("tpm.backend", "choice", "emulator", "TPM backend: swtpm emulator or host passthrough",
       "emulator", "passthrough", reference=FORMATDOMAIN + "#tpm-device"),
    _s("tpm.version", "choice", "2.0", "Emulated TPM version", "2.0", "1.2", reference=FORMATDOMAIN + "#tpm-device"),
    _s("rng.model", "choice", "virtio", "Random number generator", "virtio", "none",
       rationale="a virtio-rng fed by /dev/urandom gives the guest entropy at boot without draining the host",
       reference=FORMATDOMAIN + "#random-number-generator-device"),
    _s("channel.guest_agent", "bool", True, "qemu-guest-agent channel (clean shutdown, fsfreeze, IP report)",
       rationale="lets libvirt shut down, freeze filesystems and read addresses through the agent",
       reference=FORMATDOMAIN + "#channel"),
    _s("channel.vdagent", "bool", False, "SPICE vdagent channel (clipboard, resolution)", reference=FORMATDOMAIN + "#channel"),
    _s("console.serial", "bool", True, "Serial console on a pty (virsh console)",
       reference=FORMATDOMAIN + "#consoles-serial-parallel-channel-devices"),
    _s("devices.iommu", "bool", False, "iommu='on' on every virtio device (needed by SEV/TDX guests)",
       reference=FORMATDOMAIN + "#virtio-related-options"),
    # -- features, clock, power management
    _s("features.smm", "bool", None, "System management mode (unset: on when secure boot is requested)",
       reference=FORMATDOMAIN + "#hypervisor-features"),
    _s("features.pmu", "bool", None, "Expose the performance monitoring unit", reference=FORMATDOMAIN + "#hypervisor-features"),
    _s("features.hyperv", "bool", False, "Hyper-V enlightenments for Windows guests", reference=FORMATDOMAIN + "#hypervisor-features"),
    _s("features.kvm_hint_dedicated", "bool", None, "Tell the guest its vCPUs are dedicated (pinned)",
       reference=FORMATDOMAIN + "#hypervisor-features"),
    _s("features.kvm_poll_control", "bool", None, "Guest halt-polling control", reference=FORMATDOMAIN + "#hypervisor-features"),
    _s("clock.offset", "choice", "utc", "Guest clock offset", "utc", "localtime", reference=FORMATDOMAIN + "#time-keeping"),
    _s("clock.rtc_tickpolicy", "choice", "catchup", "RTC timer tick policy", "catchup", "delay", "merge", "discard",
       reference=FORMATDOMAIN + "#time-keeping"),
    _s("clock.pit_tickpolicy", "choice", "delay", "PIT timer tick policy", "catchup", "delay", "merge", "discard",
       reference=FORMATDOMAIN + "#time-keeping"),
    _s("clock.hpet", "bool", False, "HPET timer", reference=FORMATDOMAIN + "#time-keeping"),
    _s("clock.kvmclock", "bool", None, "kvmclock paravirtual clock (unset: hypervisor default)",
       reference=FORMATDOMAIN + "#time-keeping"),
    _s("pm.suspend_to_mem", "bool", False, "Let the guest suspend to RAM", reference=FORMATDOMAIN + "#power-management"),
    _s("pm.suspend_to_disk", "bool", False, "Let the guest hibernate", reference=FORMATDOMAIN + "#power-management"),
    # -- host directory sharing
    _s("filesystem.share", "bool", False, "Share a host directory with the guest over virtiofs",
       reference="https://libvirt.org/kbase/virtiofs.html"),
    _s("filesystem.source_dir", "str", None, "Host directory to share (default: <store>/<name>/share)",
       reference="https://libvirt.org/kbase/virtiofs.html"),
    _s("filesystem.target", "str", "host_share", "Mount tag the guest mounts (mount -t virtiofs TAG /mnt)",
       reference="https://libvirt.org/kbase/virtiofs.html"),
    _s("filesystem.readonly", "bool", True, "Share read-only where libvirt supports it",
       reference="https://libvirt.org/kbase/virtiofs.html"),
    # -- confidential computing
    _s("launch_security.type", "choice", "none", "Memory encryption: auto picks the strongest the host offers",
       "none", "auto", "sev", "sev-es", "sev-snp", "tdx", reference="https://libvirt.org/kbase/launch_security_sev.html"),
    _s("launch_security.policy", "int", None, "Guest policy (unset: the documented default for the type)",
       minimum=0, maximum=2**64 - 1, reference=FORMATDOMAIN + "#launch-security"),
    # -- host requirements (turned into a host plan by the host tuning plugin)
    _s("host.thp", "choice", None, "Transparent hugepages mode", "always", "madvise", "never",
       reference="https://docs.kernel.org/admin-guide/mm/transhuge.html"),
    _s("host.thp_defrag", "choice", None, "Transparent hugepages defrag mode", "always", "defer", "defer+madvise",
       "madvise", "never", reference="https://docs.kernel.org/admin-guide/mm/transhuge.html"),
    _s("host.thp_shmem", "choice", None, "Transparent hugepages for shared memory (memfd, tmpfs)", "always",
       "within_size", "advise", "never", reference="https://docs.kernel.org/admin-guide/mm/transhuge.html"),
    _s("host.ksm", "choice", None, "Kernel samepage merging", "on", "off",
       reference="https://docs.kernel.org/admin-guide/mm/ksm.html"),
    _s("host.ksm_merge_across_nodes", "bool", None, "KSM merges pages across NUMA nodes",
       reference="https://docs.kernel.org/admin-guide/mm/ksm.html"),
    _s("host.swappiness", "int", None, "vm.swappiness", minimum=0, maximum=200,
       reference="https://docs.kernel.org/admin-guide/sysctl/vm.html#swappiness"),
    _s("host.io_scheduler", "choice", None, "IO scheduler of the host's real block devices",
       "mq-deadline", "bfq", "kyber", "none", reference="https://docs.kernel.org/block/index.html"),
    _s("host.hugepages", "bool", None, "Reserve static hugepages for the VMs that use them",
       reference="https://docs.kernel.org/admin-guide/mm/hugetlbpage.html"),
    _s("host.hugepages_reserve", "size", 2 * 1024**3, "Memory always left to the host when reserving hugepages",
       unit="MiB", reference="https://docs.kernel.org/admin-guide/mm/hugetlbpage.html"),
    _s("host.sev", "bool", None, "Enable AMD SEV in kvm_amd", reference="https://libvirt.org/kbase/launch_security_sev.html"),
    _s("host.isolated_cpus", "str", None, "Host CPUs isolated for real-time vCPUs (kernel cmdline)",
       reference="https://libvirt.org/kbase/kvm-realtime.html"),
)


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


class SettingRegistry:
    """All known setting keys: the core's plus those plugins register."""

    def __init__(self, specs: Iterable[SettingSpec] = CORE_SETTINGS) -> None:
        self._specs: dict[str, SettingSpec] = {}
        self._owner: dict[str, str] = {}
        for spec in specs:
            self.add(spec, "core")

    def add(self, spec: SettingSpec, owner: str) -> None:
        if spec.key in self._specs:
            from .errors import PluginError
            raise PluginError(f"setting {spec.key!r} is declared by both {self._owner[spec.key]} and {owner}")
        self._specs[spec.key] = spec
        self._owner[spec.key] = owner

    def __contains__(self, key: str) -> bool:
        return key in self._specs

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._specs.values())

    def spec(self, key: str) -> SettingSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise ConfigError(self.unknown_key_message(key)) from None

    def owner(self, key: str) -> str:
        return self._owner[key]

    def unknown_key_message(self, key: str, where: str = "") -> str:
        close = difflib.get_close_matches(key, list(self._specs), n=1, cutoff=0.6)
        if not close:
            # also try matching on the last component: "cache" -> "disk.cache"
            tails = [k for k in self._specs if k.split(".")[-1] == key.split(".")[-1]]
            close = tails[:1]
        hint = f"; did you mean {close[0]!r}?" if close else "; see 'virtscenario settings'"
        return f"unknown setting {key!r}{where}{hint}"

    def coerce(self, key: str, value: Any, where: str = "") -> Any:
        """Convert a raw value (YAML or command-line string) to the key's type."""
        spec = self.spec(key) if not where else self._spec_or_error(key, where)
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "unset")):
            return None
        bad = ConfigError(f"setting {key!r}{where}: expected {spec.type_name}, got {value!r}")
        if spec.kind == "bool":
            result = parse_bool(value)
            if result is None:
                raise bad
            return result
        if spec.kind == "int":
            if isinstance(value, bool):
                raise bad
            try:
                number = int(value, 0) if isinstance(value, str) else int(value)
            except (TypeError, ValueError):
                raise bad from None
            if isinstance(value, float) and value != number:
                raise bad
            if spec.minimum is not None and number < spec.minimum:
                raise ConfigError(f"setting {key!r}{where}: {number} is below the minimum {spec.minimum}")
            if spec.maximum is not None and number > spec.maximum:
                raise ConfigError(f"setting {key!r}{where}: {number} is above the maximum {spec.maximum}")
            return number
        if spec.kind == "size":
            return parse_size(value, spec.unit, what=f"setting {key!r}{where}")
        if spec.kind == "choice":
            text = str(value).strip() if not isinstance(value, bool) else ("on" if value else "off")
            if text not in spec.choices:
                close = difflib.get_close_matches(text, spec.choices, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"setting {key!r}{where}: {text!r} is not {spec.type_name}{hint}")
            return text
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad
        return str(value)

    def _spec_or_error(self, key: str, where: str) -> SettingSpec:
        if key not in self._specs:
            raise ConfigError(self.unknown_key_message(key, where))
        return self._specs[key]


def resolve(
    registry: SettingRegistry,
    scenario: Scenario,
    scenario_source: str,
    overrides: Iterable[tuple[Choice, str]] = (),
    file_values: Mapping[str, Any] | None = None,
    file_source: str = "",
    cli_values: Iterable[tuple[str, Any, str]] = (),
) -> Settings:
    """Apply the layers in precedence order and return resolved settings.

    ``overrides`` are plugin choices for this scenario (already ordered, winner
    last). ``cli_values`` are ``(key, raw value, flag name)`` in command-line order.
    """
    items: dict[str, ResolvedSetting] = {}
    for spec in registry:
        owner = registry.owner(spec.key)
        source = "core default" if owner == "core" else f"default of {owner}"
        items[spec.key] = ResolvedSetting(spec.key, spec.default, source, spec.rationale, spec.reference)
    for choice in scenario.choices:
        value = registry.coerce(choice.key, choice.value, where=f" (scenario {scenario.name})")
        items[choice.key] = ResolvedSetting(choice.key, value, scenario_source, choice.rationale, choice.reference)
    for choice, source in overrides:
        value = registry.coerce(choice.key, choice.value, where=f" (from {source})")
        items[choice.key] = ResolvedSetting(choice.key, value, source, choice.rationale, choice.reference)
    for key, raw in (file_values or {}).items():
        value = registry.coerce(key, raw, where=f" in {file_source}")
        prev = items[key]
        items[key] = ResolvedSetting(key, value, f"file {file_source}",
                                     f"set by the user (scenario chose {_show(prev.value)})", prev.reference)
    for key, raw, flag in cli_values:
        value = registry.coerce(key, raw, where=f" ({flag})")
        prev = items[key]
        items[key] = ResolvedSetting(key, value, f"flag {flag}",
                                     f"set by the user (scenario chose {_show(prev.value)})" if not
                                     prev.source.startswith(("file", "flag")) else prev.rationale, prev.reference)
    return Settings(items)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    return str(value)


def display_value(spec: SettingSpec | None, value: Any) -> str:
    from .units import format_size
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if spec is not None and spec.kind == "size" and isinstance(value, int):
        return format_size(value)
    if spec is not None and spec.key == "launch_security.policy" and isinstance(value, int):
        return hex(value)
    return str(value)
