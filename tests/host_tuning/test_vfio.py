"""The vfio-pci binding in the host plan, on fake hosts with four IOMMU group shapes: planned,
applied through driver_override, journaled, persisted as driverctl overrides, reverted byte-exact."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from virtscenario.api import HostRequirement, HostRoot
from virtscenario_host_tuning.plan import build_plan

from .. import fakedevices

GPU, AUDIO, NIC, NVME, PORT, SATA = ("0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0000:04:00.0",
                                     "0000:00:1d.0", "0000:00:17.0")


def fake(tmp_path: Path, label: str = "host", **changes: Any) -> HostRoot:
    devs = dataclasses.replace(fakedevices.WORKSTATION, **changes) if changes else fakedevices.WORKSTATION
    return HostRoot(fakedevices.host(tmp_path / label, devs))


def req(addresses: str, vm: str = "vm-a") -> HostRequirement:
    return HostRequirement("host.vfio_pci", addresses, "test rationale", "https://libvirt.org", "tplain", vm, 0)


def knobs(plan: Any) -> dict[str, Any]:
    return {a.change.knob: a for a in plan.actions}


# -- plan -----------------------------------------------------------------------------------------
def test_clean_group_is_one_binding(tmp_path: Path) -> None:
    plan = build_plan([req(NIC)], fake(tmp_path))
    action = knobs(plan)[f"vfio-pci {NIC}"]
    assert (action.op, action.change.current, action.change.target, action.data) == \
        ("pci-driver", "igb", "vfio-pci", b"vfio-pci")
    assert action.change.path == f"/sys/bus/pci/devices/{NIC}" and action.needed and not plan.refusals
    assert action.persist == ("driverctl", NIC, "vfio-pci")
    assert "igb loses it" in action.change.reason


def test_shared_group_binds_both_endpoints_or_refuses(tmp_path: Path) -> None:
    host = fake(tmp_path)
    plan = build_plan([req(f"{GPU} {AUDIO}")], host)
    assert [a.change.knob for a in plan.needed] == [f"vfio-pci {GPU}", f"vfio-pci {AUDIO}"]
    alone = build_plan([req(GPU)], host)
    assert alone.refusals == [f"host.vfio_pci (tplain (vm-a)): IOMMU group 1 of {GPU} also holds {AUDIO} (audio "
                              "device 10de:10f0, driver snd_hda_intel): VFIO assigns whole groups, so give it to this "
                              f"VM too (--hostdev pci={AUDIO})"]
    # Split over two VMs: each VM must hold the whole group.
    split = build_plan([req(f"{GPU} {AUDIO}", "vm-a"), req(GPU, "vm-b")], host)
    assert len(split.refusals) == 1 and "also holds 0000:01:00.1" in split.refusals[0]


def test_group_with_a_bridge_binds_the_endpoint_only(tmp_path: Path) -> None:
    plan = build_plan([req(NVME)], fake(tmp_path))
    assert [a.change.knob for a in plan.needed] == [f"vfio-pci {NVME}"] and not plan.refusals
    assert build_plan([req(PORT)], fake(tmp_path, "h2")).refusals == [
        f"host.vfio_pci (tplain (vm-a)): {PORT} is a PCI bridge: only endpoint devices can be passed through"]


def test_iommu_off_gives_kernel_command_line_advice_and_binds_nothing(tmp_path: Path) -> None:
    plan = build_plan([req(NIC)], fake(tmp_path, iommu=False))
    assert plan.needed == [] and not plan.refusals
    cmdline = knobs(plan)["kernel cmdline (IOMMU)"].change
    assert (cmdline.current, cmdline.target, cmdline.reboot_required, cmdline.advice_only) == \
        ("-", "intel_iommu=on iommu=pt", True, True)
    binding = knobs(plan)[f"vfio-pci {NIC}"].change
    assert binding.advice_only and "turn the IOMMU on first" in binding.reason


def test_host_essentials_are_refused_even_from_a_hand_edited_vm(tmp_path: Path) -> None:
    plan = build_plan([req(SATA), req("0000:00:02.0", "vm-b"), req("0000:0a:00.0", "vm-c")], fake(tmp_path))
    assert plan.refusals == [
        f"host.vfio_pci (tplain (vm-a)): {SATA} is the controller of the host's boot disk /dev/sda2 (/)",
        "host.vfio_pci (tplain (vm-b)): 0000:00:02.0 is the host's console GPU (boot_vga is 1)",
        "host.vfio_pci (tplain (vm-c)): 0000:0a:00.0 is not a PCI device of this host "
        "(/sys/bus/pci/devices/0000:0a:00.0)"]
    assert plan.needed == []


def test_device_wanted_by_two_vms_is_a_conflict_not_an_error(tmp_path: Path) -> None:
    plan = build_plan([req(NIC, "vm-a"), req(NIC, "vm-b")], fake(tmp_path))
    change = knobs(plan)[f"vfio-pci {NIC}"].change
    assert change.conflict == "tplain (vm-a), tplain (vm-b) all want it: only one of them can run at a time"
    assert not plan.refusals


def test_each_binding_names_the_vms_that_use_that_device(tmp_path: Path) -> None:
    other = HostRequirement("host.vfio_pci", NVME, "test rationale", "https://libvirt.org", "tother", "vm-c", 0)
    plan = build_plan([req(NIC, "vm-a"), req(NIC, "vm-b"), other], fake(tmp_path))
    assert knobs(plan)[f"vfio-pci {NIC}"].change.source == "tplain (vm-a), tplain (vm-b)"
    assert knobs(plan)[f"vfio-pci {NVME}"].change.source == "tother (vm-c)"
    assert knobs(plan)["driverctl"].change.source == "tother, tplain"  # for every binding: every scenario
    off = build_plan([req(NIC, "vm-a"), other], fake(tmp_path, "off", iommu=False))
    assert knobs(off)[f"vfio-pci {NVME}"].change.source == "tother (vm-c)"
    assert knobs(off)["kernel cmdline (IOMMU)"].change.source == "tother, tplain"


def test_already_bound_needs_nothing(tmp_path: Path) -> None:
    pci = [dataclasses.replace(p, driver="vfio-pci") if p.address == NIC else p for p in fakedevices.WORKSTATION.pci]
    plan = build_plan([req(NIC)], fake(tmp_path, pci=pci))
    action = knobs(plan)[f"vfio-pci {NIC}"]
    assert (action.change.current, action.needed) == ("vfio-pci", False)


# -- apply and revert -----------------------------------------------------------------------------
def create_vm(run_cli: Any, host: HostRoot, store: Path, name: str, *addresses: str) -> None:
    args = ["--host-root", str(host.root), "create", "tplain", "--name", name, "--output", str(store), "--disk",
            "none", "--network", "none"]
    for address in addresses:
        args += ["--hostdev", f"pci={address}"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output


def read(host: HostRoot, path: str) -> str:
    return host.path(path).read_text()


def driver(host: HostRoot, address: str) -> str:
    link = host.path(f"/sys/bus/pci/devices/{address}/driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else ""


def test_apply_persist_revert_is_byte_exact(run_cli: Any, tmp_path: Path) -> None:
    host = fake(tmp_path)
    store = tmp_path / "store"
    create_vm(run_cli, host, store, "gpu", GPU, AUDIO)
    before = fakedevices.snapshot(host.root)
    result = run_cli(["--host-root", str(host.root), "host", "apply", "tplain", "--vm", "gpu", "--output",
                      str(store), "--yes", "--persist"])
    assert result.exit_code == 0, result.output
    assert f"  bind {GPU} to vfio-pci (nouveau loses it)" in result.output
    assert (driver(host, GPU), driver(host, AUDIO)) == ("vfio-pci", "vfio-pci")
    assert read(host, f"/sys/bus/pci/devices/{GPU}/driver_override") == "vfio-pci\n"
    assert sorted(os.listdir(host.path("/sys/bus/pci/drivers/vfio-pci"))) == [GPU, AUDIO, "bind", "new_id",
                                                                              "unbind"]
    assert GPU not in os.listdir(host.path("/sys/bus/pci/drivers/nouveau"))
    assert read(host, f"/etc/driverctl.d/pci-{GPU}") == "vfio-pci\n"
    assert read(host, "/sys/bus/pci/drivers_probe") == ""  # write-only attributes stay empty

    result = run_cli(["--host-root", str(host.root), "host", "revert", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"  {GPU}: back to nouveau (driver_override (null))" in result.output
    assert fakedevices.snapshot(host.root) == before


def test_unbound_device_and_a_custom_override_come_back_exactly(run_cli: Any, tmp_path: Path) -> None:
    pci = [dataclasses.replace(p, driver=None) if p.address == NIC else p for p in fakedevices.WORKSTATION.pci]
    host = fake(tmp_path, pci=pci)
    host.path(f"/sys/bus/pci/devices/{NVME}/driver_override").write_text("nvme\n")
    store = tmp_path / "store"
    create_vm(run_cli, host, store, "a", NIC)
    create_vm(run_cli, host, store, "b", NVME)
    before = fakedevices.snapshot(host.root)
    result = run_cli(["--host-root", str(host.root), "host", "apply", "tplain", "--vm", "a", "--vm", "b",
                      "--output", str(store), "--yes"])
    assert result.exit_code == 0, result.output
    assert f"  bind {NIC} to vfio-pci (no host driver had it)\n" in result.output
    assert f"  bind {NVME} to vfio-pci (nvme loses it)\n" in result.output
    assert (driver(host, NIC), driver(host, NVME)) == ("vfio-pci", "vfio-pci")
    result = run_cli(["--host-root", str(host.root), "host", "revert", "--yes"])
    assert result.exit_code == 0, result.output
    assert fakedevices.snapshot(host.root) == before
    assert (driver(host, NIC), driver(host, NVME)) == ("", "nvme")
    assert read(host, f"/sys/bus/pci/devices/{NVME}/driver_override") == "nvme\n"


def test_a_failed_bind_rolls_everything_back(run_cli: Any, tmp_path: Path) -> None:
    host = fake(tmp_path, drivers=())  # vfio-pci not loaded, and no modprobe under --host-root
    store = tmp_path / "store"
    create_vm(run_cli, host, store, "nic", NIC)
    before = fakedevices.snapshot(host.root)
    result = run_cli(["--host-root", str(host.root), "host", "apply", "tplain", "--vm", "nic", "--output",
                      str(store), "--yes", "--persist"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: apply failed: vfio-pci is not loaded under --host-root (/sys/bus/pci/drivers/vfio-pci), and "
        "modprobe cannot load a module into a fake tree; everything this run changed was rolled back")
    assert fakedevices.snapshot(host.root) == before


def test_plan_shows_the_binding(run_cli: Any, tmp_path: Path) -> None:
    host = fake(tmp_path)
    store = tmp_path / "store"
    create_vm(run_cli, host, store, "nic", NIC)
    result = run_cli(["--host-root", str(host.root), "host", "plan", "tplain", "--vm", "nic", "--output",
                      str(store), "--json"])
    assert result.exit_code == 0, result.output
    import json
    rows = {r["knob"]: r for r in json.loads(result.stdout)["changes"]}
    assert (rows[f"vfio-pci {NIC}"]["current"], rows[f"vfio-pci {NIC}"]["target"],
            rows[f"vfio-pci {NIC}"]["needed"]) == ("igb", "vfio-pci", True)
    assert rows["driverctl"]["advice_only"] is True


@pytest.mark.parametrize("text", ["(null)\n", "pci-stub\n"])
def test_engine_step_kind_round_trip(tmp_path: Path, text: str) -> None:
    """The engine's pci-driver kind on its own: snapshot, do, restore."""
    from virtscenario_host_tuning import engine
    host = fake(tmp_path)
    host.path(f"/sys/bus/pci/devices/{NIC}/driver_override").write_text(text)
    before = fakedevices.snapshot(host.root)
    engine.apply_steps(host, [engine.Step("pci-driver", f"/sys/bus/pci/devices/{NIC}", b"vfio-pci", "t")],
                       {"scenario": "t"})
    assert driver(host, NIC) == "vfio-pci"
    count, notes = engine.revert(host)
    assert (count, notes) == (1, [])
    assert fakedevices.snapshot(host.root) == before
