"""The host needs of a VM not created yet: built for a host as ``create`` would build it, nothing written.

``host plan SCENARIO`` without ``--vm`` plans for the VM ``create`` would make on that
host. Its host requirements are not all in the scenario's settings: the build pins the
vCPUs, binds memory to their NUMA nodes (``host.hugepages_nodes``) and a plugin may pick
another hugepage size (softrt). So the VM is built here with the host's facts (the same
code path as ``create --host-root``), and its requirements are what its vm.yaml would record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from ..types import HostRequirement

if TYPE_CHECKING:  # pragma: no cover
    from ..host.root import HostRoot
    from ..plugin.hooks import Catalog

#: The name the prospective VM is built under (never written anywhere).
NAME = "new-vm"


def new_vm_requirements(scenario: str, host: Optional[HostRoot] = None, *, config_file: Optional[str] = None,
                        sets: Iterable[str] = (), catalog: Optional[Catalog] = None) -> list[HostRequirement]:
    """Host requirements of a new VM of ``scenario`` built for ``host`` (None: offline), ``vm`` None.

    Besides ``host.*`` keys: ``memory.hugepages`` and ``memory.hugepage_size`` as the built
    model uses them (a VM without hugepages says ``memory.hugepages`` False).
    """
    from ..host.facts import local_libvirt_version, read_host
    from ..host.firmware import firmware_for
    from ..settings.cliargs import parse_sets
    from ..settings.userfile import load_config
    from .generate import Request, generate

    firmware, unknown = (None, "offline") if host is None else firmware_for("qemu:///system", host)
    req = Request(scenario=scenario, name=NAME, cli_settings=parse_sets(sets), config=load_config(config_file),
                  store_root=Path("/nonexistent-store"), host=read_host(host) if host is not None else None,
                  libvirt_version=local_libvirt_version(), firmware=firmware, firmware_unknown=unknown,
                  validate=False, inspect_images=False, host_root=host)
    gen = generate(req, catalog)
    reqs = [HostRequirement(r.key, r.value, r.rationale, r.reference, r.scenario, None, r.vm_memory_bytes)
            for r in gen.host_requirements]
    if not any(r.key == "memory.hugepages" for r in reqs):
        why = gen.settings["memory.hugepages"]
        reqs.append(HostRequirement("memory.hugepages", False, why.rationale, why.reference, scenario, None,
                                    gen.domain.memory))
    return reqs
