"""The desktop scenario: every decision, its reason and its source, in one place.

Sections: size, CPU, memory, disk, network, display and input, devices,
events and power, features and clock, firmware, host directory share, host.
Upstream (aginies/virt-scenario) values are named where we differ, with why.
"""

from __future__ import annotations

from virtscenario.api import Choice, Scenario

FD = "https://libvirt.org/formatdomain.html"
KB_VIRTIOFS = "https://libvirt.org/kbase/virtiofs.html"
QEMU_IMG = "https://www.qemu.org/docs/master/tools/qemu-img.html"
QCOW2_CACHE = "https://github.com/qemu/qemu/blob/master/docs/qcow2-cache.txt"
VIRTINST = "https://github.com/virt-manager/virt-manager/blob/2450354f39/virtinst"
OSINFO_WIN11 = "https://gitlab.com/libosinfo/osinfo-db/-/blob/main/data/os/microsoft.com/win-11.xml.in"
KERNEL_MM = "https://docs.kernel.org/admin-guide/mm"

# -- size ---------------------------------------------------------------------------------
SIZE = (
    Choice("vm.vcpus", 4,
           "4 vCPUs keep a current desktop (compositor, browser, video) responsive; libosinfo's Windows 11 "
           "minimum is 2 (same as upstream)", OSINFO_WIN11),
    Choice("vm.memory", "4GiB",
           "4 GiB: libosinfo's Windows 11 minimum and what a GNOME/KDE session with a browser needs "
           "(same as upstream)", OSINFO_WIN11),
)

# -- CPU ----------------------------------------------------------------------------------
CPU = (
    Choice("cpu.mode", "host-passthrough",
           "every host CPU feature (AVX, AES-NI, SHA) for browsers, codecs and crypto; virt-install's x86 "
           "default since 2022 (under --virt-type qemu the core adapts it to 'maximum')",
           f"{VIRTINST}/domain/cpu.py (_get_app_default_mode)"),
    Choice("cpu.migratable", True,
           "migratable='on' hides host-only features (invariant TSC) that block save/restore and migration, "
           "so 'virsh managedsave' keeps working once the share is off (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.check", "none",
           "host-passthrough copies the host CPU, there is no named model to compare: no check "
           "(same as upstream)", f"{FD}#cpu-model-and-topology"),
    Choice("cpu.cache", "passthrough",
           "the guest sees the real cache sizes, so its scheduler and runtimes (JITs, codecs) size work for "
           "them; libvirt allows it with host-passthrough/maximum (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.topology", "cores",
           "one socket of N cores: Windows client editions use only 1 (Home) or 2 (Pro) sockets, so QEMU's "
           "default of one socket per vCPU would leave vCPUs idle; virt-install also prefers cores "
           "(upstream left QEMU's default)", f"{VIRTINST}/domain/cpu.py (set_defaults_from_vcpus)"),
    Choice("cpu.pinning", "none",
           "a desktop shares the host with the user's own applications: pinning would reserve host CPUs "
           "for an often idle VM; the host scheduler balances better", f"{FD}#cpu-tuning"),
    Choice("cpu.iothreads", 1,
           "one iothread per virtio disk takes disk emulation off the vCPU and main-loop threads (the core "
           "declares as many as there are virtio disks); upstream declared 4 iothreads that no disk used",
           f"{FD}#iothreads-allocation"),
)

# -- memory -------------------------------------------------------------------------------
MEMORY = (
    Choice("memory.source", "memfd",
           "virtiofs needs guest RAM that virtiofsd can map: a shared memfd is libvirt's recommended backing "
           "and what virt-manager's 'Enable shared memory' writes (upstream wrote it for a 9p share, which "
           "does not need it); with filesystem.share=off you may drop it", KB_VIRTIOFS),
    Choice("memory.access", "shared",
           "virtiofs requires shared memory access (libvirt refuses virtiofs otherwise)", KB_VIRTIOFS),
    Choice("memory.hugepages", False,
           "no static hugepages: they are reserved from the host whether the VM runs or not, which a "
           "desktop that shares the machine with its user cannot afford", f"{FD}#memory-backing"),
    Choice("memory.balloon", "virtio",
           "lets the host take memory back from an idle desktop (virsh setmem) and read guest memory "
           "statistics (virsh dommemstat)", f"{FD}#memory-balloon-device"),
)

# -- disk ---------------------------------------------------------------------------------
DISK = (
    Choice("disk.format", "qcow2",
           "thin provisioning, snapshots and backing files: a desktop user reverts a bad update with a "
           "snapshot (same as upstream)", QEMU_IMG),
    Choice("disk.size", "64GiB",
           "qcow2 allocates on write, so the virtual size costs nothing up front; 64 GiB is libosinfo's "
           "Windows 11 minimum and room for any Linux desktop (upstream's 8 GiB sample fits neither)",
           OSINFO_WIN11),
    Choice("disk.cache", "none",
           "O_DIRECT: written data is on disk once the guest flushes (safe on a host crash) and guest pages "
           "are not cached twice, in the guest and in the host page cache (same as upstream)",
           f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.bus", "virtio",
           "virtio-blk: fewest VM exits and discard support; built into Linux, from virtio-win on Windows "
           "(same as upstream)", f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.discard", "unmap",
           "the guest's TRIM (fstrim, Windows optimise) returns freed blocks to the host, so the thin image "
           "shrinks instead of only growing; virt-install sets it for new sparse images",
           f"{VIRTINST}/devices/disk.py (set_defaults)"),
    Choice("disk.preallocation", "metadata",
           "qcow2 metadata is written at creation, so first writes do not wait for cluster allocation while "
           "the data stays sparse (same as upstream)", QEMU_IMG),
    Choice("disk.cluster_size", "64KiB",
           "QEMU's default: fine-grained snapshot copy-on-write and thin allocation, and QEMU's default 32 MiB "
           "L2 cache covers 256 GiB of disk at 64 KiB; upstream's 1 MiB clusters copy 16 times more data on "
           "the first write after a snapshot", QCOW2_CACHE),
    Choice("disk.lazy_refcounts", False,
           "keep qcow2 refcounts consistent: lazy refcounts save metadata writes but need 'qemu-img check -r' "
           "after a host crash (same as upstream)", QEMU_IMG),
    Choice("disk.compression", "zstd",
           "for clusters written compressed (qemu-img convert -c, compressed backups): zstd is much faster "
           "than zlib at a similar ratio (QEMU >= 5.1); upstream used zlib", QEMU_IMG),
    Choice("disk.encryption", False,
           "encrypt inside the guest instead (installer LUKS, BitLocker with the vTPM): the key then stays "
           "with the user, while qcow2 LUKS keeps it on the host", "https://libvirt.org/formatstorageencryption.html"),
)

# -- network ------------------------------------------------------------------------------
NETWORK = (
    Choice("network.model", "virtio",
           "virtio-net: paravirtual, the fastest and cheapest per packet; upstream's e1000 emulates an old "
           "NIC register by register. Its one advantage, in-box Windows drivers, is moot: the virtio disk "
           "needs virtio-win anyway", f"{FD}#network-interfaces"),
    Choice("network.queues", 1,
           "one queue pair: a desktop's traffic does not need one queue per vCPU, and each extra queue "
           "costs interrupts and a vhost thread", f"{FD}#setting-nic-driver-specific-options"),
)

# -- display and input --------------------------------------------------------------------
DISPLAY = (
    Choice("graphics.type", "spice",
           "SPICE carries sound, clipboard and USB redirection to the viewer (virt-viewer, virt-manager); "
           "VNC carries none of them. For a QEMU built without SPICE: --set graphics.type=vnc "
           "(upstream: VNC with keymap 'fr' for everyone)", f"{FD}#graphical-framebuffers"),
    Choice("graphics.keymap", None,
           "no keymap: SPICE and VNC clients send scancodes, so every user's own layout works; upstream "
           "forced keymap='fr' on every VM", f"{FD}#graphical-framebuffers"),
    Choice("video.model", "virtio",
           "virtio-gpu: what virt-install picks when the guest supports it, with automatic resize to the "
           "window (upstream: virtio too); qxl only helps old guests without virtio-gpu drivers",
           f"{VIRTINST}/devices/video.py (default_model)"),
    Choice("video.accel3d", False,
           "3D (virgl) needs local-only SPICE GL and a host render node, so it would not start on headless "
           "hosts or over a tunnel; enable with --set video.accel3d=on --set graphics.listen=none",
           "https://github.com/vagrant-libvirt/vagrant-libvirt/issues/1482"),
    Choice("channel.vdagent", True,
           "spice-vdagent channel: shared clipboard and guest resolution that follows the viewer window",
           f"{FD}#channel"),
    Choice("desktop.usb_redirect", 2,
           "two SPICE USB redirection channels, as virt-install adds for SPICE guests: plug a USB stick or "
           "webcam into the VM from the viewer",
           "https://github.com/virt-manager/virt-manager/blob/2450354f39/tests/data/cli/compare/"
           "virt-install-x86_64-launch-security-tdx-full.xml"),
    Choice("input.tablet", True,
           "USB tablet: an absolute pointer, so the mouse moves in and out of the viewer without a grab "
           "(upstream's relative virtio mouse needs one)", f"{FD}#input-devices"),
    Choice("input.mouse", None,
           "no extra mouse: the tablet is the pointer, and q35's built-in PS/2 mouse serves firmware menus",
           f"{FD}#input-devices"),
    Choice("input.keyboard", None,
           "q35's built-in PS/2 keyboard works in firmware, boot loaders and every OS without a driver; "
           "upstream's extra virtio keyboard needs a guest driver and adds nothing", f"{FD}#input-devices"),
    Choice("sound.model", "ich9",
           "Intel HDA (ICH9), as virt-install adds for SPICE: in-box drivers in Windows and Linux, and with "
           "SPICE the sound reaches the viewer; upstream chose ac97 (no in-box driver in current Windows) "
           "and never emitted it", f"{FD}#sound-devices"),
    Choice("usb.controller", "qemu-xhci",
           "USB 3 controller for the tablet and redirected devices; qemu-xhci is QEMU's recommended one "
           "(same as upstream)", f"{FD}#usb-controller"),
)

# -- devices ------------------------------------------------------------------------------
DEVICES = (
    Choice("tpm.model", "tpm-crb",
           "a TPM 2.0 (CRB interface): required by Windows 11, used by Linux for measured boot and disk "
           "unlock; virt-install adds one whenever UEFI is used",
           f"{VIRTINST}/guest.py (_add_default_tpm)"),
    Choice("tpm.backend", "emulator",
           "swtpm: a TPM per VM with its own state. Upstream passed the host's /dev/tpm0 through: the host "
           "loses its TPM, only one VM can have it, and that VM cannot migrate", f"{FD}#tpm-device"),
    Choice("tpm.version", "2.0", "TPM 2.0: what Windows 11 and systemd-cryptenroll need", f"{FD}#tpm-device"),
    Choice("watchdog.model", "none",
           "no watchdog: its user sees a hung desktop, and an automatic reset would lose unsaved work",
           f"{FD}#watchdog-device"),
    Choice("rng.model", "virtio",
           "virtio-rng from the host's /dev/urandom: entropy at boot for keys and TLS without waiting "
           "(same as upstream)", f"{FD}#random-number-generator-device"),
    Choice("channel.guest_agent", True,
           "qemu-guest-agent: clean shutdown, filesystem freeze for consistent snapshots, guest addresses "
           "in 'virsh domifaddr' (same as upstream)", f"{FD}#channel"),
    Choice("console.serial", True,
           "a serial console on a pty: 'virsh console' still reaches the guest when its display is broken",
           f"{FD}#consoles-serial-parallel-channel-devices"),
)

# -- events and power management ----------------------------------------------------------
EVENTS = (
    Choice("vm.on_poweroff", "destroy", "shutting the desktop down stops the VM (same as upstream)",
           f"{FD}#events-configuration"),
    Choice("vm.on_reboot", "restart", "a guest reboot reboots the VM (same as upstream)",
           f"{FD}#events-configuration"),
    Choice("vm.on_crash", "destroy",
           "a crashed desktop stays off for inspection instead of crash-looping (same as upstream)",
           f"{FD}#events-configuration"),
    Choice("pm.suspend_to_mem", False,
           "off, as virt-install writes on x86: with suspend exposed, an ACPI shutdown (virsh shutdown, host "
           "shutdown) makes many guests suspend instead of power off, and guest S3 is often buggy and hangs "
           "the VM; upstream enabled it. Pause the VM from the host instead (virsh suspend)",
           f"{VIRTINST}/domain/pm.py"),
    Choice("pm.suspend_to_disk", False,
           "off for the same reason as suspend-to-mem (virt-install's x86 default); upstream enabled it",
           f"{VIRTINST}/domain/pm.py"),
)

# -- features and clock -------------------------------------------------------------------
FEATURES = (
    Choice("features.smm", True,
           "secure-boot firmware needs SMM to protect its variable store from the guest OS (its descriptor "
           "says requires-smm)", f"{FD}#hypervisor-features"),
    Choice("features.hyperv", False,
           "Hyper-V enlightenments only help Windows guests: for Windows, --set features.hyperv=on "
           "(virt-install enables them per OS)", f"{FD}#hypervisor-features"),
    Choice("features.vmport", False,
           "no VMware I/O port (the vmmouse backdoor, emulated by default): the USB tablet and the SPICE agent "
           "already give an absolute pointer; virt-install turns it off for SPICE guests",
           "https://github.com/virt-manager/virt-manager/blob/v5.0.0/virtinst/guest.py (_add_spice_devices)"),
    Choice("clock.offset", "utc",
           "the RTC in UTC, as Linux and libvirt expect; a Windows guest wants localtime unless told "
           "RealTimeIsUniversal (--set clock.offset=localtime)", f"{FD}#time-keeping"),
    Choice("clock.rtc_tickpolicy", "catchup",
           "missed RTC ticks are caught up, so guest time does not drift after the host was busy "
           "(virt-install's x86 default, same as upstream)", f"{VIRTINST}/domain/clock.py"),
    Choice("clock.pit_tickpolicy", "delay",
           "missed PIT ticks are delivered late, not replayed in a burst that confuses Linux timekeeping "
           "(virt-install's default, same as upstream)", f"{VIRTINST}/domain/clock.py"),
    Choice("clock.hpet", False,
           "no HPET: costly to emulate and it makes Windows guests burn CPU; kvmclock/TSC are better "
           "clocksources (virt-install's default, same as upstream)", f"{VIRTINST}/domain/clock.py"),
)

# -- firmware -----------------------------------------------------------------------------
FIRMWARE = (
    Choice("firmware.type", "efi",
           "UEFI chosen by libvirt's autoselection from the distribution's firmware descriptors, honouring "
           "their priority; upstream scanned the descriptor directory itself and ignored priority",
           f"{FD}#bios-bootloader"),
    Choice("firmware.secure_boot", True,
           "secure boot: required by Windows 11, supported by every major Linux distribution through a "
           "signed shim, and it stops unsigned boot kits (same as upstream)", f"{FD}#bios-bootloader"),
    Choice("firmware.enrolled_keys", True,
           "Microsoft's keys enrolled, so Windows and shim-signed Linux boot with secure boot on out of the box",
           f"{FD}#bios-bootloader"),
    Choice("firmware.stateless", False,
           "a desktop keeps its NVRAM: boot entries and secure-boot variables survive reboots",
           f"{FD}#bios-bootloader"),
)

# -- host directory share -----------------------------------------------------------------
SHARE = (
    Choice("filesystem.share", True,
           "upstream shares a host directory with every desktop; kept, done right: virtiofs (fast, local "
           "file semantics) instead of upstream's 9p. Turn it off with --set filesystem.share=off; it "
           "blocks migration and memory snapshots", KB_VIRTIOFS),
    Choice("filesystem.source_dir", None,
           "a dedicated directory, <store>/<name>/share, created with the VM; upstream shared the host's "
           "/tmp (other users' files and sockets)", KB_VIRTIOFS),
    Choice("filesystem.target", "host_share",
           "the mount tag; in a Linux guest (>= 5.4): mount -t virtiofs host_share /mnt/host", KB_VIRTIOFS),
    Choice("filesystem.readonly", True,
           "read-only, so a compromised guest cannot write into the host; libvirt < 11 refuses <readonly/> "
           "on virtiofs, and the core then says so and shares it read-write (mount it with -o ro)",
           KB_VIRTIOFS),
)

# -- host requirements (the host tuning plugin turns them into a plan) --------------------
HOST = (
    Choice("host.thp", "madvise",
           "QEMU madvises guest RAM for transparent hugepages, so 'madvise' gives VMs huge pages without "
           "forcing them (and compaction stalls) on every desktop application; upstream forced 'always'. "
           "The memfd RAM of the share follows shmem_enabled (host.thp_shmem)",
           f"{KERNEL_MM}/transhuge.html"),
    Choice("host.thp_shmem", "advise",
           "this desktop's RAM is a memfd (shared, for virtiofs), which follows shmem_enabled, not 'enabled': "
           "the kernel default 'never' would ignore QEMU's MADV_HUGEPAGE and back all guest RAM with 4 KiB "
           "pages; 'advise' honours it without giving huge pages to every tmpfs file",
           f"{KERNEL_MM}/transhuge.html"),
    Choice("host.ksm", "off",
           "KSM merges only private anonymous memory: this desktop's memfd-shared RAM is never merged, so "
           "ksmd would burn host CPU for nothing, and page deduplication opens timing side channels "
           "between VMs; upstream enabled it. Worth it only for many desktops with the share off",
           f"{KERNEL_MM}/ksm.html"),
    Choice("host.ksm_merge_across_nodes", False,
           "if KSM is turned on by another scenario, merge pages only within a NUMA node so no VM reads "
           "merged pages from a remote node (RHEL tuning guide); upstream used 1",
           "https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/7/html/"
           "virtualization_tuning_and_optimization_guide/sect-virtualization_tuning_optimization_guide-numa-numa_ksm"),
    Choice("host.swappiness", 35,
           "below the kernel's 60 so idle guest RAM is not swapped out for host page cache (a swapped "
           "desktop stalls visibly), above 0 so the host still swaps idle applications rather than OOM-kill "
           "(same as upstream)", "https://docs.kernel.org/admin-guide/sysctl/vm.html#swappiness"),
    Choice("host.io_scheduler", "bfq",
           "BFQ privileges latency over throughput: a VM's heavy writes do not freeze the host desktop on "
           "rotational and single-queue disks (applied only where the device offers it); multi-queue NVMe "
           "keeps none, since BFQ's per-request overhead caps the IOPS of fast devices. Upstream used "
           "mq-deadline", "https://docs.kernel.org/block/bfq-iosched.html"),
)

SCENARIO = Scenario(
    name="desktop",
    summary="Interactive desktop: SPICE display with sound, clipboard and USB, host folder over virtiofs, "
            "vTPM, secure boot",
    version="1.0",
    description="A VM a person works in: responsive, integrated with the viewer, sharing one host folder.",
    settings=(*SIZE, *CPU, *MEMORY, *DISK, *NETWORK, *DISPLAY, *DEVICES, *EVENTS, *FEATURES, *FIRMWARE, *SHARE),
    host=HOST,
)
