"""The testing scenario: every decision, its reason and its source, in one place.

A disposable VM to try an OS image, an installer or a kernel: it starts from a base image
through a qcow2 overlay (``--disk path=BASE,overlay=on``) or boots a kernel directly
(``--boot kernel=...``), is provisioned by cloud-init (``--cloud-init ssh-key=...``), keeps
what the guest printed (``<store>/<name>/console.log``) and a crashed guest for inspection,
and touches nothing on the host: no host share, no host tuning.

Sections: size, CPU, memory, disk, network, display, devices, events and power, features
and clock, firmware, host directory share. Upstream (aginies/virt-scenario) listed "Testing
an OS" in its plan and never wrote it, so there is no upstream value to compare with.
"""

from __future__ import annotations

from virtscenario.api import Choice, Scenario

FD = "https://libvirt.org/formatdomain.html"
QEMU_IMG = "https://www.qemu.org/docs/master/tools/qemu-img.html"
QEMU_BLOCK = "https://www.qemu.org/docs/master/system/qemu-block-drivers.html"
VIRTINST = "https://github.com/virt-manager/virt-manager/blob/2450354f39/virtinst"
OSINFO_LINUX = "https://gitlab.com/libosinfo/osinfo-db/-/blob/main/data/os/ubuntu.com/ubuntu-22.04.xml.in"
VIRTLOGD = "https://libvirt.org/manpages/virtlogd.html"
PVPANIC = "https://www.qemu.org/docs/master/specs/pvpanic.html"

# -- size ---------------------------------------------------------------------------------
SIZE = (
    Choice("vm.vcpus", 2,
           "2 vCPUs: the smallest SMP guest, so an OS or kernel under test meets real concurrency (IPIs, "
           "per-CPU data) while the host keeps its CPUs; libosinfo's generic Linux minimum is 1", OSINFO_LINUX),
    Choice("vm.memory", "2GiB",
           "2 GiB: libosinfo's minimum for its generic Linux guest (linux2022), enough for an installer; "
           "--os warns when the OS under test needs more", OSINFO_LINUX),
)

# -- CPU ----------------------------------------------------------------------------------
CPU = (
    Choice("cpu.mode", "host-passthrough",
           "the OS under test sees the CPU it will run on, so a kernel's feature detection (AVX-512, "
           "x86-64-v3) is exercised for real (under --virt-type qemu the core adapts it to 'maximum')",
           f"{FD}#cpu-model-and-topology"),
    Choice("cpu.topology", "cores",
           "one socket of N cores, as virt-install writes: what a laptop or a small server has",
           f"{VIRTINST}/domain/cpu.py (set_defaults_from_vcpus)"),
    Choice("cpu.pinning", "none",
           "a disposable VM must not reserve host CPUs: the host scheduler places it", f"{FD}#cpu-tuning"),
)

# -- memory -------------------------------------------------------------------------------
MEMORY = (
    Choice("memory.hugepages", False,
           "no static hugepages: they would be reserved on the host for a VM that lives minutes",
           f"{FD}#memory-backing"),
    Choice("memory.balloon", "virtio",
           "the host can take memory back from an idle test VM (virsh setmem) and read the guest's memory "
           "statistics (virsh dommemstat)", f"{FD}#memory-balloon-device"),
)

# -- disk ---------------------------------------------------------------------------------
DISK = (
    Choice("disk.format", "qcow2",
           "qcow2: thin, and the only format that can be an overlay on a base image (--disk "
           "path=BASE,overlay=on), so the downloaded image is never written and can be reused", QEMU_IMG),
    Choice("disk.size", "20GiB",
           "20 GiB when the VM gets a fresh disk (an installer's target): twice libosinfo's 10 GiB generic Linux "
           "minimum; qcow2 only takes what the guest writes", OSINFO_LINUX),
    Choice("disk.cache", "unsafe",
           "cache=unsafe ignores the guest's flushes: installers and package managers flush constantly and "
           "run several times faster; a host crash can only lose this VM's overlay, which is thrown away anyway "
           "(the base image is opened read-only)", f"{QEMU_BLOCK}#cmdoption-disk-cache"),
    Choice("disk.bus", "virtio",
           "virtio-blk: built into every current Linux kernel and initramfs, so a cloud image or a kernel "
           "under test finds its disk without extra drivers", f"{FD}#hard-drives-floppy-disks-cdroms"),
    Choice("disk.discard", "unmap",
           "the guest's TRIM frees clusters of the overlay, so a VM that installs and removes packages does "
           "not keep growing its overlay; virt-install sets it for new sparse images",
           f"{VIRTINST}/devices/disk.py (set_defaults)"),
    Choice("disk.encryption", False,
           "no encryption: the data of a disposable VM is test data, and a base image cannot be encrypted "
           "under an overlay without its secret", "https://libvirt.org/formatstorageencryption.html"),
)

# -- network ------------------------------------------------------------------------------
NETWORK = (
    Choice("network.model", "virtio",
           "virtio-net: built into every current Linux, the cheapest NIC to emulate", f"{FD}#network-interfaces"),
    Choice("network.queues", 1,
           "one queue pair: a test VM's traffic (package downloads, SSH) needs no more",
           f"{FD}#setting-nic-driver-specific-options"),
)

# -- display ------------------------------------------------------------------------------
DISPLAY = (
    Choice("graphics.type", "vnc",
           "a VNC display on the host's loopback for installers and boot menus that only draw on screen; every "
           "QEMU build has VNC (SPICE may be compiled out), and cloud images use the serial console anyway",
           f"{FD}#graphical-framebuffers"),
    Choice("graphics.listen", "127.0.0.1",
           "loopback only: reach it through an SSH tunnel, nobody on the network sees a test VM's screen",
           f"{FD}#graphical-framebuffers"),
    Choice("video.model", "virtio",
           "virtio-gpu: what virt-install picks for a guest that supports it; every current Linux does",
           f"{VIRTINST}/devices/video.py (default_model)"),
    Choice("sound.model", "none", "no sound card: nothing to listen to in a test VM", f"{FD}#sound-devices"),
    Choice("usb.controller", "qemu-xhci",
           "a USB 3 controller for the tablet, so the pointer follows the VNC viewer without a grab",
           f"{FD}#usb-controller"),
    Choice("input.tablet", True, "USB tablet: absolute pointer in the VNC viewer", f"{FD}#input-devices"),
)

# -- devices ------------------------------------------------------------------------------
DEVICES = (
    Choice("console.serial", True,
           "a serial console: cloud images and kernels booted with console=ttyS0 print their boot there, and "
           "'virsh console' reaches the guest when its network does not come up", f"{FD}#consoles-serial-parallel-"
           "channel-devices"),
    Choice("console.log", True,
           "everything the guest prints on its serial console is kept in <store>/<name>/console.log (appended "
           "across boots, rotated by virtlogd), so a boot that fails, a panic or an installer error can be read "
           "after the VM stopped", f"{FD}#consoles-serial-parallel-channel-devices"),
    Choice("panic.model", "isa",
           "a pvpanic device: the guest kernel reports its panic to QEMU, which is what lets vm.on_crash keep "
           "the crashed VM (Linux's pvpanic-mmio driver binds to its ACPI id QEMU0001 once loaded; "
           "distributions load it from the device's modalias, and verify checks that it is bound)", PVPANIC),
    Choice("watchdog.model", "i6300esb",
           "an emulated watchdog the OS under test can arm (systemd RuntimeWatchdogSec=, a kernel watchdog "
           "test): a guest that hangs without crashing is reset instead of sitting there", f"{FD}#watchdog-device"),
    Choice("watchdog.action", "reset",
           "reset: a hung test VM reboots, and its console log shows what led to the hang",
           f"{FD}#watchdog-device"),
    Choice("channel.guest_agent", True,
           "qemu-guest-agent: 'virtscenario verify' compares what the guest sees with what was decided, and "
           "'virsh domifaddr --source agent' finds its address", f"{FD}#channel"),
    Choice("rng.model", "virtio",
           "virtio-rng: a freshly booted cloud image generates its SSH host keys at once instead of waiting for "
           "entropy", f"{FD}#random-number-generator-device"),
    Choice("tpm.model", "none",
           "no TPM by default: a test VM's measured boot is rarely what is tested; --os win11 adds one, and "
           "--set tpm.model=tpm-crb does for anything else", f"{FD}#tpm-device"),
)

# -- events and power management ----------------------------------------------------------
EVENTS = (
    Choice("vm.on_poweroff", "destroy", "shutting the guest down stops the VM", f"{FD}#events-configuration"),
    Choice("vm.on_reboot", "restart", "a reboot (an installer's last step, a kernel update) reboots the VM",
           f"{FD}#events-configuration"),
    Choice("vm.on_crash", "preserve",
           "a crashed guest is kept, paused with its memory, for inspection: 'virsh dump --memory-only' for the "
           "crash tool, 'virsh screenshot', the console log; destroy or restart would lose that state",
           f"{FD}#events-configuration"),
    Choice("pm.suspend_to_mem", False,
           "off, as virt-install writes on x86: an ACPI shutdown then really powers the test VM off",
           f"{VIRTINST}/domain/pm.py"),
    Choice("pm.suspend_to_disk", False, "off, as virt-install writes on x86", f"{VIRTINST}/domain/pm.py"),
)

# -- features and clock -------------------------------------------------------------------
FEATURES = (
    Choice("features.hyperv", False,
           "off: the Hyper-V enlightenments are for Windows guests, and --os windows turns them on",
           f"{FD}#hypervisor-features"),
    Choice("clock.offset", "utc", "the RTC in UTC, as Linux expects; --os windows switches it to localtime",
           f"{FD}#time-keeping"),
)

# -- firmware -----------------------------------------------------------------------------
FIRMWARE = (
    Choice("firmware.type", "efi",
           "UEFI, what current OS images and installers are built for (cloud images boot both ways); "
           "--boot bios tries an old one on SeaBIOS", f"{FD}#bios-bootloader"),
    Choice("firmware.secure_boot", False,
           "no secure boot: a kernel under test is usually self-built and unsigned, and secure boot would "
           "refuse it or lock it down; --os win11 turns it on for Windows", f"{FD}#bios-bootloader"),
    Choice("firmware.stateless", False, "boot entries an installer writes persist in the NVRAM",
           f"{FD}#bios-bootloader"),
)

# -- host directory share -----------------------------------------------------------------
SHARE = (
    Choice("filesystem.share", False,
           "no host share: what runs in a test VM is untrusted by definition, so no host directory is exposed "
           "to it; copy files in over SSH", "https://libvirt.org/kbase/virtiofs.html"),
)

SCENARIO = Scenario(
    name="testing",
    summary="Disposable VM to try an OS image, an installer or a kernel: overlay on a base image, direct kernel "
            "boot, cloud-init, console log, crashes kept",
    version="1.0",
    description="A throw-away guest: the base image is never written, everything the guest printed is kept, a "
                "crash is kept for inspection, and the host is left as it was (no share, no host tuning).",
    settings=(*SIZE, *CPU, *MEMORY, *DISK, *NETWORK, *DISPLAY, *DEVICES, *EVENTS, *FEATURES, *FIRMWARE, *SHARE),
    host=(),
)
