"""virtscenario plugin: the built-in ``testing`` scenario.

The decisions live in :mod:`virtscenario_testing.scenario`. This module wires them into
virtscenario's hooks and adds the scenario's own ``verify`` checks: the panic device that
lets a crash be kept and the watchdog are seen from inside the guest. Imports stay lazy:
this module is loaded on every CLI run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from virtscenario.api import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import GuestCheck, Scenario

VIRTSCENARIO_API = (1, 2)
PLUGIN = "virtscenario-testing-scenario"
SCENARIO_NAME = "testing"
#: PCI ids (vendor, device) of the emulated watchdogs libvirt offers on x86.
WATCHDOG_PCI = {"i6300esb": ("0x8086", "0x25ab")}
#: The ACPI id of QEMU's ISA pvpanic device (QEMU docs/specs/pvpanic).
PVPANIC_ACPI = "QEMU0001"


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    from .scenario import SCENARIO
    return [SCENARIO]


@hookimpl
def verify_checks(vm: Any, guest: Any) -> Iterable[GuestCheck]:
    """The panic device and the watchdog the testing scenario decided, as the guest sees them."""
    if vm.scenario != SCENARIO_NAME or not guest.is_linux:
        return []
    from virtscenario.api import GuestCheck
    out = []
    panic = vm.domain.find("devices/panic")
    want = panic is not None and panic.get("model") == "isa"
    # The device alone reports nothing: a driver must be bound to it (pvpanic-mmio since Linux
    # 5.12, pvpanic before), or a panic never reaches QEMU and on_crash never acts.
    script = (f"ls -d /sys/bus/acpi/devices/{PVPANIC_ACPI}:* 2>/dev/null; "
              f"for d in /sys/bus/platform/drivers/pvpanic*/{PVPANIC_ACPI}:*; do "
              "[ -e \"$d\" ] && echo \"bound ${d#/sys/bus/platform/drivers/}\"; done; true")
    lines = guest.run(["sh", "-c", script]).stdout.splitlines()
    seen = any(line.startswith("/sys/") for line in lines)
    bound = [line.split()[1].split("/")[0] for line in lines if line.startswith("bound ")]
    observed = ("ISA pvpanic (ACPI QEMU0001), driver " + bound[0] if bound else
                "ISA pvpanic (ACPI QEMU0001), no driver bound: a panic would not reach QEMU "
                "(modprobe pvpanic-mmio)") if seen else "absent"
    out.append(GuestCheck("panic device (keeps a crash)", "ISA pvpanic, driver bound" if want else "absent",
                          observed, (seen and bool(bound)) if want else not seen))
    wd = vm.domain.find("devices/watchdog")
    model = wd.get("model") if wd is not None else None
    ids = WATCHDOG_PCI.get(model or "")
    script = "for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor) $(cat $d/device); done"
    pci = {tuple(line.split()) for line in guest.run(["sh", "-c", script]).stdout.splitlines() if line.strip()}
    found = [name for name, pair in WATCHDOG_PCI.items() if pair in pci]
    expected = f"{model} on PCI {':'.join(ids)}" if ids else "absent"
    observed = ", ".join(f"{n} on PCI {':'.join(WATCHDOG_PCI[n])}" for n in found) or "absent"
    out.append(GuestCheck("watchdog", expected, observed, (ids is not None) == bool(found) and
                          (ids is None or model in found)))
    return out
