"""Host requirements for the ``host plan``/``host apply`` commands.

From SCENARIO (a prospective VM of its default size, built for this host as
``create`` would build it: its pinning, NUMA placement and hugepage size count) and
from VMs in the store (``--vm NAME``, ``--all-vms``: their ``vm.yaml`` records
scenario, memory, host requirements and settings). A stored VM of SCENARIO
replaces the prospective one, so its memory is not counted twice.
``--set host.KEY=VALUE`` overrides that key for every VM of the plan: it is the
admin speaking for this host.

Besides ``host.*`` keys, two VM facts ride along as requirements so the planner
can size hugepages: ``memory.hugepages`` (does the VM use them) and
``memory.hugepage_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from virtscenario.api import HostRequirement, VirtscenarioError

VM_FACTS = ("memory.hugepages", "memory.hugepage_size")


@dataclass
class Inputs:
    scenario: str
    requirements: list[HostRequirement]
    vms: list[str]
    store: Optional[Path]


def gather(scenario: str, vm_names: tuple[str, ...] = (), all_vms: bool = False,
           config_file: Optional[str] = None, output: Optional[str] = None,
           sets: tuple[str, ...] = (), host: Any = None) -> Inputs:
    """The plan's requirements; ``host`` (a HostRoot) is the host the prospective VM is built for."""
    from virtscenario.api import new_vm_requirements, read_vm, resolve_scenario, store_root, stored_vms

    settings = resolve_scenario(scenario, config_file=config_file, sets=sets).settings
    overrides = {k: settings[k] for k in settings if k.startswith("host.") and settings[k].layer == "flag"}

    records: list[Any] = []
    root: Optional[Path] = None
    if vm_names or all_vms:
        root = store_root(output, config_file)
        if all_vms:
            records += stored_vms(root)
        for name in vm_names:
            vm = read_vm(root, name)
            if vm is None:
                raise VirtscenarioError(f"VM {name!r} is not in the store {root} (create it first, or use --output)")
            if all(r.name != name for r in records):
                records.append(vm)

    reqs: list[HostRequirement] = []
    for vm in records:
        reqs += vm_requirements(vm, overrides)
    if not any(vm.scenario == scenario for vm in records):
        reqs += new_vm_requirements(scenario, host, config_file=config_file, sets=sets)
    return Inputs(scenario, reqs, [vm.name for vm in records], root)


def vm_requirements(vm: Any, overrides: dict[str, Any]) -> list[HostRequirement]:
    """Requirements recorded in a VM's vm.yaml; rationale from its scenario when installed."""
    from virtscenario.api import resolve_scenario
    why: dict[str, tuple[str, str]] = {}
    try:
        resolved = resolve_scenario(vm.scenario).settings
        why = {k: (resolved[k].rationale, resolved[k].reference) for k in resolved}
    except VirtscenarioError:
        why = {}  # scenario no longer installed: the record speaks for itself
    recorded = f"{vm.directory}/vm.yaml"
    out: list[HostRequirement] = []
    for key, value in vm.host_requirements:
        if key in overrides or value is None:
            continue
        rationale, reference = why.get(key, (f"recorded for VM {vm.name}", recorded))
        out.append(HostRequirement(key, value, rationale, reference, vm.scenario, vm.name, vm.memory_bytes))
    for key, item in overrides.items():
        out.append(HostRequirement(key, item.value, f"set on the command line ({item.source})", item.reference,
                                   vm.scenario, vm.name, vm.memory_bytes))
    recorded_keys = {key for key, _value in vm.host_requirements}
    for key in VM_FACTS:
        # What the build recorded is what the XML uses (a hook may have changed the page size):
        # the setting only fills in for a vm.yaml that recorded nothing.
        if key not in recorded_keys and vm.settings.get(key) is not None:
            out.append(HostRequirement(key, vm.settings[key], f"setting of VM {vm.name}", recorded, vm.scenario,
                                       vm.name, vm.memory_bytes))
    return out
