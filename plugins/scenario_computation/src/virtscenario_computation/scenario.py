"""The computation scenario: every decision, its reason and its source, in one place.

Sections: size, CPU, memory, disk, network, display and input, devices,
events and power, features and clock, firmware, host directory share, host.
Upstream (aginies/virt-scenario) values are named where we differ, with why.
"""

from __future__ import annotations

from virtscenario.api import Choice, Scenario

FD = "https://libvirt.org/formatdomain.html"
QEMU_IMG = "https://www.qemu.org/docs/master/tools/qemu-img.html"
VIRTINST = "https://github.com/virt-manager/virt-manager/blob/2450354f39/virtinst"
VIRT_TUNER = "https://github.com/SUSE/virt-tuner/blob/80a68114b0/src/virt_tuner/__init__.py"
KERNEL_MM = "https://docs.kernel.org/admin-guide/mm"
RHEL7_TUNING = ("https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/7/html/"
                "virtualization_tuning_and_optimization_guide")
TUNED = "https://github.com/redhat-performance/tuned/blob/2bfa442358/profiles"
PVPANIC = "https://www.qemu.org/docs/master/specs/pvpanic.html"

# -- size ---------------------------------------------------------------------------------
SIZE = (
    Choice("vm.vcpus", 6,
           "6 vCPUs: three SMT pairs, which fit next to one housekeeping core on an 8-core host (same as "
           "upstream); give more with --vcpus, pinning follows", f"{FD}#cpu-allocation"),
    Choice("vm.memory", "8GiB",
           "8 GiB, a whole number of 2 MiB and 1 GiB hugepages (same as upstream)", f"{FD}#memory-allocation"),
)

# -- CPU ----------------------------------------------------------------------------------
CPU = (
    Choice("cpu.mode", "host-passthrough",
           "every host CPU feature (AVX-512, AMX...) reaches the numeric code (same as upstream; under "
           "--virt-type qemu the core adapts it to 'maximum')", f"{FD}#cpu-model-and-topology"),
    Choice("cpu.migratable", False,
           "migratable='off' also exposes the invariant TSC, a stable and cheap clock for timing code; "
           "the VM is tied to this host anyway by pinning and hugepages (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.check", "none",
           "host-passthrough copies the host CPU, there is no named model to compare (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.cache", "passthrough",
           "the guest sees the real L1-L3 sizes, so BLAS/OpenMP runtimes block their loops for the real "
           "caches (same as upstream)", f"{FD}#cpu-model-and-topology"),
    Choice("cpu.topology", "host",
           "vCPUs as SMT pairs, each pair pinned to the two threads of one host core, so the guest knows "
           "which vCPUs share a core and HPC runtimes place threads accordingly, as SUSE virt-tuner's "
           "single-VM template mirrors the host (upstream gave no topology: libvirt then passes "
           "sockets=N,cores=1,threads=1 to QEMU, one socket per vCPU)",
           f"{VIRT_TUNER}; libvirt src/qemu/qemu_command.c v9.0.0 (qemuBuildSmpCommandLine)"),
    Choice("cpu.pinning", "auto",
           "each vCPU on its own host CPU, QEMU's emulator thread and the iothreads on the housekeeping "
           "core: no vCPU is preempted by another VM or by QEMU itself, caches stay warm. Done when the host "
           "topology is known (--connect or --host-root); offline the core says it could not pin",
           f"{FD}#cpu-tuning"),
    Choice("cpu.housekeeping_cpus", 1,
           "one core per NUMA node (all its threads) stays with the host, the emulator and the iothreads; "
           "libvirt's kvm-realtime kbase keeps host CPUs 'in each NUMA node' for the same reason",
           "https://libvirt.org/kbase/kvm-realtime.html"),
    Choice("cpu.iothreads", 4,
           "up to 4 virtio disks (system, scratch, data) each get their own iothread, pinned to the "
           "housekeeping core; the core declares only as many as there are virtio disks and says so. "
           "Upstream declared 4 that no disk used", f"{FD}#iothreads-allocation"),
)

# -- memory -------------------------------------------------------------------------------
MEMORY = (
    Choice("memory.hugepages", True,
           "static hugepages: fewer TLB misses and no page faults or compaction at run time for "
           "memory-bound code; the host requirement host.hugepages reserves them, sized from vm.memory "
           "(upstream only set THP)", f"{FD}#memory-backing"),
    Choice("memory.hugepage_size", "2MiB",
           "2 MiB pages exist on every x86_64 host and can be reserved at run time; 1 GiB pages (pdpe1gb) "
           "cut TLB misses further but usually must be reserved at boot: --set memory.hugepage_size=1GiB",
           f"{KERNEL_MM}/hugetlbpage.html"),
    Choice("memory.nosharepages", True,
           "keep KSM away from this VM: merging costs CPU and turns writes into copy-on-write faults "
           "(hugepages are never merged anyway; this holds if you turn them off)",
           f"{RHEL7_TUNING}/sect-virtualization_tuning_optimization_guide-numa-numa_ksm"),
    Choice("memory.locked", False,
           "hugepages are never swapped, so <locked/> would add nothing but a memlock allowance and the "
           "risk libvirt warns about", f"{FD}#memory-backing"),
    Choice("memory.source", None,
           "no memfd: the memory comes from hugetlbfs; upstream's memfd/shared served a 9p share this VM "
           "does not have", f"{FD}#memory-backing"),
    Choice("memory.access", None,
           "private memory: nothing outside QEMU (no virtiofs) maps guest RAM", f"{FD}#memory-backing"),
    Choice("memory.balloon", "none",
           "no balloon: the memory is reserved in hugepages for this VM, so ballooning could not give it to "
           "anyone, and the guest must never lose memory mid-job", f"{FD}#memory-balloon-device"),
)

# -- disk ---------------------------------------------------------------------------------
DISK = (
    Choice("disk.format", "raw",
           "raw: no qcow2 metadata lookups on the I/O path, the fastest format (same as upstream); no "
           "snapshots, which a compute node does not need", QEMU_IMG),
    Choice("disk.size", "20GiB",
           "20 GiB for the system: the image is preallocated, so it takes real space; size data disks with "
           "--disk size=N", QEMU_IMG),
    Choice("disk.preallocation", "falloc",
           "space is reserved with fallocate at creation, so the guest's writes never wait for the host "
           "filesystem to allocate blocks and the image cannot run out of space mid-job (upstream: off)",
           QEMU_IMG),
    Choice("disk.cache", "none",
           "O_DIRECT, data-safe: written data is on disk once the guest flushes. Upstream's 'unsafe' ignores "
           "flushes, so a host crash loses or corrupts the guest's filesystem; with io=native and a raw "
           "image, 'none' is as fast for real workloads", f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.io", "native",
           "Linux native AIO with O_DIRECT: the lowest-overhead path for raw images, what virt-install "
           "uses for block devices (upstream left the default 'threads')",
           f"{VIRTINST}/devices/disk.py (set_defaults)"),
    Choice("disk.bus", "virtio", "virtio-blk: the fewest VM exits per I/O (same as upstream)",
           f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.discard", "ignore",
           "ignore guest TRIM: unmapping would punch holes into the preallocated image and bring allocation "
           "back onto the write path", f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.lazy_refcounts", False,
           "a raw image has no refcounts (upstream asked for lazy refcounts on raw, which qemu-img ignored); "
           "off keeps a qcow2 disk crash-consistent if you switch format", QEMU_IMG),
    Choice("disk.cluster_size", None, "a raw image has no clusters", QEMU_IMG),
    Choice("disk.compression", None, "a raw image cannot hold compressed clusters", QEMU_IMG),
    Choice("disk.encryption", False,
           "no encryption on the hot I/O path; encrypt inside the guest if the data needs it",
           "https://libvirt.org/formatstorageencryption.html"),
)

# -- network ------------------------------------------------------------------------------
NETWORK = (
    Choice("network.model", "virtio", "virtio-net: paravirtual, the fastest NIC (same as upstream)",
           f"{FD}#network-interfaces"),
    Choice("network.queues", 0,
           "multi-queue: one queue pair per vCPU (at most 8), so packet processing scales across vCPUs "
           "instead of funnelling through one (user networking has a single queue: the core drops it there)",
           f"{FD}#setting-nic-driver-specific-options"),
)

# -- display and input --------------------------------------------------------------------
DISPLAY = (
    Choice("graphics.type", "none",
           "headless: a compute node is used over SSH and 'virsh console'; no display device to emulate and "
           "no VNC port (upstream: VNC with keymap 'fr'). For a graphical installer: --set graphics.type=vnc "
           "--set video.model=virtio", f"{FD}#graphical-framebuffers"),
    Choice("video.model", "none",
           "no video device (upstream: qxl, a SPICE-era adapter); the firmware and the kernel use the serial "
           "console", f"{FD}#video-devices"),
    Choice("input.tablet", False, "headless: without a display there is no pointer to emulate", f"{FD}#input-devices"),
    Choice("input.keyboard", None, "headless: q35's built-in PS/2 keyboard is enough", f"{FD}#input-devices"),
    Choice("input.mouse", None, "headless: without a display there is no pointer to emulate", f"{FD}#input-devices"),
    Choice("sound.model", "none", "no sound card on a compute node (same as upstream)", f"{FD}#sound-devices"),
    Choice("usb.controller", "none",
           "no USB controller: nothing to plug in, one emulated device less (same as upstream)",
           f"{FD}#usb-controller"),
    Choice("channel.vdagent", False, "the vdagent serves a SPICE display, which this VM does not have",
           f"{FD}#channel"),
)

# -- devices ------------------------------------------------------------------------------
DEVICES = (
    Choice("watchdog.model", "i6300esb",
           "a watchdog the guest arms (systemd RuntimeWatchdogSec=): a hung compute node is recovered "
           "without an operator (same as upstream; libvirt 9.0 has no 'itco' model)",
           f"{FD}#watchdog-device"),
    Choice("watchdog.action", "reset",
           "reset, so the node reboots and rejoins its batch system; upstream powered it off, which needs a "
           "person to restart it", f"{FD}#watchdog-device"),
    Choice("tpm.model", "none", "no TPM: nothing on a compute node measures or seals with it (same as upstream)",
           f"{FD}#tpm-device"),
    Choice("rng.model", "virtio",
           "virtio-rng from the host's /dev/urandom: entropy at boot without waiting (same as upstream)",
           f"{FD}#random-number-generator-device"),
    Choice("channel.guest_agent", True,
           "qemu-guest-agent: clean shutdown and guest addresses for the batch system (same as upstream)",
           f"{FD}#channel"),
    Choice("console.serial", True, "the serial console is the VM's only console ('virsh console')",
           f"{FD}#consoles-serial-parallel-channel-devices"),
    Choice("panic.model", "isa",
           "an ISA pvpanic device: the guest kernel reports its panic to QEMU, and only then does "
           "vm.on_crash=restart bring the node back (without it a panicked guest sits there until the watchdog "
           "fires, if the guest armed one); Linux's pvpanic driver binds to its ACPI id QEMU0001. Upstream set "
           "on_crash without a panic device", PVPANIC),
)

# -- events and power management ----------------------------------------------------------
EVENTS = (
    Choice("vm.on_poweroff", "destroy",
           "a guest shutdown stops the VM; upstream restarted it, so the VM could never be shut down from "
           "inside or with 'virsh shutdown'", f"{FD}#events-configuration"),
    Choice("vm.on_reboot", "restart", "a guest reboot reboots the VM (same as upstream)",
           f"{FD}#events-configuration"),
    Choice("vm.on_crash", "restart",
           "a crashed compute node comes back by itself and rejoins its pool (same as upstream)",
           f"{FD}#events-configuration"),
    Choice("pm.suspend_to_mem", False, "a compute node never suspends (same as upstream)",
           f"{VIRTINST}/domain/pm.py"),
    Choice("pm.suspend_to_disk", False, "a compute node never hibernates (same as upstream)",
           f"{VIRTINST}/domain/pm.py"),
)

# -- features and clock -------------------------------------------------------------------
FEATURES = (
    Choice("features.pmu", True,
           "a virtual PMU, so perf and profilers (VTune, likwid) can measure the numeric code in the guest",
           f"{FD}#hypervisor-features"),
    Choice("features.kvm_hint_dedicated", True,
           "tells the guest its vCPUs are never preempted (KVM_HINTS_REALTIME): it drops paravirtual "
           "spinlocks and may poll when idle. Only true when pinned: the plugin removes it, with a note, "
           "when the vCPUs could not be pinned", "https://docs.kernel.org/virt/kvm/x86/cpuid.html"),
    Choice("features.smm", True, "secure boot needs SMM to protect the UEFI variable store",
           f"{FD}#hypervisor-features"),
    Choice("features.hyperv", False, "Linux compute guests gain nothing from Hyper-V enlightenments",
           f"{FD}#hypervisor-features"),
    Choice("clock.offset", "utc", "the RTC in UTC, as Linux expects (same as upstream)", f"{FD}#time-keeping"),
    Choice("clock.rtc_tickpolicy", "catchup", "missed RTC ticks are caught up (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
    Choice("clock.pit_tickpolicy", "delay", "missed PIT ticks are delivered late, not in a burst (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
    Choice("clock.hpet", False,
           "no HPET: costly to emulate; the guest uses the invariant TSC or kvmclock (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
)

# -- firmware -----------------------------------------------------------------------------
FIRMWARE = (
    Choice("firmware.type", "efi",
           "UEFI chosen by libvirt's autoselection from the firmware descriptors (upstream scanned them "
           "itself, ignoring their priority)", f"{FD}#bios-bootloader"),
    Choice("firmware.secure_boot", True,
           "secure boot, as upstream; distribution kernels boot through the signed shim. Out-of-tree "
           "modules (GPU, InfiniBand) must then be signed (MOK), or --set firmware.secure_boot=off",
           f"{FD}#bios-bootloader"),
    Choice("firmware.enrolled_keys", True, "Microsoft's keys enrolled, which the shim-signed distributions need",
           f"{FD}#bios-bootloader"),
    Choice("firmware.stateless", False, "boot entries persist in the NVRAM", f"{FD}#bios-bootloader"),
)

# -- host directory share -----------------------------------------------------------------
SHARE = (
    Choice("filesystem.share", False,
           "no host share: data comes over the network or a disk; virtiofs would need shared memory "
           "backing and a virtiofsd per VM (same as upstream)", "https://libvirt.org/kbase/virtiofs.html"),
)

# -- host requirements (the host tuning plugin turns them into a plan) --------------------
HOST = (
    Choice("host.hugepages", True,
           "reserve the VM's hugepages (vm.memory / memory.hugepage_size pages) before it starts; without "
           "them libvirt refuses to start it", f"{KERNEL_MM}/hugetlbpage.html"),
    Choice("host.thp", "madvise",
           "guest RAM is on static hugepages; for the rest, QEMU madvises what benefits, so 'madvise' avoids "
           "THP compaction stalls in host processes (upstream: always)", f"{KERNEL_MM}/transhuge.html"),
    Choice("host.ksm", "off",
           "hugepages are never merged, so ksmd would scan for nothing; Red Hat: without memory overcommit, "
           "runtime performance is better with KSM off (upstream enabled it)",
           f"{RHEL7_TUNING}/sect-virtualization_tuning_optimization_guide-numa-numa_ksm"),
    Choice("host.ksm_merge_across_nodes", False,
           "if another scenario turns KSM on, keep merges within a NUMA node so this VM never reads a merged "
           "page from a remote node (same as upstream)",
           f"{RHEL7_TUNING}/sect-virtualization_tuning_optimization_guide-numa-numa_ksm"),
    Choice("host.swappiness", 10,
           "10, as tuned's throughput-performance and virtual-host profiles: the host prefers dropping page "
           "cache to swapping; upstream's 0 can make the kernel OOM-kill instead of swap",
           f"{TUNED}/throughput-performance/tuned.conf"),
    Choice("host.io_scheduler", "mq-deadline",
           "mq-deadline, lighter per request than BFQ (BFQ's documentation measures 1.9 us for BFQ against "
           "0.7 us for mq-deadline), on rotational and single-queue disks that offer it (same as upstream); "
           "multi-queue NVMe keeps the kernel's none", "https://docs.kernel.org/block/bfq-iosched.html"),
)

SCENARIO = Scenario(
    name="computation",
    summary="High-performance computing: pinned vCPUs in the host's topology, hugepages, raw disk, "
            "multi-queue network, headless",
    version="1.0",
    description="One VM that should run numeric code at close to bare-metal speed on a host it owns.",
    settings=(*SIZE, *CPU, *MEMORY, *DISK, *NETWORK, *DISPLAY, *DEVICES, *EVENTS, *FEATURES, *FIRMWARE, *SHARE),
    host=HOST,
)
