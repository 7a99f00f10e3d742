"""One VM from a scenario: resolve settings, adapt to the hypervisor, build, check, render, validate.

Phases (docs/plugin-hooks.md has the diagram): resolve (register_scenarios,
register_settings, scenario_overrides) -> adapt (select_machine,
select_launch_security) -> build -> customize_model -> domain_rules -> render ->
postprocess_xml -> RelaxNG validation.
"""

from __future__ import annotations

import stat
from dataclasses import field
from pathlib import Path
from typing import Any, Optional

from .build import LAUNCH_SECURITY_MIN_LIBVIRT, DiskPlan, Identity, NetPlan, build_domain
from .catalog import Catalog, ProvidedScenario
from .config import UserConfig
from .context import BuildContext
from .errors import ConfigError, ValidationError, VirtscenarioError
from .hostinfo import version_text
from .model import Domain
from .records import Record, record
from .settings import resolve
from .specs import DiskSpec, NetSpec, parse_network
from .types import DomainCaps, HostInfo, HostRequirement, Note, Settings
from .units import MIB

OFFLINE_MAX_VCPUS = 4096  # QEMU's q35 limit with x2APIC (connected: domain capabilities decide)
MIN_MEMORY = 64 * MIB


@record
class Request(Record):
    scenario: str
    name: str
    cli_settings: list[tuple[str, Any, str]] = field(default_factory=list)
    config: UserConfig = field(default_factory=UserConfig)
    disks: Optional[list[DiskSpec]] = None  # None: one new disk from the settings
    networks: Optional[list[NetSpec]] = None  # None: network.default
    cdrom: Optional[str] = None
    store_root: Path = Path(".")
    caps: Optional[DomainCaps] = None
    host: Optional[HostInfo] = None
    libvirt_version: Optional[int] = None
    identity: Optional[Identity] = None
    schema: Optional[str] = None
    inspect_images: bool = True


@record
class Generated(Record):
    provided: ProvidedScenario
    settings: Settings
    domain: Domain
    xml: bytes
    disks: list[DiskPlan]
    identity: Identity
    notes: list[Note]
    vm_dir: Path
    share_dir: Optional[str]
    host_requirements: list[HostRequirement]
    validated: bool


def resolve_settings(catalog: Catalog, scenario: str, config: UserConfig,
                     cli: list[tuple[str, Any, str]]) -> tuple[ProvidedScenario, Settings]:
    """Resolved settings of ``scenario``; cached per catalog, since Settings are immutable."""
    file_values = config.values_for(scenario)
    key = (scenario, config.path, repr(sorted(file_values.items())), repr(cli))
    cached = catalog.resolved.get(key)
    if cached is None:
        provided = catalog.scenario(scenario)
        overrides = catalog.overrides_for(provided.scenario)
        settings = resolve(catalog.registry, provided.scenario, f"scenario {scenario} ({provided.distribution})",
                           overrides, file_values, config.path, cli)
        cached = catalog.resolved[key] = (provided, settings)
    return cached


def _adapt(settings: Settings, caps: Optional[DomainCaps], notes: list[Note]) -> Settings:
    """Fit the settings to what the hypervisor offers: adapt with a note, or refuse in one line."""
    s = settings.value
    if caps is not None and s("vm.virt_type") == "kvm" and not caps.kvm_available:
        settings = settings.replace("vm.virt_type", "qemu", "domain capabilities",
                                    "KVM is not usable on this host: TCG emulation instead",
                                    "https://libvirt.org/formatdomaincaps.html")
        notes.append(Note("warning", "KVM is not available on this hypervisor: virt type adapted to qemu (TCG)"))
    if settings.value("vm.virt_type") == "qemu" and settings.value("cpu.mode") == "host-passthrough":
        settings = settings.replace("cpu.mode", "maximum", "adapted for TCG",
                                    "host-passthrough needs KVM; 'maximum' gives TCG every feature it emulates",
                                    "https://libvirt.org/formatdomain.html#cpu-model-and-topology")
        notes.append(Note("info", "cpu.mode host-passthrough needs KVM: adapted to maximum for virt type qemu"))
    if caps is None:
        return settings
    s = settings.value
    if s("firmware.type") == "efi" and "efi" not in caps.firmware:
        raise VirtscenarioError("the hypervisor offers no UEFI firmware (install OVMF: Debian ovmf, SUSE "
                                "qemu-ovmf-x86_64, Fedora edk2-ovmf) or --set firmware.type=bios")
    if s("tpm.model") != "none":
        if caps.tpm_models and s("tpm.model") not in caps.tpm_models:
            raise VirtscenarioError(f"TPM model {s('tpm.model')} is not supported here "
                                    f"(supported: {', '.join(caps.tpm_models)})")
        if s("tpm.backend") not in caps.tpm_backends:
            hint = " (install swtpm and swtpm-tools)" if s("tpm.backend") == "emulator" else ""
            raise VirtscenarioError(f"TPM backend {s('tpm.backend')} is not supported by this hypervisor{hint}")
    if s("memory.source") and caps.memory_sources and s("memory.source") not in caps.memory_sources:
        raise VirtscenarioError(f"memory source {s('memory.source')} is not supported here "
                                f"(supported: {', '.join(caps.memory_sources)})")
    if s("filesystem.share") and caps.filesystem_drivers and "virtiofs" not in caps.filesystem_drivers:
        raise VirtscenarioError("this hypervisor has no virtiofs support: --set filesystem.share=off")
    if s("cpu.mode") not in caps.cpu_modes and caps.cpu_modes:
        raise VirtscenarioError(f"cpu mode {s('cpu.mode')} is not supported by this hypervisor "
                                f"(supported: {', '.join(caps.cpu_modes)})")
    return settings


def _disk_plans(req: Request, settings: Settings, catalog: Catalog, vm_dir: Path, notes: list[Note]) -> list[DiskPlan]:
    s = settings.value
    registry = catalog.registry
    specs = req.disks if req.disks is not None else [DiskSpec(size=s("disk.size"))]
    plans: list[DiskPlan] = []
    image_dir = Path(s("disk.directory")).expanduser() if s("disk.directory") else vm_dir
    for i, spec in enumerate(specs):
        where = " (--disk)"
        bus = registry.coerce("disk.bus", spec.bus, where) if spec.bus else s("disk.bus")
        cache = registry.coerce("disk.cache", spec.cache, where) if spec.cache else s("disk.cache")
        io = registry.coerce("disk.io", spec.io, where) if spec.io else s("disk.io")
        discard = registry.coerce("disk.discard", spec.discard, where) if spec.discard else s("disk.discard")
        if spec.path is not None:
            path = Path(spec.path).expanduser().absolute()
            if not path.exists():
                raise ConfigError(f"--disk path={spec.path}: no such file")
            block = stat.S_ISBLK(path.stat().st_mode)
            from .storage import image_info  # only existing images need qemu-img
            fmt = spec.format
            if fmt is None:
                fmt = image_info(str(path)).get("format", "raw") if req.inspect_images else "qcow2"
            if fmt not in ("qcow2", "raw"):
                raise ConfigError(f"--disk path={spec.path}: format {fmt!r} is not supported (qcow2 or raw)")
            encrypted = False
            if req.inspect_images and fmt == "qcow2" and not block:
                encrypted = bool(image_info(str(path)).get("encrypted"))
            plans.append(DiskPlan(str(path), fmt, None, bus, cache, io, discard, encrypted, block))
        else:
            fmt = registry.coerce("disk.format", spec.format, where) if spec.format else s("disk.format")
            suffix = "" if i == 0 else f"-{i}"
            path = image_dir / f"{req.name}{suffix}.{fmt}"
            encrypted = bool(s("disk.encryption")) and fmt == "qcow2"
            plans.append(DiskPlan(str(path), fmt, spec.size or s("disk.size"), bus, cache, io, discard, encrypted))
    return plans


def _net_plans(req: Request, settings: Settings, identity: Identity, catalog: Catalog) -> list[NetPlan]:
    specs = req.networks
    if specs is None:
        default = parse_network(settings.value("network.default"))
        specs = [default] if default else []
    plans = []
    for i, spec in enumerate(specs):
        model = catalog.registry.coerce("network.model", spec.model, " (--network)") if spec.model \
            else settings.value("network.model")
        mac = spec.mac or identity.mac(i)
        plans.append(NetPlan(spec.kind, spec.source, model, mac, spec.queues))
    return plans


def generate(req: Request, catalog: Optional[Catalog] = None) -> Generated:
    catalog = catalog or Catalog()
    from .names import check_vm_name
    check_vm_name(req.name)
    notes: list[Note] = []
    provided, settings = resolve_settings(catalog, req.scenario, req.config, req.cli_settings)
    settings = _adapt(settings, req.caps, notes)
    s = settings.value
    max_vcpus = (req.caps.max_vcpus if req.caps and req.caps.max_vcpus else OFFLINE_MAX_VCPUS)
    if s("vm.vcpus") > max_vcpus:
        where = "this hypervisor's q35" if req.caps else "q35"
        raise ConfigError(f"vm.vcpus={s('vm.vcpus')} exceeds the {max_vcpus} vCPUs {where} accepts")
    if s("vm.memory") < MIN_MEMORY:
        raise ConfigError(f"vm.memory={s('vm.memory') // MIB}MiB is too small (minimum 64MiB)")
    if req.host and req.host.memory_bytes and s("vm.memory") > req.host.memory_bytes:
        notes.append(Note("warning", f"vm.memory exceeds the host's {req.host.memory_bytes // MIB} MiB of RAM"))

    machine_answer = catalog.first("select_machine", caps=req.caps, settings=settings)
    machine = machine_answer[1] if machine_answer else s("vm.machine")
    ls_answer = catalog.first("select_launch_security", caps=req.caps, settings=settings)
    launch = ls_answer[1] if ls_answer else "none"
    if launch != "none":
        needed = LAUNCH_SECURITY_MIN_LIBVIRT[launch]
        if req.libvirt_version is not None and req.libvirt_version < needed:
            raise VirtscenarioError(f"launch security {launch} needs libvirt >= {version_text(needed)}; "
                                    f"this libvirt is {version_text(req.libvirt_version)}")

    vm_dir = req.store_root / req.name
    identity = req.identity or Identity.new()
    disks = _disk_plans(req, settings, catalog, vm_dir, notes)
    nets = _net_plans(req, settings, identity, catalog)
    share_dir = None
    if s("filesystem.share"):
        share_dir = str(Path(s("filesystem.source_dir")).expanduser().absolute()) if s("filesystem.source_dir") \
            else str((vm_dir / "share").absolute())
    cdrom = None
    if req.cdrom:
        cd = Path(req.cdrom).expanduser().absolute()
        if not cd.is_file():
            raise ConfigError(f"--cdrom {req.cdrom}: no such file")
        cdrom = str(cd)

    ctx = BuildContext(scenario=provided.scenario, vm_name=req.name, plugin=provided.distribution,
                       caps=req.caps, host=req.host, libvirt_version=req.libvirt_version, vm_dir=vm_dir,
                       notes=notes)
    domain = build_domain(settings, ctx, identity, disks, nets, cdrom, machine, launch, share_dir)
    catalog.call("customize_model", domain=domain, settings=settings, context=ctx)
    _check_rules(catalog, domain, settings, notes)

    from .render import render_domain, to_bytes
    from .validate import validate_tree
    root = render_domain(domain)
    catalog.call("postprocess_xml", root=root, settings=settings, context=ctx)
    validated = validate_tree(root, req.schema)
    if not validated:
        notes.append(Note("warning", "libvirt's RelaxNG schemas are not installed: XML not schema-validated "
                          "(Debian: libvirt0; SUSE: libvirt-libs; Fedora: libvirt-libs)"))
    xml = to_bytes(root)
    reqs = _host_requirements(settings, domain, ctx, req)
    notes.extend(n for n in catalog.notes if n not in notes)
    return Generated(provided, settings, domain, xml, disks, identity, notes, vm_dir, share_dir, reqs, validated)


def _check_rules(catalog: Catalog, domain: Domain, settings: Settings, notes: list[Note]) -> None:
    errors: list[str] = []
    failed: list[str] = []
    for plugin, rule in catalog.rules:
        try:
            problems = list(rule.check(domain, settings))
        except Exception as exc:  # noqa: BLE001 - a plugin bug becomes one line naming the rule
            raise VirtscenarioError(f"rule {rule.name!r} of plugin {plugin!r} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
        for problem in problems:
            text = f"{problem} [rule {rule.name}: {rule.explanation}; see {rule.reference}]"
            if rule.severity == "error":
                errors.append(text)
                failed.append(rule.name)
            else:
                notes.append(Note("warning", text, plugin))
    if errors:
        others = sorted({name for name in failed[1:] if name != failed[0]})
        more = f" (and {len(errors) - 1} more" + (f": {', '.join(others)})" if others else ")") \
            if len(errors) > 1 else ""
        raise ValidationError(f"{errors[0]}{more}", tuple(errors))


def _host_requirements(settings: Settings, domain: Domain, ctx: BuildContext, req: Request) -> list[HostRequirement]:
    """host.* choices, replaced by what hooks computed (require_host), plus the hugepage backing
    the final model uses (a hook may have changed the page size)."""
    chosen = {k: (item.value, item.rationale, item.reference) for k, item in settings.items()
              if k.startswith("host.") and item.value is not None}
    for choice in ctx.host_requirements:
        chosen[choice.key] = (choice.value, choice.rationale, choice.reference)
    for page in domain.memory_backing.hugepages[:1]:
        why = settings["memory.hugepages"]
        chosen["memory.hugepages"] = (True, why.rationale, why.reference)
        chosen["memory.hugepage_size"] = (page.size_kib * 1024, why.rationale, why.reference)
    return [HostRequirement(k, v, r, ref, req.scenario, req.name, domain.memory) for k, (v, r, ref) in chosen.items()]
