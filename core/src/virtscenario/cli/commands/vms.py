"""The VMs of the store: ``list``, ``show NAME``, ``delete NAME``.

``list --json``: ``[{"name", "scenario", "uuid", "directory", "host", "libvirt_uri", "state", "disks":
[{"path", "format", "size", "encrypted", "created", "exists", "pool", "volume"}], "error"}]``; ``host``
is the inventory host ``create --place`` chose (else null), ``libvirt_uri`` where the VM was created or
defined; ``state`` is the libvirt state with ``--connect`` (``"not defined"`` when libvirt has no such
domain), else null; ``exists`` is null for a volume of a pool on the VM's host (``pool``, ``volume``);
``error`` is null unless the VM's record cannot be read.

``show NAME --json``: ``{"name", "directory", "scenario", "scenario_version", "uuid", "macs", "host",
"libvirt_uri", "volumes", "state", "disks", "files": [{"name", "kind", "size", "mode", "target"}],
"settings": [{"key", "value", "layer", "origin", "source", "rationale", "reference"}]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import click

from ...errors import VirtscenarioError
from ..common import complete_vms

STORE_HELP = "Store root (default: the settings file's 'store', else /var/lib/virtscenario/vms as root, " \
             "$XDG_DATA_HOME/virtscenario/vms otherwise)."


def _root(output: Optional[str], config_file: Optional[str]) -> Path:
    from ...settings.userfile import load_config
    from ...vm.store import store_root
    return store_root(output, load_config(config_file).store if output is None else None)


def _connect(uri: Optional[str]) -> Any:
    if not uri:
        return None
    from ...host.hypervisor import open_connection
    return open_connection(uri)


def _disks(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded disks; a volume of a pool on the VM's host (``pool``) is not looked for here (exists: null)."""
    return [{"path": str(d.get("path")), "format": d.get("format"), "size": d.get("size"),
             "encrypted": bool(d.get("encrypted")), "created": bool(d.get("created", d.get("size") is not None)),
             "exists": None if d.get("pool") else os.path.lexists(str(d.get("path"))),
             **({"pool": d.get("pool"), "volume": d.get("volume")} if d.get("pool") else {})}
            for d in record.get("disks") or [] if isinstance(d, dict)]


def _host(record: dict[str, Any]) -> Optional[str]:
    """Where the VM lives: the inventory host create placed it on, else the libvirt URI it was created for."""
    uri = record.get("libvirt_uri")
    if record.get("host"):
        return f"{record['host']} ({uri})" if uri else str(record["host"])
    return str(uri) if uri else None


def _state(conn: Any, record: dict[str, Any], name: str) -> Optional[str]:
    if conn is None:
        return None
    from ...vm.libvirt import domain_state
    return domain_state(conn, str(record.get("uuid") or ""), name)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output (see 'virtscenario list --help').")
@click.option("--connect", metavar="URI", help="Also show each VM's state in this libvirt.")
@click.option("--output", type=click.Path(file_okay=False), help=STORE_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
def list_cmd(as_json: bool, connect: Optional[str], output: Optional[str], config_file: Optional[str]) -> None:
    """List the VMs of the store: scenario, disks, and libvirt state with --connect.

    \b
    JSON: [{"name", "scenario", "uuid", "directory", "host", "libvirt_uri", "state", "disks":
    [{"path", "format", "size", "encrypted", "created", "exists", "pool", "volume"}], "error"}]

    \b
    Examples:
      virtscenario list
      virtscenario list --connect qemu:///system --json
      virtscenario list --output ./vms
    """
    from ...vm.store import list_vm_names, load_record, open_root_checked
    root = _root(output, config_file)
    names = list_vm_names(root) if open_root_checked(root) else []
    conn = _connect(connect)
    rows = []
    for name in names:
        item: dict[str, Any] = {"name": name, "scenario": None, "uuid": None, "directory": str(root / name),
                                "host": None, "libvirt_uri": None, "state": None, "disks": [], "error": None}
        try:
            record = load_record(root / name) or {}
            item.update(scenario=record.get("scenario"), uuid=record.get("uuid"), disks=_disks(record),
                        host=record.get("host"), libvirt_uri=record.get("libvirt_uri"),
                        state=_state(conn, record, name))
        except VirtscenarioError as exc:
            item["error"] = str(exc)
        rows.append(item)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No VMs in {root}")
        return
    from ...units import format_size
    from ..output import table
    headers = ["NAME", "SCENARIO", "HOST", *(["STATE"] if conn is not None else []), "DISKS"]
    lines = []
    for r in rows:
        disks = ", ".join(f"{Path(d['path']).name} ({d['format']}"
                          f"{', ' + format_size(d['size']) if d['size'] else ''}"
                          f"{', LUKS' if d['encrypted'] else ''}"
                          f"{', pool ' + str(d['pool']) if d.get('pool') else '' if d['exists'] else ', missing'})"
                          for d in r["disks"]) or "-"
        host = r["host"] or (r["libvirt_uri"] if r["libvirt_uri"] else "-")
        lines.append([r["name"], r["scenario"] or "-", host, *([r["state"] or "-"] if conn is not None else []),
                      disks if not r["error"] else f"unreadable: {r['error']}"])
    click.echo(f"VMs in {root}:")
    click.echo(table(headers, lines))


@click.command("show")
@click.argument("name", shell_complete=complete_vms)
@click.option("--json", "as_json", is_flag=True, help="JSON output (see 'virtscenario show --help').")
@click.option("--connect", metavar="URI", help="Also show the VM's state in this libvirt.")
@click.option("--output", type=click.Path(file_okay=False), help=STORE_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
def show_cmd(name: str, as_json: bool, connect: Optional[str], output: Optional[str],
             config_file: Optional[str]) -> None:
    """Show one VM of the store: settings with their sources and reasons, files, libvirt state.

    \b
    JSON: {"name", "directory", "scenario", "scenario_version", "uuid", "macs", "host",
    "libvirt_uri", "volumes", "state", "disks", "files": [{"name", "kind", "size", "mode", "target"}],
    "settings": [{"key", "value", "layer", "origin", "source", "rationale", "reference"}]}

    \b
    Examples:
      virtscenario show vault
      virtscenario show vault --connect qemu:///system --json
      virtscenario show web1 --output ./vms
    """
    from ...vm.store import load_record, vm_dir, vm_files
    root = _root(output, config_file)
    directory = vm_dir(root, name)
    record = load_record(directory)
    if record is None:
        raise VirtscenarioError(f"no VM {name!r} in the store {root}")
    conn = _connect(connect)
    data: dict[str, Any] = {"name": name, "directory": str(directory), "scenario": record.get("scenario"),
            "scenario_version": record.get("scenario_version"), "uuid": record.get("uuid"),
            "macs": record.get("macs") or [], "host": record.get("host"), "libvirt_uri": record.get("libvirt_uri"),
            "volumes": record.get("volumes") or [],
            "state": _state(conn, record, name), "disks": _disks(record), "files": vm_files(directory),
            "settings": [{k: s.get(k) for k in ("key", "value", "layer", "origin", "source", "rationale",
                                                 "reference")}
                         for s in record.get("settings") or [] if isinstance(s, dict)]}
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from ..output import table
    click.echo(f"VM {name} in {directory}")
    click.echo(f"  scenario {data['scenario']} {data['scenario_version'] or ''}".rstrip())
    click.echo(f"  uuid {data['uuid']}; MACs {', '.join(map(str, data['macs'])) or '-'}")
    if data["host"]:
        click.echo(f"  host {_host(record)}")
    if data["state"] is not None:
        click.echo(f"  libvirt ({connect}): {data['state']}")
    elif data["libvirt_uri"]:
        click.echo(f"  {'lives' if data['volumes'] else 'defined'} on {data['libvirt_uri']} (pass --connect to see "
                   "its state)")
    click.echo("\nFiles:")
    click.echo(table(["NAME", "KIND", "SIZE", "MODE"],
                     [[f["name"] + (f" -> {f['target']}" if f.get("target") else ""), f["kind"], str(f["size"]),
                       f["mode"]] for f in data["files"]]))
    if data["volumes"]:
        click.echo(f"\nVolumes on {data['libvirt_uri']}:")
        from ...units import format_size
        click.echo(table(["POOL/VOLUME", "FORMAT", "SIZE", "LUKS", "PATH"],
                         [[f"{v.get('pool')}/{v.get('volume')}", str(v.get("format")),
                           format_size(int(v.get("capacity") or 0)), "yes" if v.get("secret") else "no",
                           str(v.get("path"))] for v in data["volumes"] if isinstance(v, dict)]))
    outside = [d for d in data["disks"] if Path(d["path"]).parent != directory and not d.get("pool")]
    if outside:
        click.echo("\nImages outside the VM directory:")
        click.echo(table(["PATH", "FORMAT", "EXISTS"], [[d["path"], str(d["format"]), "yes" if d["exists"]
                                                          else "no"] for d in outside]))
    click.echo("\nSettings:")
    click.echo(table(["KEY", "VALUE", "SOURCE", "WHY"],
                     [[str(s["key"]), _value(s["value"]), str(s["source"] or "-"),
                       f"{s['rationale'] or '-'}" + (f" [{s['reference']}]" if s.get("reference") else "")]
                      for s in data["settings"] if not (s["layer"] == "default" and s["value"] is None)]))


def _value(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return "-" if value is None else str(value)[:60]


@click.command("delete")
@click.argument("name", shell_complete=complete_vms)
@click.option("--connect", metavar="URI", help="Undefine the domain (with NVRAM and TPM state) and its disk "
              "secrets in this libvirt (default: where create defined it, as vm.yaml records).")
@click.option("--keep-images", is_flag=True, help="Keep the images (and volumes with their secrets), their key "
              "(disk.secret) and the share directory; remove only the VM's record.")
@click.option("--force", is_flag=True, help="Stop the domain first if it is running.")
@click.option("--store-only", is_flag=True, help="Do not ask libvirt; remove only the store entry.")
@click.option("--output", type=click.Path(file_okay=False), help=STORE_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
def delete_cmd(name: str, connect: Optional[str], keep_images: bool, force: bool, store_only: bool,
               output: Optional[str], config_file: Optional[str]) -> None:
    """Delete a VM: its libvirt domain and secrets, its volumes on its host, then its store entry, under the
    VM's lock. A VM made on another host (create --place, --pool) is removed there through the URI vm.yaml
    records.

    \b
    Examples:
      virtscenario delete vault --connect qemu:///system
      virtscenario delete vault --keep-images --store-only
      virtscenario delete web1 --force
    """
    from ...vm.lock import VmLock
    from ...vm.store import load_record, open_root, remove_vm, vm_dir
    if store_only and connect:
        raise click.UsageError("--store-only and --connect are exclusive")
    root = _root(output, config_file)
    directory = vm_dir(root, name)
    root_fd = open_root(root, create=False)
    if root_fd is None:
        raise VirtscenarioError(f"no VM {name!r} in the store {root} (it does not exist)")
    try:
        with VmLock(root_fd, root, name, "delete") as lock:
            if not os.path.lexists(directory):
                raise VirtscenarioError(f"no VM {name!r} in the store {root}")
            notes = []
            try:
                record = load_record(directory) or {}
            except VirtscenarioError as exc:
                record = {}
                notes.append(f"the VM's record is unreadable ({exc}); removing the directory anyway")
            uri = None if store_only else connect or record.get("libvirt_uri")
            if uri:
                from ...errors import LibvirtError
                from ...fleet.remote import delete_volumes, volume_secrets
                from ...vm.libvirt import undefine_vm
                # --keep-images keeps a volume's secret with it: without it the volume cannot be opened.
                keep = volume_secrets(record) if keep_images else set()
                secrets = [str(u) for u in (record.get("secrets") or {}).values() if str(u) not in keep]
                try:
                    conn = _connect(str(uri))
                except LibvirtError as exc:
                    hint = "" if connect else " (vm.yaml says create defined it there; --store-only removes only " \
                                              "the store entry)"
                    raise LibvirtError(f"{exc}{hint}") from None
                done = undefine_vm(conn, str(record.get("uuid") or ""), name, secrets, force)
                if done.stopped:
                    click.echo(f"Stopped {name} on {uri}")
                if done.domain:
                    click.echo(f"Undefined {name} on {uri} (with its NVRAM and TPM state)")
                for secret in done.secrets:
                    click.echo(f"Removed libvirt secret {secret} on {uri}")
                for line in [] if keep_images else delete_volumes(conn, record):
                    click.echo(line)
                # Networks 'create --create-network' made for this VM go too, unless another domain uses them.
                from ...vm.networks import CREATED_KEY, release_network
                for net in [str(x) for x in record.get(CREATED_KEY) or [] if isinstance(x, str)]:
                    _removed, message = release_network(conn, net, leaving=name)
                    click.echo(message[0].upper() + message[1:] + f" on {uri}")
            elif not store_only:
                notes.append("libvirt not asked (the VM was never defined by create; pass --connect URI if it "
                             "was defined elsewhere)")
            if record.get("volumes") and (store_only or keep_images):
                notes.append(f"its volumes stay on {record.get('libvirt_uri')}: "
                             + ", ".join(f"{v.get('pool')}/{v.get('volume')}" for v in record["volumes"]
                                         if isinstance(v, dict)))
            removed = remove_vm(directory, record, keep_images)
            lock.remove()
    finally:
        os.close(root_fd)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    for path in removed.removed:
        click.echo(f"Removed {path}")
    for path in removed.kept:
        click.echo(f"Kept {path}")
