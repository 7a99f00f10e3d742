"""The ``create`` and ``validate`` commands: orchestration, store writes, libvirt define/start."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Optional

import click

from .errors import ConfigError, LibvirtError, VirtscenarioError

DEFAULT_URI = "qemu:///system"


def _connect(uri: str) -> tuple[Any, Any, Any, int]:
    """(connection, caps, host, libvirt version) for ``uri``."""
    from .caps import fetch, open_connection
    conn = open_connection(uri)
    caps, host = fetch(conn)
    return conn, caps, host, conn.getLibVersion()


def run_create(ctx: click.Context, o: dict[str, Any]) -> None:
    from .build import Identity
    from .catalog import Catalog
    from .cli import _parse_sets, _print_notes, host_root_of
    from .config import load_config
    from .hostinfo import local_libvirt_version, read_host
    from .names import check_vm_name
    from .pipeline import Request, generate
    from .specs import parse_disk, parse_network
    from .store import load_identity, store_root, vm_dir

    name = check_vm_name(o["name"])
    if o["print_xml"] and o["dry_run"]:
        raise click.UsageError("--print-xml and --dry-run are exclusive")
    cli_values = []
    for flag, key in (("vcpus", "vm.vcpus"), ("memory", "vm.memory"), ("virt_type", "vm.virt_type")):
        if o[flag] is not None:
            cli_values.append((key, o[flag], "--" + flag.replace("_", "-")))
    cli_values += _parse_sets(o["sets"])
    config = load_config(o["config_file"])
    disks = None
    if o["disks"]:
        disks = [d for d in (parse_disk(x) for x in o["disks"]) if d is not None]
        if len(disks) != len(o["disks"]) and len(o["disks"]) > 1:
            raise ConfigError("--disk none cannot be combined with other --disk options")
    networks = None
    if o["networks"]:
        networks = [n for n in (parse_network(x) for x in o["networks"]) if n is not None]
        if len(networks) != len(o["networks"]) and len(o["networks"]) > 1:
            raise ConfigError("--network none cannot be combined with other --network options")
    root = store_root(o["output"], config.store)
    directory = vm_dir(root, name)
    existing = load_identity(directory)
    writes = not (o["print_xml"] or o["dry_run"])
    if (directory / "vm.yaml").exists() and not o["force"] and writes:
        raise VirtscenarioError(f"VM {name!r} already exists in {root} (use --force to regenerate it; "
                                "its uuid, MACs and images are kept)")

    conn = caps = host = None
    version = None
    uri = o["connect"]
    if uri:
        conn, caps, host, version = _connect(uri)
    else:
        version = local_libvirt_version()
    host_root = host_root_of(ctx)
    if host is None and host_root.is_fake:
        host = read_host(host_root)

    catalog = Catalog()
    req = Request(scenario=o["scenario"], name=name, cli_settings=cli_values, config=config, disks=disks,
                  networks=networks, cdrom=o["cdrom"], store_root=root, caps=caps, host=host,
                  libvirt_version=version, identity=existing or Identity.new())
    gen = generate(req, catalog)
    if uri and caps is None:
        gen.notes.append(_note("this driver reports no domain capabilities: generated as offline"))
    for line in config.notes:
        gen.notes.append(_note(f"{config.path}: {line}"))

    if o["print_xml"]:
        _print_notes(gen.notes)
        click.echo(gen.xml.decode(), nl=False)
        return

    from .storage import image_options
    plans = [(d, image_options(d.format, gen.settings)) for d in gen.disks if d.create]
    for _disk, opts in plans:
        for text in opts.notes:
            gen.notes.append(_note(text))
    plan_changes = _host_plan(catalog, gen, host_root)

    if o["dry_run"]:
        _print_notes(gen.notes)
        click.echo(f"Would write {directory / 'domain.xml'} and {directory / 'vm.yaml'}")
        for disk, opts in plans:
            exists = Path(disk.path).exists()
            verb = "Would keep existing image" if exists else "Would create image"
            extra = f" ({', '.join(opts.options)})" if opts.options else ""
            enc = " LUKS-encrypted" if opts.encrypt else ""
            click.echo(f"{verb} {disk.path}: {disk.format}{enc}, {disk.size} bytes{extra}")
        if gen.share_dir:
            click.echo(f"Would create shared directory {gen.share_dir}")
        if o["define"] or o["start"]:
            click.echo(f"Would {'define and start' if o['start'] else 'define'} {name} on {uri or DEFAULT_URI}")
        _print_settings(gen, catalog)
        _print_plan(plan_changes)
        return

    created = _write_vm(gen, o, directory, name)
    _print_notes(gen.notes)
    click.echo(f"Wrote {directory / 'domain.xml'}")
    click.echo(f"Wrote {directory / 'vm.yaml'}")
    for path in created:
        click.echo(f"Created image {path}")
    given = _read_passphrase_file(o["passphrase_file"]) if o["passphrase_file"] else None
    if o["define"] or o["start"]:
        if conn is None:
            conn, _c, _h, _v = _connect(DEFAULT_URI)
        define_and_start(conn, gen, directory, o["start"], given)
        click.echo(f"{'Started' if o['start'] else 'Defined'} {name} on {conn.getURI()}")
    elif conn is not None and any(d.encrypted for d in gen.disks):
        # Connected but not defining: still give libvirt the disk secrets, so a later
        # 'virsh define domain.xml' finds them.
        for uuid in define_secrets(conn, gen, directory, given):
            click.echo(f"Defined libvirt secret {uuid} on {conn.getURI()}")
    _print_settings(gen, catalog)
    _print_plan(plan_changes)


def _note(message: str, level: str = "info") -> Any:
    from .types import Note
    return Note(level, message)  # type: ignore[arg-type]


def _write_vm(gen: Any, o: dict[str, Any], directory: Path, name: str) -> list[str]:
    """Images first (removed again if anything later fails), then domain.xml and vm.yaml atomically."""
    from . import __version__
    from .storage import create_image, image_options
    from .store import atomic_write, dump_yaml
    created: list[str] = []
    made_dir = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        passphrase: Optional[bytes] = None
        for disk in gen.disks:
            if not disk.create:
                continue
            path = Path(disk.path)
            if path.exists():
                gen.notes.append(_note(f"kept existing image {path} (remove it to recreate)"))
                continue
            opts = image_options(disk.format, gen.settings)
            if opts.encrypt and passphrase is None:
                passphrase = _passphrase(o["passphrase_file"], directory)
            create_image(path, disk.size, opts, passphrase)
            created.append(str(path))
        if gen.share_dir:
            Path(gen.share_dir).mkdir(parents=True, exist_ok=True)
        record = {
            "name": name,
            "scenario": gen.provided.scenario.name,
            "scenario_version": gen.provided.scenario.version,
            "plugin": gen.provided.distribution,
            "core_version": __version__,
            "uuid": gen.identity.uuid,
            "macs": list(gen.identity.macs),
            "secrets": dict(gen.identity.secret_uuids),
            "memory_bytes": gen.domain.memory,
            "disks": [{"path": d.path, "format": d.format, "size": d.size, "encrypted": d.encrypted}
                      for d in gen.disks],
            "host_requirements": [{"key": r.key, "value": r.value} for r in gen.host_requirements],
            "settings": [{"key": k, "value": gen.settings[k].value, "source": gen.settings[k].source}
                         for k in sorted(gen.settings)],
            "notes": [n.message for n in gen.notes],
        }
        atomic_write(directory / "domain.xml", gen.xml)
        atomic_write(directory / "vm.yaml", dump_yaml(record))
    except BaseException:
        for made in created:
            try:
                os.unlink(made)
            except OSError:
                pass
        if made_dir:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return created


def _read_passphrase_file(path: str) -> bytes:
    data = Path(path).read_bytes().rstrip(b"\n")
    if not data:
        raise ConfigError(f"--passphrase-file {path} is empty")
    return data


def _passphrase(passphrase_file: Optional[str], directory: Path) -> bytes:
    from .store import atomic_write
    if passphrase_file:
        return _read_passphrase_file(passphrase_file)
    from .storage import new_passphrase
    secret = new_passphrase()
    # Same protection as libvirt's own secret store (/etc/libvirt/secrets, 0600 root).
    atomic_write(directory / "disk.secret", secret, mode=0o600)
    return secret


def define_and_start(conn: Any, gen: Any, directory: Path, start: bool, passphrase: Optional[bytes] = None) -> Any:
    """Define (with schema validation) and optionally start; encrypted disks get their libvirt secret.

    The secret value is ``passphrase`` (from --passphrase-file) or the VM's ``disk.secret``.
    """
    from .caps import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        define_secrets(conn, gen, directory, passphrase)
        flags = getattr(libvirt, "VIR_DOMAIN_DEFINE_VALIDATE", 0)
        dom = conn.defineXMLFlags(gen.xml.decode(), flags)
        if start:
            dom.create()
        return dom
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt refused {gen.domain.name}: {libvirt_error_text(exc)}") from None


def define_secrets(conn: Any, gen: Any, directory: Path, passphrase: Optional[bytes] = None) -> list[str]:
    """Define the libvirt secret of every encrypted disk; returns their uuids."""
    from .caps import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    done = []
    for disk in gen.disks:
        if disk.encrypted:
            uuid = gen.identity.secret_uuid(disk.path)
            try:
                if _define_secret(conn, uuid, disk.path, directory, passphrase):
                    done.append(uuid)
            except libvirt.libvirtError as exc:
                raise LibvirtError(f"libvirt refused the secret for {disk.path}: {libvirt_error_text(exc)}") from None
    return done


def _define_secret(conn: Any, uuid: str, volume: str, directory: Path, passphrase: Optional[bytes]) -> bool:
    from lxml import etree
    secret_file = directory / "disk.secret"
    if passphrase is None and not secret_file.exists():
        raise VirtscenarioError(f"no passphrase recorded for {volume}: define the libvirt secret {uuid} yourself "
                                "(virsh secret-define; virsh secret-set-value --file)")
    el = etree.Element("secret", ephemeral="no", private="yes")
    etree.SubElement(el, "uuid").text = uuid
    usage = etree.SubElement(el, "usage", type="volume")
    etree.SubElement(usage, "volume").text = volume
    from .caps import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        secret = conn.secretDefineXML(etree.tostring(el).decode(), 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        # e.g. the test driver: the domain can still be defined, it only cannot open the image.
        click.echo(f"Warning: {conn.getURI()} has no secret driver: libvirt secret {uuid} for {volume} not "
                   "defined", err=True)
        return False
    secret.setValue(passphrase if passphrase is not None else secret_file.read_bytes(), 0)
    return True


def _host_plan(catalog: Any, gen: Any, host_root: Any) -> list[Any]:
    if not gen.host_requirements:
        return []
    return catalog.host_plan(gen.host_requirements, host_root)


def _print_settings(gen: Any, catalog: Any) -> None:
    from .output import settings_rows, table
    rows = settings_rows(gen.settings, catalog.registry, only_decided=True)
    click.echo(f"\nSettings of {gen.domain.name} (scenario {gen.provided.scenario.name} "
               f"{gen.provided.scenario.version}):")
    click.echo(table(["KEY", "VALUE", "SOURCE", "WHY"], [[r[0], r[1], r[2], f"{r[3]} [{r[4]}]"] for r in rows]))


def _print_plan(changes: list[Any]) -> None:
    if not changes:
        return
    from .output import table
    click.echo("\nHost plan (not applied; see 'virtscenario host apply'):")
    rows = [[c.knob, c.current or "-", c.target, ("reboot; " if c.reboot_required and c.needed else "") +
             (f"{c.conflict}; " if c.conflict else "") + c.reason] for c in changes]
    click.echo(table(["KNOB", "CURRENT", "TARGET", "WHY"], rows))


def run_validate(file: str, connect: Optional[str], schema: Optional[str]) -> None:
    from lxml import etree

    from .validate import schema_path, validate_tree
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"{file}: no such file")
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{file}: not well-formed XML ({exc})") from None
    if not validate_tree(root, schema, what=file):
        click.echo(f"Warning: schema {schema_path(schema)} is not installed; only well-formedness was checked",
                   err=True)
    else:
        click.echo(f"{file}: valid against {schema_path(schema)}")
    if connect:
        _conn, caps, _host, _version = _connect(connect)
        if caps is None:
            click.echo(f"Warning: {connect} reports no domain capabilities; hypervisor checks skipped", err=True)
            return
        problems = check_against_caps(root, caps)
        if problems:
            raise VirtscenarioError(f"{file}: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                 if len(problems) > 1 else ""))
        click.echo(f"{file}: accepted by the capabilities of {connect}")


def check_against_caps(root: Any, caps: Any) -> list[str]:
    """What a domain XML asks for that the hypervisor does not offer."""
    problems = []
    if root.get("type") == "kvm" and not caps.kvm_available:
        problems.append("domain type kvm, but KVM is not available (use type qemu)")
    machine = root.findtext("os/type[@machine]") and root.find("os/type").get("machine")
    if machine and caps.machines and machine not in caps.machines:
        problems.append(f"machine {machine!r} is not offered (newest q35: {caps.machine})")
    ls = root.find("launchSecurity")
    if ls is not None:
        from .default_plugins.choices import offered_launch_security
        kind = ls.get("type")
        offered = offered_launch_security(caps)
        if kind not in offered and not (kind == "sev" and "sev-es" in offered):
            problems.append(f"launch security {kind} is not supported (supported: {', '.join(offered) or 'none'})")
    for tpm in root.findall("devices/tpm"):
        if caps.tpm_models and tpm.get("model") not in caps.tpm_models:
            problems.append(f"TPM model {tpm.get('model')} is not supported")
        backend = tpm.find("backend")
        if backend is not None and caps.tpm_backends and backend.get("type") not in caps.tpm_backends:
            problems.append(f"TPM backend {backend.get('type')} is not supported")
    fw = root.find("os").get("firmware") if root.find("os") is not None else None
    if fw and fw not in caps.firmware:
        problems.append(f"firmware {fw} is not offered")
    return problems
