"""What a VM of a scenario needs from a host, and the stored VMs: the fleet's only doors into the core.

``scenario_needs`` resolves the scenario's settings (core defaults, scenario, the
user's settings file, then the command line) and keeps what placement judges;
``stored_vm`` reads a VM from the store. Nothing else in ``virtscenario.fleet``
imports the pipeline, the catalog, the config or the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import VirtscenarioError


@dataclass(frozen=True)
class Needs:
    scenario: str
    name: str
    memory_bytes: int
    vcpus: int
    arch: str
    virt_type: str  # kvm or qemu, as resolved
    kvm_required: bool  # the user asked for kvm, or launch security needs it
    launch_security: str  # none, auto, sev, sev-es, sev-snp, tdx
    hugepages: bool
    hugepage_size_kib: int
    dedicated_cpus: int  # vCPUs that get a host CPU of their own (pinning, real-time)
    housekeeping_cores: int  # cores per NUMA node (of each socket) left to the host when pinning
    isolated_cpus: Optional[str]  # host.isolated_cpus given as a CPU list
    virtiofs: bool
    tpm_model: Optional[str]
    tpm_backend: str
    migratable: bool
    cpu_mode: str
    cpu_model: Optional[str]
    firmware: str
    secure_boot: bool

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict
        return asdict(self)


@dataclass(frozen=True)
class StoredVm:
    name: str
    directory: Path
    domain_xml: str
    record: dict[str, Any]

    @property
    def host(self) -> Optional[str]:
        """The inventory host (or URI) the VM was created on, when the store records it."""
        value = self.record.get("host")
        return str(value) if value else None


def scenario_needs(scenario: str, name: str, cli_values: list[tuple[str, Any, str]],
                   config_file: Optional[str] = None) -> Needs:
    """Resolve ``scenario`` with the user's file and ``cli_values`` ((key, raw value, flag) as create takes)."""
    from ..plugin.hooks import Catalog
    from ..settings.resolve import resolve_scenario
    from ..settings.userfile import load_config

    _provided, settings = resolve_scenario(Catalog(), scenario, load_config(config_file), cli_values)
    s = settings.value
    launch = s("launch_security.type") or "none"
    virt_type = s("vm.virt_type") or "kvm"
    user_kvm = virt_type == "kvm" and settings["vm.virt_type"].by_user
    realtime = (s("cpu.scheduler") or "none") != "none"
    pinning = s("cpu.pinning") == "auto" or realtime
    vcpus = int(s("vm.vcpus"))
    return Needs(
        scenario=scenario,
        name=name,
        memory_bytes=int(s("vm.memory")),
        vcpus=vcpus,
        arch="x86_64",  # the only guest architecture virtscenario generates
        virt_type=virt_type,
        kvm_required=user_kvm or launch != "none",
        launch_security=launch,
        hugepages=bool(s("memory.hugepages")),
        hugepage_size_kib=int(s("memory.hugepage_size") or 2 * 1024 * 1024) // 1024,
        dedicated_cpus=vcpus if pinning else 0,
        housekeeping_cores=int(s("cpu.housekeeping_cpus") or 1),
        isolated_cpus=s("host.isolated_cpus") or None,
        virtiofs=bool(s("filesystem.share")),
        tpm_model=None if s("tpm.model") in (None, "none") else s("tpm.model"),
        tpm_backend=s("tpm.backend") or "emulator",
        migratable=bool(s("vm.migratable")),
        cpu_mode=s("cpu.mode") or "host-passthrough",
        cpu_model=s("cpu.model") or None,
        firmware=s("firmware.type") or "efi",
        secure_boot=bool(s("firmware.secure_boot")),
    )


def stored_vm(name: str, output: Optional[str] = None, config_file: Optional[str] = None) -> Optional[StoredVm]:
    """The VM ``name`` of the store (``--output``, else the configured or default store); None if absent."""
    from ..settings.userfile import load_config
    from ..vm.store import DOMAIN_FILE, load_vm, store_root, vm_dir

    root = store_root(output, load_config(config_file).store)
    directory = vm_dir(root, name)
    record = load_vm(directory)
    xml_path = directory / DOMAIN_FILE
    if record is None and not xml_path.is_file():
        return None
    try:
        xml = xml_path.read_text()
    except OSError as exc:
        raise VirtscenarioError(f"cannot read {xml_path}: {exc.strerror or exc}") from None
    return StoredVm(name, directory, xml, record or {})
