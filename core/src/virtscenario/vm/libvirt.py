"""Talking to a hypervisor: connect (with its capabilities), define and start a VM, its disks' secrets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import LibvirtError, VirtscenarioError
from ..records import Record, record

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.generate import Generated
    from ..host.facts import HostInfo
    from ..host.hypervisor import DomainCaps

DEFAULT_URI = "qemu:///system"


@record
class Hypervisor(Record):
    """An open connection with what the pipeline needs from it."""

    uri: str
    conn: Any
    caps: Optional[DomainCaps]
    host: Optional[HostInfo]
    version: int


def connect(uri: str) -> Hypervisor:
    from ..host.hypervisor import fetch, open_connection
    conn = open_connection(uri)
    caps, host = fetch(conn)
    return Hypervisor(uri, conn, caps, host, conn.getLibVersion())


def define_and_start(conn: Any, gen: Generated, directory: Path, start: bool,
                     passphrase: Optional[bytes] = None) -> Any:
    """Define (libvirt validates too) and optionally start; encrypted disks get their libvirt secret.

    The secret value is ``passphrase`` (from --passphrase-file) or the VM's ``disk.secret``.
    """
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
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


def define_secrets(conn: Any, gen: Generated, directory: Path, passphrase: Optional[bytes] = None) -> list[str]:
    """Define the libvirt secret of every encrypted disk; returns their uuids."""
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
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
    import click
    from lxml import etree

    from ..host.hypervisor import quiet_libvirt
    from .store import SECRET_FILE
    secret_file = directory / SECRET_FILE
    if passphrase is None and not secret_file.exists():
        raise VirtscenarioError(f"no passphrase recorded for {volume}: define the libvirt secret {uuid} yourself "
                                "(virsh secret-define; virsh secret-set-value --file)")
    el = etree.Element("secret", ephemeral="no", private="yes")
    etree.SubElement(el, "uuid").text = uuid
    usage = etree.SubElement(el, "usage", type="volume")
    etree.SubElement(usage, "volume").text = volume
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
