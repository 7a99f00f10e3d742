"""The securevm scenario: every decision, its reason and its source, in one place.

Sections: size, CPU, memory, disk, network, display and input, devices,
events and power, features and clock, firmware, launch security, host directory
share, host. Threat model: the host may be hostile (that is what SEV/TDX are
for), so nothing gives the host a way into the guest that the guest did not ask for.
Upstream (aginies/virt-scenario) values are named where we differ, with why.
"""

from __future__ import annotations

from virtscenario.api import Choice, Scenario

FD = "https://libvirt.org/formatdomain.html"
KB_SEV = "https://libvirt.org/kbase/launch_security_sev.html"
QEMU_IMG = "https://www.qemu.org/docs/master/tools/qemu-img.html"
QEMU_SEV = "https://gitlab.com/qemu-project/qemu/-/blob/master/target/i386/sev.c (sev_kvm_init)"
VIRTINST = "https://github.com/virt-manager/virt-manager/blob/2450354f39/virtinst"
LIBVIRT_SMP = "src/qemu/qemu_command.c v9.0.0 (qemuBuildSmpCommandLine)"
CC_RNG = ("https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/"
          "?id=99485c4c026f024e7cb82da84c7951dbe3deb584")
KERNEL_MM = "https://docs.kernel.org/admin-guide/mm"
TUNED = "https://github.com/redhat-performance/tuned/blob/2bfa442358/profiles"

#: What launch_security.type=auto becomes offline, without domain capabilities: SEV with the
#: SEV-ES policy, the strongest type libvirt 9.0's schema accepts (the core keeps it only when
#: the host's firmware descriptors offer amd-sev-es).
OFFLINE_LAUNCH_SECURITY = "sev-es"

# -- size ---------------------------------------------------------------------------------
SIZE = (
    Choice("vm.vcpus", 2, "2 vCPUs for a service VM (same as upstream)", f"{FD}#cpu-allocation"),
    Choice("vm.memory", "4GiB", "4 GiB (same as upstream); SEV pins all of it in host RAM",
           f"{FD}#memory-allocation"),
)

# -- CPU ----------------------------------------------------------------------------------
CPU = (
    Choice("cpu.mode", "host-passthrough",
           "the guest needs the host's real CPUID (SEV bits, C-bit position), and QEMU rejects named models "
           "for TDX (same as upstream)", f"{FD}#cpu-model-and-topology"),
    Choice("cpu.migratable", False,
           "confidential guests cannot live-migrate with libvirt, so hide nothing (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.check", "none", "host-passthrough has no named model to check (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.cache", "passthrough", "the real cache sizes for the guest's scheduler (same as upstream)",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.topology", "cores",
           "one socket of N cores, as virt-install prefers (upstream gave no topology, so libvirt's default: "
           "it passes sockets=N,cores=1,threads=1 to QEMU, one socket per vCPU)",
           f"{VIRTINST}/domain/cpu.py (set_defaults_from_vcpus); libvirt {LIBVIRT_SMP}"),
    Choice("cpu.pinning", "none", "no pinning: nothing about confidentiality needs it", f"{FD}#cpu-tuning"),
    Choice("cpu.iothreads", 1,
           "one iothread per virtio disk keeps disk emulation off the vCPU threads (upstream: none)",
           f"{FD}#iothreads-allocation"),
)

# -- memory -------------------------------------------------------------------------------
MEMORY = (
    Choice("memory.hard_limit_overhead", "256MiB",
           "SEV pins all guest memory, so libvirt's kbase asks for a memtune hard_limit of RAM + 256 MiB "
           "(same as upstream); it bounds what QEMU may lock", KB_SEV),
    Choice("memory.locked", False,
           "the hard_limit is the kbase alternative to <locked/>, which also needs the host's memlock "
           "allowance raised", KB_SEV),
    Choice("memory.nosharepages", True,
           "keep KSM away: deduplication across VMs is a timing side channel, and encrypted pages never "
           "match anyway", f"{KERNEL_MM}/ksm.html"),
    Choice("memory.hugepages", False, "no static hugepages: not needed for confidentiality",
           f"{FD}#memory-backing"),
    Choice("memory.source", None,
           "default anonymous memory: nothing outside QEMU may map guest RAM", f"{FD}#memory-backing"),
    Choice("memory.access", None, "private memory: nothing is shared with host processes", f"{FD}#memory-backing"),
    Choice("memory.balloon", "none",
           "no balloon: QEMU disables RAM discard for SEV/SEV-ES because their memory is pinned, so a balloon "
           "could not return anything, and its statistics would tell the host about the guest", QEMU_SEV),
)

# -- disk ---------------------------------------------------------------------------------
DISK = (
    Choice("disk.format", "qcow2", "qcow2, which carries the LUKS encryption (same as upstream)", QEMU_IMG),
    Choice("disk.encryption", True,
           "LUKS in qcow2: the image is unreadable at rest, in backups and on a stolen disk (same as "
           "upstream). QEMU holds the key, so against a hostile host also encrypt inside the guest with a "
           "key released after attestation", "https://libvirt.org/formatstorageencryption.html"),
    Choice("disk.size", "20GiB", "20 GiB, thin: qcow2 allocates on write", QEMU_IMG),
    Choice("disk.cache", "none",
           "O_DIRECT: data-safe once the guest flushes, without upstream's writethrough cost of a host "
           "flush after every write; the host page cache would only hold ciphertext anyway",
           f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.bus", "virtio", "virtio-blk with iommu='on', as SEV requires (same as upstream)", KB_SEV),
    Choice("disk.discard", "ignore",
           "ignore guest TRIM: passing it down would show the host which blocks the guest does not use, "
           "the leak cryptsetup warns about for discards on encrypted disks",
           "https://man7.org/linux/man-pages/man8/cryptsetup.8.html (--allow-discards)"),
    Choice("disk.preallocation", "metadata",
           "qcow2 metadata written at creation, data sparse (same as upstream)", QEMU_IMG),
    Choice("disk.cluster_size", "64KiB",
           "QEMU's default cluster size; LUKS encrypts per sector, so larger clusters buy nothing (upstream: "
           "1 MiB)", "https://github.com/qemu/qemu/blob/master/docs/qcow2-cache.txt"),
    Choice("disk.lazy_refcounts", False,
           "keep refcounts crash-consistent (upstream asked for lazy refcounts but never applied them)", QEMU_IMG),
    Choice("disk.compression", None,
           "no compression type: qcow2 cannot store compressed clusters in an encrypted image (upstream: zlib)",
           QEMU_IMG),
)

# -- network ------------------------------------------------------------------------------
NETWORK = (
    Choice("network.model", "virtio",
           "virtio-net with iommu='on', the NIC libvirt's SEV kbase describes; upstream's emulated e1000 is "
           "slower and needs the same bounce buffers", KB_SEV),
    Choice("network.queues", 1, "one queue pair for a 2-vCPU service VM", f"{FD}#setting-nic-driver-specific-options"),
)

# -- display and input --------------------------------------------------------------------
DISPLAY = (
    Choice("graphics.type", "none",
           "headless: the host sees every pixel of a display, so a confidential VM has none; use SSH "
           "(upstream: VNC with keymap 'fr')", f"{FD}#graphical-framebuffers"),
    Choice("video.model", "none", "no video device, and one device driver fewer exposed to the host",
           f"{FD}#video-devices"),
    Choice("input.tablet", False, "headless: without a display there is no pointer to emulate", f"{FD}#input-devices"),
    Choice("input.keyboard", None,
           "q35's built-in PS/2 keyboard only, as upstream's ps2 choice", f"{FD}#input-devices"),
    Choice("input.mouse", None, "headless: no mouse (same as upstream)", f"{FD}#input-devices"),
    Choice("sound.model", "none", "no sound card (same as upstream)", f"{FD}#sound-devices"),
    Choice("usb.controller", "none", "no USB: fewer emulated devices the host controls (same as upstream)",
           f"{FD}#usb-controller"),
    Choice("channel.vdagent", False, "the vdagent serves a SPICE display, which this VM does not have",
           f"{FD}#channel"),
)

# -- devices ------------------------------------------------------------------------------
DEVICES = (
    Choice("devices.iommu", True,
           "iommu='on' on every virtio device: the guest then does DMA through unencrypted bounce buffers, "
           "the only memory the host can read (libvirt SEV kbase)", KB_SEV),
    Choice("tpm.model", "none",
           "no vTPM: swtpm runs on the host, which can read its state and anything sealed to it, so it is no "
           "root of trust against a hostile host (upstream added one only when the host had /dev/tpm0); use "
           "SEV attestation instead", f"{FD}#tpm-device"),
    Choice("rng.model", "none",
           "no virtio-rng: its bytes come from the host, which 'may actively work against guests' and 'can "
           "modify or observe nearly all inputs to guests'; Linux therefore seeds confidential guests from the "
           "CPU's RDRAND (commit 'x86/coco: Require seeding RNG with RDRAND on CoCo systems'). Upstream added "
           "virtio-rng; libvirt's SEV examples keep one with iommu='on', which also works", CC_RNG),
    Choice("channel.guest_agent", False,
           "no guest agent: its guest-exec and guest-file-* commands let the host run programs and read files "
           "in the guest (upstream added it)", "https://www.qemu.org/docs/master/interop/qemu-ga-ref.html"),
    Choice("console.serial", True,
           "a serial console for boot and rescue; the host sees it too, so do not type secrets there",
           f"{FD}#consoles-serial-parallel-channel-devices"),
    Choice("watchdog.model", "none", "no watchdog: its reset is host-controlled anyway (same as upstream)",
           f"{FD}#watchdog-device"),
)

# -- events and power management ----------------------------------------------------------
EVENTS = (
    Choice("vm.on_poweroff", "destroy", "shutdown stops the VM (same as upstream)", f"{FD}#events-configuration"),
    Choice("vm.on_reboot", "destroy",
           "a reboot stops the VM: an SEV-ES guest's measured register state cannot be reset (QEMU terminates "
           "it on reboot), and every launch should be measured and attested again (same as upstream)",
           "https://gitlab.com/qemu-project/qemu/-/commits/master?search=Don%27t+allow+a+system+reset+under+an+"
           "SEV-ES+guest"),
    Choice("vm.on_crash", "destroy", "a crashed guest stays off until someone relaunches and attests it "
           "(same as upstream)", f"{FD}#events-configuration"),
    Choice("pm.suspend_to_mem", False, "no suspend: the encrypted state cannot be suspended (same as upstream)",
           f"{VIRTINST}/domain/pm.py"),
    Choice("pm.suspend_to_disk", False,
           "no hibernation: the encrypted state cannot be written out either (same as upstream)",
           f"{VIRTINST}/domain/pm.py"),
)

# -- features and clock -------------------------------------------------------------------
FEATURES = (
    Choice("features.smm", False,
           "no SMM: KVM does not support SMM for SEV-ES guests, and the SEV firmware builds omit it",
           "https://github.com/torvalds/linux/blob/master/arch/x86/kvm/svm/svm.c (svm_has_emulated_msr: "
           "'SEV-ES guests do not support SMM')"),
    Choice("features.hyperv", False, "no Hyper-V enlightenments: they only help Windows guests",
           f"{FD}#hypervisor-features"),
    Choice("clock.offset", "utc", "the RTC in UTC (same as upstream)", f"{FD}#time-keeping"),
    Choice("clock.rtc_tickpolicy", "catchup", "missed RTC ticks caught up (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
    Choice("clock.pit_tickpolicy", "delay", "missed PIT ticks delivered late (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
    Choice("clock.hpet", False, "no HPET: costly to emulate, the guest has better clocks (same as upstream)",
           f"{VIRTINST}/domain/clock.py"),
)

# -- firmware -----------------------------------------------------------------------------
FIRMWARE = (
    Choice("firmware.type", "efi",
           "UEFI by libvirt's autoselection, which only takes a firmware whose descriptor has amd-sev (and "
           "amd-sev-es for the SEV-ES policy, amd-sev-snp for SEV-SNP); virtscenario replays that choice on the "
           "host's descriptors when it can read them (--host-root, a local --connect). Upstream scanned "
           "descriptors and crashed its launcher when none matched",
           "https://gitlab.com/libvirt/libvirt/-/blob/v9.0.0/src/qemu/qemu_firmware.c (qemuFirmwareMatchDomain)"),
    Choice("firmware.secure_boot", False,
           "the SEV firmware builds (OVMF AmdSev) have no secure boot: boot integrity comes from the launch "
           "measurement; libvirt's own SEV-SNP test domain asks for secure-boot='no'", KB_SEV),
    Choice("firmware.enrolled_keys", False, "no Microsoft keys, as libvirt's SEV-SNP test domain", KB_SEV),
    Choice("firmware.stateless", True,
           "stateless firmware, no NVRAM: QEMU's SEV guide says 'you must build a stateless firmware file which "
           "doesn't use an NVRAM store, because the NVRAM area is not measured'. Emitted only when a stateless "
           "descriptor offers the launch type (Debian 12 has none: the VM then keeps an NVRAM, with a note)",
           "https://www.qemu.org/docs/master/system/i386/amd-memory-encryption.html"),
)

# -- launch security ----------------------------------------------------------------------
LAUNCH = (
    Choice("launch_security.type", "auto",
           "the strongest type the host offers, read from domain capabilities when connected: SEV-SNP, then "
           "SEV-ES, then SEV on AMD, TDX on Intel; none of them: one clear refusal. SEV-ES only when a firmware "
           "descriptor offers amd-sev-es (libvirt needs one for policy bit 2; Debian 12's OVMF has none), else "
           "SEV with a note; offline or remote, where the descriptors cannot be read, SEV (upstream: SEV only, "
           "and only when run as root on the host)", KB_SEV),
    Choice("launch_security.policy", None,
           "the policy libvirt documents for the chosen type: 0x0003 SEV (bit 0: no debugging, bit 1: no key "
           "sharing), 0x0007 SEV-ES (plus bit 2: SEV-ES required), 0x30000 SEV-SNP (SMT allowed, no debug), "
           "QEMU's 0x10000000 for TDX. Upstream's 0x33/0x37 also set bits 4 and 5, which only restrict sending "
           "the guest to SEV-capable platforms of the same domain; neither sets bit 3, which forbids sending it "
           "anywhere", f"{FD}#launch-security"),
)

# -- host directory share -----------------------------------------------------------------
SHARE = (
    Choice("filesystem.share", False,
           "no host share: the host cannot read encrypted memory, and a share is a channel the host controls "
           "(same as upstream)", KB_SEV),
)

# -- host requirements (the host tuning plugin turns them into a plan) --------------------
HOST = (
    Choice("host.sev", True,
           "SEV enabled in kvm_amd (options kvm_amd sev=1 sev_es=1): 'the kvm_amd.sev parameter actually "
           "enables SEV in the kvm module'. The kbase's other parameter, mem_encrypt=on, is SME: it encrypts "
           "the host's own memory against physical attacks and is optional for SEV guests. Upstream wrote both "
           "into one malformed modprobe line", KB_SEV),
    Choice("host.ksm", "off",
           "KSM deduplication is a cross-VM side channel, and SEV pages never merge (same as upstream)",
           f"{KERNEL_MM}/ksm.html"),
    Choice("host.ksm_merge_across_nodes", False,
           "if another scenario turns KSM on, keep merges NUMA-local", f"{KERNEL_MM}/ksm.html"),
    Choice("host.thp", "madvise",
           "QEMU madvises guest RAM for transparent hugepages; 'madvise' spares host processes THP stalls "
           "(upstream: always)", f"{KERNEL_MM}/transhuge.html"),
    Choice("host.swappiness", 10,
           "pinned SEV memory is never swapped; 10, as tuned's virtual-host, for the rest (upstream's 0 can "
           "make the kernel OOM-kill instead of swap)", f"{TUNED}/throughput-performance/tuned.conf"),
    Choice("host.io_scheduler", None,
           "unset: the host's IO schedulers are left alone, since confidentiality gives no reason to change "
           "them and the kernel's defaults suit its devices (none for multi-queue NVMe); upstream chose bfq "
           "without a reason", "https://docs.kernel.org/block/bfq-iosched.html"),
)

SCENARIO = Scenario(
    name="securevm",
    summary="Confidential VM: strongest AMD SEV/Intel TDX the host offers, encrypted disk, headless, no host "
            "channels into the guest",
    version="1.0",
    description="A VM whose memory the host cannot read, with as few ways in for the host as possible.",
    settings=(*SIZE, *CPU, *MEMORY, *DISK, *NETWORK, *DISPLAY, *DEVICES, *EVENTS, *FEATURES, *FIRMWARE,
              *LAUNCH, *SHARE),
    host=HOST,
)
