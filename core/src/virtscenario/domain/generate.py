"""One VM from a scenario: resolve settings, adapt to the hypervisor, plan, build, check, render, validate.

Phases (docs/plugin-hooks.md has the diagram): resolve (register_scenarios,
register_settings, scenario_overrides; per-device ``--disk``/``--network`` values) ->
adapt -> select_machine, select_launch_security -> fit the firmware request (and the launch type)
to the host's firmware descriptors -> plan disks, NICs, share -> build
(every section) -> customize_model -> NUMA placement of the pinned vCPUs' memory -> domain_rules ->
render -> postprocess_xml ->
capability check (connected) -> RelaxNG validation.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError, ValidationError, VirtscenarioError
from ..records import Record, record
from ..settings.userfile import UserConfig
from ..types import HostRequirement, Note

if TYPE_CHECKING:  # pragma: no cover
    from ..host.facts import HostInfo
    from ..host.firmware import FirmwareSet
    from ..host.hypervisor import DomainCaps
    from ..host.root import HostRoot
    from ..plugin.hooks import Catalog, ProvidedScenario
    from ..settings.cliargs import FlagValue
    from ..settings.types import Settings
    from ..vm.identity import Identity
    from .bootargs import DirectBoot
    from .context import BuildContext
    from .model import Domain, VmPlan
    from .sections.disks import DiskArg, DiskPlan, ImagePlan, PoolTarget
    from .sections.hostdevs import HostDevArg
    from .sections.nics import NetArg


@record
class Request(Record):
    scenario: str
    name: str
    cli_settings: list[FlagValue] = field(default_factory=list)
    config: UserConfig = field(default_factory=UserConfig)
    disks: Optional[list[DiskArg]] = None  # None: one new disk from the settings
    networks: Optional[list[NetArg]] = None  # None: network.default
    cdrom: Optional[str] = None
    store_root: Path = Path(".")
    caps: Optional[DomainCaps] = None
    host: Optional[HostInfo] = None
    libvirt_version: Optional[int] = None
    #: The target host's firmware descriptors; None: not readable, ``firmware_unknown`` says why.
    firmware: Optional[FirmwareSet] = None
    firmware_unknown: str = ("offline: the host's firmware descriptors are unknown; --connect or --host-root DIR "
                "reads them")
    identity: Optional[Identity] = None
    schema: Optional[str] = None
    validate: bool = True  # False: no RelaxNG validation (a build for its host requirements only)
    inspect_images: bool = True
    hostdevs: list[HostDevArg] = field(default_factory=list)  # checked against the host by the caller
    direct_boot: Optional[DirectBoot] = None  # --boot kernel=,initrd=,cmdline=
    cloud_init: Optional[str] = None  # the --cloud-init option text
    host_root: Optional[HostRoot] = None  # where osinfo-db is read (--os); None: the real host
    #: The VM's host is reached through libvirt only (create --place / --pool): new disks are volumes of
    #: this pool there, and nothing may name a file of this machine.
    pool: Optional[PoolTarget] = None


@record
class Generated(Record):
    provided: ProvidedScenario
    settings: Settings
    domain: Domain
    xml: bytes
    plan: VmPlan
    images: list[ImagePlan]
    notes: list[Note]
    vm_dir: Path
    host_requirements: list[HostRequirement]
    validated: bool
    #: More keys for vm.yaml from the command that writes the VM (e.g. the networks it created).
    record_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def disks(self) -> list[DiskPlan]:
        return self.plan.disks

    @property
    def identity(self) -> Identity:
        return self.plan.identity

    @property
    def share_dir(self) -> Optional[str]:
        return self.plan.share_dir


def device_specs(disks: tuple[str, ...], networks: tuple[str, ...]) -> tuple[Any, Any]:
    """``--disk``/``--network`` options -> specs; None when the option was not given."""
    from .sections.disks import parse_disk
    from .sections.nics import parse_network
    disk_specs = net_specs = None
    if disks:
        disk_specs = [d for d in (parse_disk(x) for x in disks) if d is not None]
        if len(disk_specs) != len(disks) and len(disks) > 1:
            raise ConfigError("--disk none cannot be combined with other --disk options")
    if networks:
        net_specs = [n for n in (parse_network(x) for x in networks) if n is not None]
        if len(net_specs) != len(networks) and len(networks) > 1:
            raise ConfigError("--network none cannot be combined with other --network options")
    return disk_specs, net_specs


def generate(req: Request, catalog: Optional[Catalog] = None) -> Generated:
    from ..host.facts import version_text
    from ..plugin.hooks import Catalog
    from ..settings.resolve import resolve_scenario
    from ..vm.identity import Identity
    from ..vm.names import check_vm_name
    from .build import build_domain
    from .caps import adapt
    from .context import BuildContext
    from .model import VmPlan
    from .sections import disks, firmware, nics
    from .sections.security import LAUNCH_SECURITY_MIN_LIBVIRT

    catalog = catalog or Catalog()
    check_vm_name(req.name)
    notes: list[Note] = []
    provided, settings = resolve_scenario(catalog, req.scenario, req.config, req.cli_settings)
    devices = {}
    if req.disks:
        devices.update(disks.device_settings(req.disks, catalog.registry, settings))
    if req.networks:
        devices.update(nics.device_settings(req.networks, catalog.registry, settings))
    if devices:
        settings = settings.with_items(devices)
    # -- the guest OS (--os / os.id): OS-aware values below the user's, sizes against its minimum
    from .sections.guestos import adapt_for_os
    new_size = () if req.disks and req.disks[0].path else (int(settings.device_value("disks", 0, "size", "disk.size")),)
    settings, os_info = adapt_for_os(settings, req.host_root, notes, new_size)
    settings = adapt(settings, req.caps, notes)
    if req.hostdevs:
        from .sections.hostdevs import fit_usb_controller
        settings = fit_usb_controller(settings, list(req.hostdevs), notes)
    s = settings.value
    if req.host and req.host.memory_bytes and s("vm.memory") > req.host.memory_bytes:
        notes.append(Note("warning", f"vm.memory exceeds the host's {req.host.memory_bytes // 1024**2} MiB of RAM"))

    machine_answer = catalog.first("select_machine", caps=req.caps, settings=settings)
    machine = machine_answer[1] if machine_answer else s("vm.machine")
    ls_answer = catalog.first("select_launch_security", caps=req.caps, settings=settings)
    launch = ls_answer[1] if ls_answer else "none"
    if launch not in LAUNCH_SECURITY_MIN_LIBVIRT and launch != "none":
        raise VirtscenarioError(f"plugin {ls_answer[0] if ls_answer else '?'!r}: select_launch_security answered "
                                f"{str(launch)[:40]!r}, not one of none, {', '.join(LAUNCH_SECURITY_MIN_LIBVIRT)}")
    if launch != "none" and req.libvirt_version is not None and \
            req.libvirt_version < LAUNCH_SECURITY_MIN_LIBVIRT[launch]:
        raise VirtscenarioError(f"launch security {launch} needs libvirt >= "
                                f"{version_text(LAUNCH_SECURITY_MIN_LIBVIRT[launch])}; this libvirt is "
                                f"{version_text(req.libvirt_version)}")
    fitted = firmware.fit(settings, launch, machine, req.firmware, req.firmware_unknown, req.libvirt_version, notes)
    settings = firmware.settled(settings, fitted)

    vm_dir = req.store_root / req.name
    identity = req.identity or Identity.new()
    ctx = BuildContext(scenario=provided.scenario, vm_name=req.name, plugin=provided.distribution,
                       caps=req.caps, host=req.host, libvirt_version=req.libvirt_version, firmware=req.firmware,
                       vm_dir=vm_dir, notes=notes)
    if req.pool is not None:
        _only_remote_paths(req, settings)
    share_dir = None
    if s("filesystem.share") and req.pool is not None:
        share_dir = str(s("filesystem.source_dir"))  # a directory of the VM's host, checked there
    elif s("filesystem.share"):
        share_dir = str(Path(s("filesystem.source_dir")).expanduser().absolute()) if s("filesystem.source_dir") \
            else str((vm_dir / "share").absolute())
    cdrom = None
    if req.cdrom:
        cd = Path(req.cdrom).expanduser().absolute()
        if not cd.is_file():
            raise ConfigError(f"--cdrom {req.cdrom}: no such file")
        cdrom = str(cd)
    seed = None
    if req.cloud_init is not None:
        from ..vm.cloudinit import plan_seed
        seed = plan_seed(req.cloud_init, vm_dir, req.name, identity.uuid)
        notes.extend(Note("warning", w) for w in seed.warnings)
    plan = VmPlan(identity=identity, machine=machine, launch_security=fitted.launch_security, firmware=fitted,
                  disks=disks.plan_disks(req.disks, settings, vm_dir, req.name, req.inspect_images, req.pool),
                  nets=nics.plan_nets(req.networks, settings, identity, ctx), cdrom=cdrom, share_dir=share_dir,
                  hostdevs=list(req.hostdevs), direct_boot=req.direct_boot, seed=seed,
                  os_uri=os_info.uri if os_info else None)
    domain = build_domain(settings, ctx, plan)
    images = disks.plan_images(plan.disks, settings, ctx)
    catalog.call("customize_model", domain=domain, settings=settings, context=ctx)
    settings = _adapted(settings, ctx, catalog)
    from .sections import numa
    numa.place(domain, settings, ctx)  # memory follows the vCPUs, whoever pinned them
    _check_rules(catalog, domain, settings, notes)

    from .render import render_domain, to_bytes
    root = render_domain(domain)
    catalog.call("postprocess_xml", root=root, settings=settings, context=ctx)
    if req.caps is not None:
        from .caps import problems
        found = problems(root, req.caps)
        if found:
            more = f" (and {len(found) - 1} more: {'; '.join(found[1:])})" if len(found) > 1 else ""
            raise VirtscenarioError(f"{found[0]}{more}")
    xml = to_bytes(root)
    validated = req.validate and _validate(root, xml, req.schema, catalog, domain, settings, ctx)
    if req.validate and not validated:
        notes.append(Note("warning", "libvirt's RelaxNG schemas are not installed: XML not schema-validated "
                          "(Debian: libvirt0; SUSE: libvirt-libs; Fedora: libvirt-libs)"))
    reqs = _host_requirements(settings, domain, ctx, req)
    notes.extend(n for n in catalog.notes if n not in notes)
    return Generated(provided, settings, domain, xml, plan, images, notes, vm_dir, reqs, validated)


def _adapted(settings: Settings, ctx: BuildContext, catalog: Catalog) -> Settings:
    """Settings with what customize_model hooks adapted in the model (``context.adapt_setting``), layer ``adapted``."""
    for choice, source in ctx.adapted:
        if choice.key not in settings:
            raise VirtscenarioError(f"{source}: adapt_setting({choice.key!r}): no such setting")
        value = catalog.registry.coerce(choice.key, choice.value, where=f" (adapted by {source})")
        settings = settings.replace(choice.key, value, f"adapted by {source}", choice.rationale, choice.reference,
                                    layer="adapted", origin=source)
    return settings


def _only_remote_paths(req: Request, settings: Settings) -> None:
    """A VM whose host is reached through libvirt only cannot use files of this machine: each is one line."""
    host = req.pool.host if req.pool is not None and req.pool.host else "the VM's host"
    cannot = f"a file on this machine, which {host} cannot open"
    if req.cdrom:
        raise ConfigError(f"--cdrom {req.cdrom}: {cannot} (put the ISO in a storage pool there and attach it with "
                          "'virsh attach-disk' after create)")
    if req.cloud_init is not None:
        raise ConfigError(f"--cloud-init: the seed ISO would be {cannot}")
    if req.direct_boot is not None:
        raise ConfigError(f"--boot kernel=: the kernel and initrd would be {cannot}")
    if settings.value("filesystem.share"):
        source = settings.value("filesystem.source_dir")
        if not source or not str(source).startswith("/"):
            raise ConfigError(f"filesystem.share: the shared directory must exist on {host}: create it there and "
                              "give its absolute path with --set filesystem.source_dir=DIR (or "
                              "--set filesystem.share=off)")


def _validate(root: Any, xml: bytes, schema: Optional[str], catalog: Catalog, domain: Domain, settings: Settings,
              ctx: BuildContext) -> bool:
    """RelaxNG validation; an invalid document is blamed on the postprocess_xml plugin that broke it."""
    from .validate import validate_tree
    try:
        return validate_tree(root, schema, document=xml)
    except ValidationError as exc:
        culprit = _postprocess_culprit(catalog, domain, settings, ctx, schema)
        if culprit:
            raise ValidationError(f"plugin {culprit!r} (postprocess_xml) made the domain XML invalid: {exc}",
                                  exc.problems) from None
        raise


def _postprocess_culprit(catalog: Catalog, domain: Domain, settings: Settings, ctx: BuildContext,
                         schema: Optional[str]) -> Optional[str]:
    """Re-run postprocess_xml one implementation at a time on a fresh tree (failure path only)."""
    from .render import render_domain
    from .validate import validate_tree
    tree = render_domain(domain)
    if not _valid(validate_tree, tree, schema):
        return None
    for impl in reversed(catalog.pm.hook.postprocess_xml.get_hookimpls()):
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            impl.function(**{k: {"root": tree, "settings": settings, "context": ctx}[k] for k in impl.argnames})
        except Exception:  # noqa: BLE001 - a failing hook is diagnosed by the real call, not here
            return impl.plugin_name
        if not _valid(validate_tree, tree, schema):
            return impl.plugin_name
    return None


def _valid(validate_tree: Any, tree: Any, schema: Optional[str]) -> bool:
    try:
        validate_tree(tree, schema)
        return True
    except ValidationError:
        return False


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
