"""virtscenario-migration: a VM meant to live-migrate, written as a third-party plugin.

Built only on :mod:`virtscenario.api`. Every choice removes something that ties
a guest to one host (see README.md). With ``--set migration.hosts=HOST,HOST`` (host
inventory names or libvirt URIs) the CPU becomes the baseline libvirt computes across
those hypervisors. The core's
``migratable-vm`` rule (enabled by ``vm.migratable``) explains any ``--set``
that would break migration. Imports stay cheap: lxml and libvirt are only
imported when a ``migration`` VM is generated with ``migration.hosts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from virtscenario.api import Choice, Scenario, SettingSpec, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import BuildContext, Domain, Settings

VIRTSCENARIO_API = (1, 3)  # resolve_host_uris
NAME = "migration"
PLUGIN = "virtscenario-migration"

FORMATDOMAIN = "https://libvirt.org/formatdomain.html"
CPU_DOC = FORMATDOMAIN + "#cpu-model-and-topology"
MIGRATION_DOC = "https://libvirt.org/migration.html"
VIRTIOFS = "https://libvirt.org/kbase/virtiofs.html"
NOVA_SEV = "https://docs.openstack.org/nova/latest/admin/sev.html"
HOSTS = "migration.hosts"


SCENARIO = Scenario(
    name=NAME,
    summary="A guest that live-migrates: portable CPU, cache=none disks on shared storage, nothing host-bound",
    version="0.1.0",
    description="Give every hypervisor of the pool with --set migration.hosts=HOST,HOST (host inventory names "
                "or libvirt URIs) to get a custom CPU they can all run (libvirt's hypervisor CPU baseline) "
                "instead of host-model.",
    settings=(
        Choice("vm.migratable", True, "the VM is meant to move: the migratable-vm rule refuses host devices, "
           "virtiofs, launch security, host-passthrough CPUs, pinning, hugepages and locked memory",
           MIGRATION_DOC),
        Choice("cpu.mode", "host-model", "libvirt transfers the complete host-model CPU definition on migration, "
           "so the guest sees the same CPU on the destination; host-passthrough is only safe between identical "
           "hosts (with migration.hosts: a custom baseline instead)", CPU_DOC),
        Choice("disk.cache", "none", "O_DIRECT: no host page cache holds the guest's writes, so nothing is left to "
           "flush at switch-over; other modes migrate too on shared storage, because QEMU can drop the page "
           "cache (libvirt qemuMigrationSrcIsSafe: 'QEMU supports flushing caches; migration is safe')",
           "https://gitlab.com/libvirt/libvirt/-/blob/v9.0.0/src/qemu/qemu_migration.c (qemuMigrationSrcIsSafe)"),
        Choice("filesystem.share", False, "virtiofs does not support migration (nor save or snapshots with memory)",
           VIRTIOFS),
        Choice("launch_security.type", "none", "SEV/SEV-SNP/TDX guests cannot be live-migrated", NOVA_SEV),
        Choice("memory.hugepages", False, "static hugepages would have to be reserved on every destination first",
           FORMATDOMAIN + "#memory-backing"),
        Choice("memory.locked", False, "locked memory needs a memlock allowance on every destination",
           FORMATDOMAIN + "#memory-backing"),
        Choice("cpu.pinning", "none", "pinning names this host's CPU numbers, which mean nothing on another host",
           FORMATDOMAIN + "#cpu-tuning"),
        Choice("tpm.model", "tpm-crb", "a vTPM migrates: the swtpm state travels in QEMU's migration stream "
           "('Migration with the TPM emulator'), so guests that need one (Windows 11, measured boot) fit; keep "
           "its state in libvirt's local directory unless swtpm supports --migration (Debian 12's 0.7 does not)",
           "https://www.qemu.org/docs/master/specs/tpm.html#migration-with-the-tpm-emulator"),
    ),
)

SETTINGS = (
    SettingSpec(HOSTS, "str", None,
                "Comma-separated host inventory names or libvirt URIs of every host the VM may run on (e.g. "
                "epyc1,epyc2 or qemu+ssh://h1/system,qemu+ssh://h2/system): the CPU becomes their hypervisor "
                "CPU baseline",
                rationale="unset: host-model, which libvirt carries over on migration",
                reference="https://libvirt.org/manpages/virsh.html#hypervisor-cpu-baseline"),
)


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    return [SCENARIO]


@hookimpl
def register_settings() -> Iterable[SettingSpec]:
    return SETTINGS


@hookimpl
def customize_model(domain: Domain, settings: Settings, context: BuildContext) -> None:
    if context.scenario.name != NAME:
        return
    hosts = settings.value(HOSTS)
    if hosts:
        _apply_baseline(domain, hosts, context)
    files = [d.source for d in domain.devices.disks if d.device == "disk" and d.source]
    if files:
        context.note(f"migration: disk {files[0]}{' and others' if len(files) > 1 else ''} must be on storage "
                     "every host reaches at the same path (NFS, CephFS, a SAN; --set disk.directory=/shared/dir), "
                     "or be copied with 'virsh migrate --copy-storage-all'", source=PLUGIN)


def _apply_baseline(domain: Domain, hosts: str, context: BuildContext) -> None:
    from virtscenario.api import model

    from .baseline import compute, parse_hosts
    pairs = parse_hosts(hosts)
    uris = [uri for _item, uri in pairs]
    result = compute(uris, domain.type, domain.os.arch or "x86_64")
    cpu = domain.cpu
    cpu.mode = "custom"
    cpu.model = result.model
    cpu.model_fallback = "forbid"
    cpu.check = "full"  # libvirt verifies the started guest got exactly this CPU
    cpu.migratable = None
    cpu.cache_mode = None if cpu.cache_mode == "passthrough" else cpu.cache_mode
    user = [f for f in cpu.features if f.name not in {name for name, _p in result.features}]
    cpu.features = [model.CpuFeature(name, policy) for name, policy in result.features] + user
    context.note(f"migration: CPU {result.model} with {len(result.features)} feature(s): the migratable baseline "
                 f"of {', '.join(uri if item == uri else f'{item} ({uri})' for item, uri in pairs)}", source=PLUGIN)
    if result.machine and domain.os.machine != result.machine:
        domain.os.machine = result.machine
        context.note(f"migration: machine {result.machine}, the newest q35 every host offers (one versioned "
                     "machine keeps the guest ABI identical on all hosts)", source=PLUGIN)
