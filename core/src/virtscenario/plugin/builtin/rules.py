"""The core's semantic rules: what the RelaxNG schema cannot see, each with its reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from virtscenario import hookimpl
from virtscenario.types import DomainRule

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.domain.model import Domain
    from virtscenario.settings.types import Settings

KB_VIRTIOFS = "https://libvirt.org/kbase/virtiofs.html"
KB_SEV = "https://libvirt.org/kbase/launch_security_sev.html"
FORMATDOMAIN = "https://libvirt.org/formatdomain.html"
#: libvirt's QEMU migration checks: qemuMigrationSrcIsAllowedHostdev refuses PCI, mdev and SCSI host
#: devices and lets USB ones "migrate" (re-attached by vendor:product on the destination);
#: qemuMigrationSrcIsAllowed refuses virtiofs.
QEMU_MIGRATION = "https://gitlab.com/libvirt/libvirt/-/blob/master/src/qemu/qemu_migration.c"


def _virtiofs_shared(dom: Domain, _s: Settings) -> Iterator[str]:
    for fs in dom.devices.filesystems:
        if fs.driver == "virtiofs" and dom.memory_backing.access != "shared":
            yield f"filesystem {fs.target_dir!r} uses virtiofs but memory access is not shared"


def _launch_security(dom: Domain, _s: Settings) -> Iterator[str]:
    ls = dom.launch_security
    if ls is None:
        return
    if not (dom.os.machine or "").startswith(("q35", "pc-q35")):
        yield f"{ls.type} needs a q35 machine, not {dom.os.machine!r}"
    if dom.os.firmware != "efi" and not dom.os.loader:
        yield f"{ls.type} needs UEFI firmware"
    if ls.type in ("sev", "sev-snp"):
        for dev in dom.virtio_devices():
            if getattr(dev, "iommu", None) is not True:
                yield f"{ls.type}: virtio device {type(dev).__name__.lower()} lacks iommu='on'"
    if ls.type == "sev" and not dom.memory_backing.locked and not (dom.memtune and dom.memtune.hard_limit):
        yield "sev pins guest memory: set a memtune hard_limit (memory.hard_limit_overhead) or memory.locked"
    if dom.devices.filesystems:
        yield f"{ls.type} guests must not share host directories (the host cannot read encrypted memory)"
    if ls.type == "tdx" and dom.cpu.mode != "host-passthrough":
        yield "tdx needs cpu mode host-passthrough (QEMU rejects named models)"


def _iothreads_used(dom: Domain, _s: Settings) -> Iterator[str]:
    used = {d.iothread for d in dom.devices.disks if d.iothread}
    unused = [i for i in range(1, dom.iothreads + 1) if i not in used]
    if unused and any(d.bus == "virtio" and d.device == "disk" for d in dom.devices.disks):
        yield f"iothreads {unused} are declared but no disk uses them"


def _hugepage_multiple(dom: Domain, _s: Settings) -> Iterator[str]:
    for page in dom.memory_backing.hugepages:
        if dom.memory % (page.size_kib * 1024):
            yield f"memory {dom.memory // 1024} KiB is not a multiple of the {page.size_kib} KiB hugepage size"


def _locked_limit(dom: Domain, _s: Settings) -> Iterator[str]:
    if dom.memory_backing.locked and not (dom.memtune and dom.memtune.hard_limit):
        yield "memory is locked without a memtune hard_limit: QEMU may lock unbounded host memory"


def _migratable(dom: Domain, settings: Settings) -> Iterator[str]:
    if not settings.value("vm.migratable"):
        return
    for dev in dom.devices.hostdevs:
        if dev.type == "usb":
            yield f"host device {dev.describe()} is tied to this host: libvirt migrates it only where the " \
                  f"destination has a USB {dev.vendor}:{dev.product} too"
        else:
            yield f"host device {dev.describe()} is tied to this host: libvirt refuses to migrate a domain with " \
                  f"<hostdev type='{dev.type}'>"
    if dom.devices.filesystems:
        yield "virtiofs shares do not migrate (nor save or snapshot with memory)"
    if dom.launch_security:
        yield f"{dom.launch_security.type} guests cannot live-migrate"
    # No disk cache check: libvirt accepts any cache mode on shared storage when QEMU can drop the
    # page cache (qemuMigrationSrcIsSafe, QEMU_CAPS_MIGRATION_FILE_DROP_CACHE, QEMU >= 4.2).
    if dom.cpu.mode == "host-passthrough":
        yield "cpu mode host-passthrough is only safe between identical hosts; use host-model or custom"
    if dom.cputune.vcpupin or dom.numatune:
        yield "vCPU or NUMA pinning refers to this host's CPUs"
    if dom.memory_backing.locked or dom.memory_backing.hugepages:
        yield "hugepages or locked memory must be reserved on every destination host"


# -- host devices (issue 15) -------------------------------------------------------------------
KERNEL_SEV_DMA = "https://docs.kernel.org/arch/x86/amd-memory-encryption.html"
KERNEL_TDX_DMA = "https://docs.kernel.org/arch/x86/tdx.html#shared-memory-conversions"


def _confidential_hostdevs(dom: Domain, _s: Settings) -> Iterator[str]:
    if dom.launch_security is None:
        return
    for dev in dom.devices.hostdevs:
        yield f"{dom.launch_security.type} guests cannot use host devices ({dev.describe()}): the device's DMA " \
              "reaches only memory the guest shares with the host"


def _usb_hostdev_controller(dom: Domain, _s: Settings) -> Iterator[str]:
    if any(c.type == "usb" and c.model == "none" for c in dom.devices.controllers):
        for dev in dom.devices.hostdevs:
            if dev.type == "usb":
                yield f"host device {dev.describe()} needs a USB controller, but the USB controller is model none"


def _spice_gl(dom: Domain, _s: Settings) -> Iterator[str]:
    for g in dom.devices.graphics:
        if g.type == "spice" and g.gl and g.listen != "none":
            yield "SPICE OpenGL is local-only: it needs graphics.listen=none"


def _tpm_passthrough(dom: Domain, _s: Settings) -> Iterable[str]:
    for tpm in dom.devices.tpms:
        if tpm.backend == "passthrough":
            yield "TPM passthrough gives one guest the host's TPM: the host loses it and the VM cannot migrate"


def _dedicated_hint(dom: Domain, _s: Settings) -> Iterator[str]:
    if dom.features.kvm_hint_dedicated and len(dom.cputune.vcpupin) < dom.vcpus:
        yield "kvm hint-dedicated is on but the vCPUs are not all pinned: the guest would skip " \
              "spinning for CPUs that the host actually shares"


RULES = (
    DomainRule("virtiofs-needs-shared-memory",
               "virtiofsd maps guest memory, so virtiofs needs <memoryBacking><access mode='shared'/> "
               "(memfd, file or hugepages source); libvirt refuses it otherwise", KB_VIRTIOFS, _virtiofs_shared),
    DomainRule("launch-security-requirements",
               "SEV/SEV-SNP/TDX guests need q35 + UEFI; every virtio device must use the IOMMU platform "
               "(iommu='on') to reach unencrypted bounce buffers; SEV pins memory, so it needs a limit; "
               "nothing may be shared with the host", KB_SEV, _launch_security),
    DomainRule("iothreads-used", "an iothread no disk uses is a wasted host thread: bind disks to them",
               FORMATDOMAIN + "#iothreads-allocation", _iothreads_used),
    DomainRule("hugepage-multiple", "guest memory must be a whole number of hugepages",
               FORMATDOMAIN + "#memory-backing", _hugepage_multiple),
    DomainRule("locked-memory-limit", "libvirt docs: with <locked/> it is highly recommended to set a "
               "hard_limit", FORMATDOMAIN + "#memory-backing", _locked_limit, severity="warning"),
    DomainRule("migratable-vm", "a VM meant to live-migrate (vm.migratable) must not depend on this host: "
               "libvirt's migration checks (qemuMigrationSrcIsAllowedHostdev, qemuMigrationSrcIsAllowed) refuse "
               "PCI, mdev and SCSI host devices and virtiofs, and move a USB host device only by finding the same "
               "vendor:product on the destination; host CPUs, pinning and hugepages must exist there too (CPU "
               f"modes: {FORMATDOMAIN}#cpu-model-and-topology)", QEMU_MIGRATION, _migratable),
    DomainRule("confidential-guest-host-devices",
               "a confidential guest's private memory is encrypted (SEV) or inaccessible (TDX) to devices: the "
               "kernel docs say all DMA of an SEV guest must use shared memory and TDX guests bounce DMA through "
               "shared SWIOTLB buffers, so a passed-through device and its data sit outside the protected "
               f"boundary, unattested (also {KERNEL_TDX_DMA})", KERNEL_SEV_DMA, _confidential_hostdevs),
    DomainRule("usb-hostdev-needs-controller",
               "a USB host device is attached to the guest's USB bus; <controller type='usb' model='none'> "
               "disables USB, and libvirt then refuses the device ('USB is disabled')",
               FORMATDOMAIN + "#usb-controller", _usb_hostdev_controller),
    DomainRule("spice-gl-local", "QEMU: SPICE GL support is local-only and incompatible with a TCP port",
               FORMATDOMAIN + "#graphical-framebuffers", _spice_gl),
    DomainRule("dedicated-hint-needs-pinning", "hint-dedicated tells the guest each vCPU has a host CPU of its "
               "own, which is only true with 1:1 pinning", FORMATDOMAIN + "#hypervisor-features", _dedicated_hint,
               severity="warning"),
    DomainRule("tpm-passthrough", "an emulated TPM (swtpm) is per-VM and migratable; passthrough is neither",
               FORMATDOMAIN + "#tpm-device", _tpm_passthrough, severity="warning"),
)


@hookimpl
def domain_rules() -> Iterable[DomainRule]:
    return RULES
