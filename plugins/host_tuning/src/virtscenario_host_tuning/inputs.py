"""Host requirements for the ``host plan``/``host apply`` commands.

From SCENARIO (a prospective VM of its default size) and from VMs in the store
(``--vm NAME``, ``--all-vms``: their ``vm.yaml`` records scenario, memory,
host requirements and settings). A stored VM of SCENARIO replaces the
prospective one, so its memory is not counted twice. ``--set host.KEY=VALUE``
overrides that key for every VM of the plan: it is the admin speaking for
this host.

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


def parse_sets(values: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    out = []
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise VirtscenarioError(f"--set {item!r} is not KEY=VALUE")
        out.append((key.strip(), value, f"--set {key.strip()}"))
    return out


def gather(catalog: Any, scenario: str, vm_names: tuple[str, ...] = (), all_vms: bool = False,
           config_file: Optional[str] = None, output: Optional[str] = None,
           sets: tuple[str, ...] = ()) -> Inputs:
    from virtscenario.config import load_config
    from virtscenario.pipeline import resolve_settings

    config = load_config(config_file)
    _provided, settings = resolve_settings(catalog, scenario, config, parse_sets(sets))
    overrides = {k: settings[k] for k in settings if k.startswith("host.") and settings[k].source.startswith("flag")}

    records: list[tuple[dict[str, Any], Path]] = []
    root: Optional[Path] = None
    if vm_names or all_vms:
        from virtscenario.store import list_vms, load_vm, store_root, vm_dir
        root = store_root(output, config.store)
        if all_vms:
            records += [(data, vm_dir(root, str(data.get("name")))) for data in list_vms(root)]
        for name in vm_names:
            directory = vm_dir(root, name)
            data = load_vm(directory)
            if data is None:
                raise VirtscenarioError(f"VM {name!r} is not in the store {root} (create it first, or use --output)")
            if all(str(d.get("name")) != name for d, _p in records):
                records.append((data, directory))

    reqs: list[HostRequirement] = []
    for data, directory in records:
        reqs += vm_requirements(catalog, data, directory, overrides)
    if not any(str(d.get("scenario")) == scenario for d, _p in records):
        reqs += scenario_requirements(settings, scenario)
    return Inputs(scenario, reqs, [str(d.get("name")) for d, _p in records], root)


def scenario_requirements(settings: Any, scenario: str, vm: Optional[str] = None) -> list[HostRequirement]:
    memory = int(settings.value("vm.memory") or 0)
    out = [HostRequirement(k, settings[k].value, settings[k].rationale, settings[k].reference, scenario, vm, memory)
           for k in sorted(settings) if k.startswith("host.") and settings[k].value is not None]
    out += [HostRequirement(k, settings[k].value, settings[k].rationale, settings[k].reference, scenario, vm, memory)
            for k in VM_FACTS if k in settings and settings[k].value is not None]
    return out


def vm_requirements(catalog: Any, data: dict[str, Any], directory: Path,
                    overrides: dict[str, Any]) -> list[HostRequirement]:
    """Requirements recorded in a VM's vm.yaml; rationale from its scenario when installed."""
    name = str(data.get("name") or directory.name)
    scenario = str(data.get("scenario") or "unknown")
    memory = int(data.get("memory_bytes") or 0)
    why: dict[str, tuple[str, str]] = {}
    if scenario in catalog.scenarios:
        from virtscenario.config import UserConfig
        from virtscenario.pipeline import resolve_settings
        try:
            _p, resolved = resolve_settings(catalog, scenario, UserConfig(), [])
            why = {k: (resolved[k].rationale, resolved[k].reference) for k in resolved}
        except VirtscenarioError:
            why = {}
    recorded = f"{directory}/vm.yaml"
    out: list[HostRequirement] = []
    for item in data.get("host_requirements") or []:
        if not isinstance(item, dict) or "key" not in item:
            continue
        key, value = str(item["key"]), item.get("value")
        if key in overrides or value is None:
            continue
        rationale, reference = why.get(key, (f"recorded for VM {name}", recorded))
        out.append(HostRequirement(key, value, rationale, reference, scenario, name, memory))
    for key, item in overrides.items():
        out.append(HostRequirement(key, item.value, f"set on the command line ({item.source})", item.reference,
                                   scenario, name, memory))
    settings = {str(s.get("key")): s.get("value") for s in data.get("settings") or [] if isinstance(s, dict)}
    for key in VM_FACTS:
        if settings.get(key) is not None:
            out.append(HostRequirement(key, settings[key], f"setting of VM {name}", recorded, scenario, name, memory))
    return out
