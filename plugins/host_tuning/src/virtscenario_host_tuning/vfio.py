"""VFIO in the host plan: PCI passthrough devices bound to vfio-pci, journaled and reverted byte-exact.

Input: the requirement ``host.vfio_pci`` (PCI addresses, space-separated) that the core
records for every VM created with ``--hostdev pci=...``.

Plan, per device (``plan_vfio``, called by plan.build_plan):

* IOMMU off (``/sys/kernel/iommu_groups`` empty): kernel command-line advice
  (``intel_iommu=on iommu=pt``; AMD: AMD-Vi in the firmware, ``iommu=pt``) and the
  binding stays advice: vfio-pci refuses a device without an IOMMU group;
* a device this host must keep (boot disk controller, console GPU, a shared group):
  refused, with the core's reason (``pci_problems``);
* already bound to vfio-pci: nothing to do; otherwise a ``pci-driver`` step:
  ``driver_override`` = vfio-pci, unbind from the current driver, ``drivers_probe``
  (the way driverctl and the kernel docs bind a device to a chosen driver).

Apply and revert (``snapshot``/``do``/``restore``, the engine's ``pci-driver`` kind): the
journal keeps the exact ``driver_override`` bytes (``(null)\\n`` when unset) and the
driver; revert unbinds vfio-pci, writes the override back (an empty line clears it, the
kernel then shows ``(null)`` again), binds the original driver through its ``bind``
file and checks both read back exactly as journaled.

``--persist``: ``/etc/driverctl.d/pci-ADDR`` holding ``vfio-pci`` -- driverctl's own
format, re-applied by its udev rule at every boot and hotplug. Chosen over
``options vfio-pci ids=VENDOR:DEVICE`` in modprobe.d because the ids option takes every
device with that ID (a second, identical GPU or NIC the host keeps) and races with the
host driver unless softdeps order the modules; an override names one address.

Under ``--host-root`` the kernel's reactions to these writes are emulated on the fake
tree (links moved, write-only attributes left empty), so plan -> apply -> revert is
byte-identical there too.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from virtscenario.api import HostChange

from . import sysfs

REQUIREMENT = "host.vfio_pci"
DRIVER = "vfio-pci"
PCI_DEVICES = "/sys/bus/pci/devices"
PCI_DRIVERS = "/sys/bus/pci/drivers"
GROUPS_DIR = "/sys/kernel/iommu_groups"
DRIVERCTL_DIR = "/etc/driverctl.d"
DRIVERCTL_TOOLS = ("/usr/sbin/driverctl", "/usr/bin/driverctl", "/sbin/driverctl")
VFIO_REF = "https://docs.kernel.org/driver-api/vfio.html"
PARAMS_REF = "https://docs.kernel.org/admin-guide/kernel-parameters.html"
DRIVERCTL_REF = "https://gitlab.com/driverctl/driverctl"


def device_path(address: str) -> str:
    return f"{PCI_DEVICES}/{address}"


def current_driver(host: Any, address: str) -> str:
    """The bound driver's name, or '' for none."""
    try:
        return os.path.basename(os.readlink(host.path(f"{device_path(address)}/driver")))
    except OSError:
        return ""


# -- plan -------------------------------------------------------------------------------------------
def plan_vfio(plan: Any, host: Any, by_key: dict[str, list[Any]]) -> None:
    from virtscenario.api import pci_problems, read_host_devices

    from .plan import Action
    reqs = [r for r in by_key.get(REQUIREMENT, []) if str(r.value or "").strip()]
    if not reqs:
        return
    wanted: dict[str, list[str]] = {}  # address -> the VMs (or scenarios) that want it
    together: dict[str, frozenset[str]] = {}  # address -> the devices its VM also gets (IOMMU group check)
    for req in reqs:
        label = f"{req.scenario} ({req.vm})" if req.vm else req.scenario
        mine = frozenset(str(req.value).split())
        for address in str(req.value).split():
            wanted.setdefault(address, [])
            together[address] = together[address] & mine if address in together else mine
            if label not in wanted[address]:
                wanted[address].append(label)
    source = ", ".join(sorted({r.scenario for r in reqs}))
    facts = read_host_devices(host)
    if not facts.iommu:
        args = [a for a in host.read("/proc/cmdline", "").split() if "iommu" in a]
        target = "intel_iommu=on iommu=pt" if facts.cpu_vendor != "AuthenticAMD" else "iommu=pt"
        plan.advice("kernel cmdline (IOMMU)", " ".join(args) or "-", target,
                    f"PCI passthrough needs the IOMMU and {GROUPS_DIR} is empty: {facts.iommu_advice()} "
                    "(GRUB_CMDLINE_LINUX, then update-grub or grub2-mkconfig, and reboot)", source, PARAMS_REF,
                    reboot=True)
    for address, users in wanted.items():
        who = ", ".join(users)
        dev = facts.pci_device(address)
        if dev is None:
            plan.refusals.append(f"{REQUIREMENT} ({who}): {address} is not a PCI device of this host "
                                 f"({device_path(address)})")
            continue
        problems = [p for p in pci_problems(dev, facts, together[address]) if facts.iommu or "IOMMU is off" not in p]
        if problems:
            plan.refusals.append(f"{REQUIREMENT} ({who}): {problems[0]}")
            continue
        now = dev.driver or "(no driver)"
        knob = f"vfio-pci {address}"
        if not facts.iommu:
            plan.advice(knob, now, DRIVER, "vfio-pci binds only devices in an IOMMU group: turn the IOMMU on "
                        "first (kernel cmdline), then plan again", who, VFIO_REF, path=device_path(address))
            continue
        if not sysfs.exists(host, f"{device_path(address)}/driver_override"):
            plan.refusals.append(f"{REQUIREMENT} ({who}): {address} has no driver_override (kernel older than 3.16?)")
            continue
        reason = (f"PCI passthrough for {who}: vfio-pci holds the {dev.kind} between VM runs so no host driver "
                  "touches it (libvirt's managed='yes' would only detach it at VM start)")
        if dev.driver and dev.driver != DRIVER:
            reason += f"; {dev.driver} loses it"
        if not sysfs.exists(host, f"{PCI_DRIVERS}/{DRIVER}"):
            reason += "; loads the vfio-pci module first"
        shared = f"{who} all want it: only one of them can run at a time" if len(users) > 1 else ""
        # SOURCE of this row: the VMs (and their scenarios) that use this device, not every scenario planned.
        change = HostChange(knob, device_path(address), now, DRIVER, reason, who, conflict=shared)
        plan.add(Action(change, "pci-driver", DRIVER.encode(), VFIO_REF, persist=("driverctl", address, DRIVER)))
    if any(a.op == "pci-driver" for a in plan.actions) and not any(sysfs.exists(host, t) for t in DRIVERCTL_TOOLS):
        plan.advice("driverctl", "not installed", "installed",
                    f"only for 'host apply --persist': it writes {DRIVERCTL_DIR}/pci-ADDRESS, which driverctl's udev "
                    "rule applies at boot (package driverctl on Debian, SUSE and Fedora)", source, DRIVERCTL_REF)


def persist_files(host: Any, actions: Any) -> dict[str, bytes]:
    """{host path: content} of ``--persist``: one driverctl override per device."""
    out = {}
    for action in actions:
        if action.persist is not None and action.persist[0] == "driverctl":
            _kind, address, driver = action.persist
            out[f"{DRIVERCTL_DIR}/pci-{address}"] = f"{driver}\n".encode()
    return out


# -- the engine's "pci-driver" step kind -----------------------------------------------------------
def _address(step_or_entry_path: str) -> str:
    return os.path.basename(step_or_entry_path)


def snapshot(host: Any, step: Any) -> Any:
    from .journal import PciDriverEntry
    address = _address(step.path)
    override = sysfs.read_bytes(host, f"{step.path}/driver_override")
    if override is None:
        raise sysfs.WriteError(f"{step.label}: cannot read {step.path}/driver_override")
    return PciDriverEntry(step.path, address, current_driver(host, address), override.decode(),
                          sysfs.exists(host, f"{PCI_DRIVERS}/{DRIVER}"))


def do(host: Any, step: Any) -> str:
    address, driver = _address(step.path), step.data.decode()
    if not sysfs.exists(host, f"{PCI_DRIVERS}/{driver}"):
        _modprobe(host, driver)
    _write(host, f"{step.path}/driver_override", f"{driver}\n".encode())
    before = current_driver(host, address)
    if before and before != driver:
        _write(host, f"{step.path}/driver/unbind", address.encode())
    if current_driver(host, address) != driver:
        _write(host, "/sys/bus/pci/drivers_probe", address.encode())
    now = current_driver(host, address)
    if now != driver:
        raise sysfs.WriteError(f"{address}: did not bind to {driver} (driver now: {now or 'none'}); is it in an "
                               "IOMMU group?")
    return driver


def restore(host: Any, entry: Any) -> str:
    path, address = entry.path, entry.address
    original, override = entry.driver, entry.override.encode()
    if sysfs.read_bytes(host, f"{path}/driver_override") == override and current_driver(host, address) == original:
        return ""  # already as it was
    now = current_driver(host, address)
    if now and now != original:
        _write(host, f"{path}/driver/unbind", address.encode())
    # An empty line clears the override (the kernel then shows "(null)"). Cleared before binding the
    # original driver, since the kernel only binds a driver the override names; an override that was
    # set before apply is written back afterwards.
    _write(host, f"{path}/driver_override", b"\n")
    if original and current_driver(host, address) != original:
        _write(host, f"{PCI_DRIVERS}/{original}/bind", address.encode())
    if override.strip() != b"(null)":
        _write(host, f"{path}/driver_override", override)
    after_override = sysfs.read_bytes(host, f"{path}/driver_override")
    after = current_driver(host, address)
    if after_override != override or after != original:
        raise sysfs.WriteError(f"restored, but it reads override {(after_override or b'').decode().strip()!r} and "
                               f"driver {after or 'none'!r} instead of {entry.override.strip()!r} and "
                               f"{original or 'none'!r}")
    note = ""
    if not entry.module_loaded and not host.is_fake and not _bound_to(host, DRIVER):
        result = subprocess.run(["modprobe", "-r", "vfio-pci"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            note = "vfio-pci stays loaded (modprobe -r failed); it holds no device"
    return note


def _bound_to(host: Any, driver: str) -> list[str]:
    return [n for n in sysfs.listdir(host, f"{PCI_DRIVERS}/{driver}") if n.count(":") == 2]


def _modprobe(host: Any, driver: str) -> None:
    if host.is_fake:
        raise sysfs.WriteError(f"{driver} is not loaded under --host-root ({PCI_DRIVERS}/{driver}), and modprobe "
                               "cannot load a module into a fake tree")
    result = subprocess.run(["modprobe", driver], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not sysfs.exists(host, f"{PCI_DRIVERS}/{driver}"):
        raise sysfs.WriteError(f"modprobe {driver}: {(result.stderr or result.stdout).strip() or 'not loaded'}")


def _write(host: Any, host_path: str, data: bytes) -> None:
    """Write a sysfs attribute; under --host-root, then do what the kernel would."""
    sysfs.write_value(host, host_path, data)
    if host.is_fake:
        _emulate(host, host_path, data.decode().strip())


def _emulate(host: Any, host_path: str, value: str) -> None:
    name = os.path.basename(host_path)
    if name == "driver_override":
        host.path(host_path).write_text((value or "(null)") + "\n")
        return
    host.path(host_path).write_text("")  # bind, unbind and drivers_probe are write-only
    device = device_path(value)
    if name == "unbind":
        driver = current_driver(host, value)
        _unlink(host.path(f"{device}/driver"))
        _unlink(host.path(f"{PCI_DRIVERS}/{driver}/{value}"))
    elif name in ("bind", "drivers_probe") and not current_driver(host, value):
        if name == "bind":
            target = os.path.basename(os.path.dirname(host_path))
        else:
            target = host.read(f"{device}/driver_override", "").strip()
        if target and target != "(null)" and sysfs.exists(host, f"{PCI_DRIVERS}/{target}"):
            real = os.path.realpath(host.path(device))
            os.symlink(os.path.relpath(host.path(f"{PCI_DRIVERS}/{target}"), real), os.path.join(real, "driver"))
            os.symlink(os.path.relpath(real, host.path(f"{PCI_DRIVERS}/{target}")),
                       host.path(f"{PCI_DRIVERS}/{target}/{value}"))


def _unlink(path: Any) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
