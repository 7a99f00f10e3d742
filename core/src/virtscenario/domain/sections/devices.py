"""The other devices: controllers, console, channels, TPM, watchdog, RNG, and the virtio IOMMU flag.

``<devices>`` ``<controller>``, ``<console>``, ``<channel>``, ``<tpm>``, ``<watchdog>`` and
``<rng>``; ``devices.iommu`` puts ``<driver iommu='on'/>`` on every virtio device.
``devices.pcie_root_ports`` declares q35's root ports, so that some stay free for hotplug.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

TPM_DOC = FD + "#tpm-device"
#: virt-install adds 14 pcie-root-ports to every new q35 guest (Guest.num_pcie_root_ports).
VIRTINST_ROOT_PORTS = ("https://github.com/virt-manager/virt-manager/blob/v5.0.0/virtinst/guest.py "
                       "(num_pcie_root_ports, add_q35_pcie_controllers)")
WD_DOC = FD + "#watchdog-device"

SPECS = (
    SettingSpec("usb.controller", "choice", "qemu-xhci", "USB controller", ("qemu-xhci", "none"),
                rationale="qemu-xhci: a USB 3 controller with 15 ports, which virt-install also adds to q35 guests",
                reference=FD + "#usb-controller"),
    SettingSpec("watchdog.model", "choice", "none", "Watchdog device", ("i6300esb", "none"),
                rationale="none: a watchdog only helps a guest that runs a watchdog daemon",
                reference=WD_DOC),
    SettingSpec("watchdog.action", "choice", "reset", "Watchdog action",
                ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi"),
                rationale="reset: a hung guest is restarted, libvirt's default action",
                reference=WD_DOC, applies_when=("watchdog.model!=none",)),
    SettingSpec("tpm.model", "choice", "none", "TPM device", ("tpm-crb", "tpm-tis", "none"),
                rationale="none: a TPM is for guests that measure their boot or store keys (Windows 11, "
                          "BitLocker, systemd-cryptenroll)",
                reference=TPM_DOC),
    SettingSpec("tpm.backend", "choice", "emulator", "TPM backend: swtpm emulator or host passthrough",
                ("emulator", "passthrough"),
                rationale="emulator: each VM gets its own swtpm TPM, whose state libvirt keeps per VM; "
                          "passthrough hands the host's one TPM to one guest",
                reference=TPM_DOC, applies_when=("tpm.model!=none",)),
    SettingSpec("tpm.version", "choice", "2.0", "Emulated TPM version", ("2.0", "1.2"),
                rationale="2.0: what current OSes require (TPM 1.2 only works with tpm-tis)",
                reference=TPM_DOC, applies_when=("tpm.model!=none",)),
    SettingSpec("rng.model", "choice", "virtio", "Random number generator", ("virtio", "none"),
                rationale="a virtio-rng fed by /dev/urandom gives the guest entropy at boot without draining "
                          "the host",
                reference=FD + "#random-number-generator-device"),
    SettingSpec("channel.guest_agent", "bool", True, "qemu-guest-agent channel (clean shutdown, fsfreeze, IP report)",
                rationale="lets libvirt shut down, freeze filesystems and read addresses through the agent",
                reference=FD + "#channel"),
    SettingSpec("channel.vdagent", "bool", False, "SPICE vdagent channel (clipboard, resolution)",
                rationale="off: the vdagent channel serves a SPICE display; desktop scenarios turn it on",
                reference=FD + "#channel", applies_when=("graphics.type=spice",)),
    SettingSpec("console.serial", "bool", True, "Serial console on a pty (virsh console)",
                rationale="a serial console reaches the guest when its network or display does not work",
                reference=FD + "#consoles-serial-parallel-channel-devices"),
    SettingSpec("devices.pcie_root_ports", "int", 14,
                "pcie-root-port controllers of a q35 guest (its devices take some; the rest stay free for "
                "hotplug)", minimum=0, maximum=200,
                rationale="14, as virt-install adds to every new q35 guest: a PCIe device can only be hot-plugged "
                          "into a free root port, and libvirt alone adds just one spare "
                          "(qemuDomainAssignPCIAddresses); 0 leaves the ports to libvirt",
                reference=VIRTINST_ROOT_PORTS),
    # -- console log and panic device (the testing scenario keeps what a crashing guest printed)
    SettingSpec("console.log", "bool", False, "Log the serial console to <store>/<name>/console.log",
                rationale="off: the console is read live with 'virsh console'; a log file grows with every "
                          "boot (virtlogd rotates it)",
                reference=FD + "#consoles-serial-parallel-channel-devices"),
    SettingSpec("panic.model", "choice", "none", "Guest panic notifier (pvpanic): lets vm.on_crash see a crash",
                ("isa", "none"),
                rationale="none: without a panic device QEMU never learns that the guest crashed, and vm.on_crash "
                          "is not applied; scenarios that act on crashes add one",
                reference=FD + "#panic-device"),
    SettingSpec("devices.iommu", "bool", False, "iommu='on' on every virtio device (needed by SEV/TDX guests)",
                rationale="off: the virtio IOMMU platform is only needed when the guest's memory is encrypted",
                reference=FD + "#virtio-related-options", applies_when=("launch_security.type!=none",)),
)


@record
class Controller(Record):
    """``<controller type=... model=... index=...>``: USB, PCI, SCSI, virtio-serial or SATA controller."""

    type: str  # usb|pci|scsi|virtio-serial|sata
    model: Optional[str] = None
    index: Optional[int] = None
    ports: Optional[int] = None
    iommu: Optional[bool] = None


@record
class Console(Record):
    """``<console type=...><target type=...>``: the serial (or virtio) console ``virsh console`` attaches to."""

    type: str = "pty"
    target_type: str = "serial"  # serial|virtio
    log_file: Optional[str] = None  # everything the guest prints, kept by virtlogd


@record
class Channel(Record):
    """``<channel type=...><target type=... name=...>``: a host-guest channel (guest agent, SPICE agent)."""

    type: str  # unix|spicevmc|qemu-vdagent
    target_type: str = "virtio"
    target_name: str = "org.qemu.guest_agent.0"


@record
class Tpm(Record):
    """``<tpm model=...><backend type=...>``: an emulated (swtpm) or passed-through TPM."""

    model: str = "tpm-crb"  # tpm-crb|tpm-tis
    backend: str = "emulator"  # emulator|passthrough
    version: Optional[str] = "2.0"
    device_path: Optional[str] = None  # passthrough only


@record
class Rng(Record):
    """``<rng model=...><backend model='random'>``: a virtio RNG fed from ``backend`` on the host, optionally rate-
    limited.
    """

    model: str = "virtio"
    backend: str = "/dev/urandom"
    rate_bytes: Optional[int] = None
    rate_period_ms: Optional[int] = None
    iommu: Optional[bool] = None


@record
class Watchdog(Record):
    """``<watchdog model=... action=...>``: what libvirt does when the guest stops petting the watchdog."""

    model: str  # i6300esb|ib700 (libvirt 9.0 has no itco)
    action: str = "reset"


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from . import unused
    s = settings.value
    dev = dom.devices
    iommu = True if s("devices.iommu") else None
    ports = s("devices.pcie_root_ports")
    if ports and "q35" in (plan.machine or ""):
        # virt-install's layout: pcie-root first (libvirt requires index 0), then the root ports;
        # libvirt numbers them and puts devices into them, and adds more if the devices need more.
        dev.controllers.append(Controller("pci", model="pcie-root", index=0))
        dev.controllers.extend(Controller("pci", model="pcie-root-port") for _ in range(ports))
    elif ports:
        unused(ctx, settings, "devices.pcie_root_ports", f"machine {plan.machine} has no PCIe root ports")
    if any(d.bus == "scsi" for d in plan.disks):
        dev.controllers.append(Controller("scsi", model="virtio-scsi", index=0, iommu=iommu))
    if s("usb.controller") != "none":
        dev.controllers.append(Controller("usb", model=s("usb.controller"), index=0, ports=15))
    else:
        # Omitting the controller is not enough: libvirt then adds a default qemu-xhci on q35.
        dev.controllers.append(Controller("usb", model="none", index=0))
    spice = s("graphics.type") == "spice"
    if iommu and (s("channel.guest_agent") or (s("channel.vdagent") and spice)):
        # libvirt adds the virtio-serial controller implicitly, but without iommu: declare it.
        dev.controllers.append(Controller("virtio-serial", index=0, iommu=True))
    if s("console.serial"):
        log = str((ctx.vm_dir or Path(ctx.vm_name)).absolute() / "console.log") if s("console.log") else None
        dev.consoles.append(Console("pty", "serial", log))
    else:
        unused(ctx, settings, "console.log", "console.serial is off")
    if s("panic.model") != "none":
        dev.panics.append(s("panic.model"))
    elif s("vm.on_crash") != "destroy":
        ctx.note(f"vm.on_crash={s('vm.on_crash')}: without a panic device (panic.model) QEMU does not see a "
                 "guest crash, so the action applies only to crashes QEMU itself detects")
    if s("channel.guest_agent"):
        dev.channels.append(Channel("unix", "virtio", "org.qemu.guest_agent.0"))
    if s("channel.vdagent"):
        if spice:
            dev.channels.append(Channel("spicevmc", "virtio", "com.redhat.spice.0"))
        else:
            unused(ctx, settings, "channel.vdagent", "the vdagent channel serves graphics.type=spice")
    if s("tpm.model") != "none":
        passthrough = s("tpm.backend") == "passthrough"
        if passthrough:
            unused(ctx, settings, "tpm.version", "a passthrough TPM is the host's own")
        dev.tpms.append(Tpm(model=s("tpm.model"), backend=s("tpm.backend"),
                            version=None if passthrough else s("tpm.version"),
                            device_path="/dev/tpm0" if passthrough else None))
    else:
        for key in ("tpm.backend", "tpm.version"):
            unused(ctx, settings, key, "tpm.model is none")
    if s("watchdog.model") != "none":
        dev.watchdogs.append(Watchdog(s("watchdog.model"), s("watchdog.action")))
    else:
        unused(ctx, settings, "watchdog.action", "watchdog.model is none")
    if s("rng.model") != "none":
        dev.rngs.append(Rng(model="virtio", backend="/dev/urandom", iommu=iommu))


def render_controllers(devices: Element, dom: Domain) -> None:
    from ..xml import driver_iommu, num, sub
    for ctl in dom.devices.controllers:
        c = sub(devices, "controller", type_=ctl.type, index=num(ctl.index), model=ctl.model, ports=num(ctl.ports))
        driver_iommu(c, ctl.iommu)


def render_consoles(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for con in dom.devices.consoles:
        c = sub(devices, "console", type_=con.type)
        if con.log_file:
            sub(c, "log", file=con.log_file, append="on")  # append: the log of the boot before survives
        sub(c, "target", type_=con.target_type)


def render_channels(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for ch in dom.devices.channels:
        c = sub(devices, "channel", type_=ch.type)
        sub(c, "target", type_=ch.target_type, name=ch.target_name)


def render_tpms(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for tpm in dom.devices.tpms:
        t = sub(devices, "tpm", model=tpm.model)
        b = sub(t, "backend", type_=tpm.backend, version=tpm.version if tpm.backend == "emulator" else None)
        if tpm.backend == "passthrough" and tpm.device_path:
            sub(b, "device", path=tpm.device_path)


def render_watchdogs(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for wd in dom.devices.watchdogs:
        sub(devices, "watchdog", model=wd.model, action=wd.action)


def render_panics(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for model in dom.devices.panics:
        sub(devices, "panic", model=model)


def render_rngs(devices: Element, dom: Domain) -> None:
    from ..xml import driver_iommu, sub
    for rng in dom.devices.rngs:
        r = sub(devices, "rng", model=rng.model)
        if rng.rate_bytes:
            sub(r, "rate", bytes=str(rng.rate_bytes), period=str(rng.rate_period_ms or 1000))
        sub(r, "backend", rng.backend, model="random")
        driver_iommu(r, rng.iommu)
