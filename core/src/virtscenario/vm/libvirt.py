"""Talking to a hypervisor: connect (with its capabilities), define and start a VM, its disks' secrets."""

from __future__ import annotations

import os
from dataclasses import field
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
                     passphrase: Optional[bytes] = None, keys: Optional[dict[str, bytes]] = None) -> Any:
    """Define (libvirt validates too) and optionally start; encrypted disks get their libvirt secret.

    A disk's secret value is ``keys[path]`` (what the store used for that image), else
    ``passphrase`` (from --passphrase-file), else the VM's ``disk.secret``.
    """
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        grant_qemu_search(conn, gen.domain.type, directory)
        define_secrets(conn, gen, directory, passphrase, keys)
        flags = getattr(libvirt, "VIR_DOMAIN_DEFINE_VALIDATE", 0)
        dom = conn.defineXMLFlags(gen.xml.decode(), flags)
        if start:
            dom.create()
        return dom
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt refused {gen.domain.name}: {libvirt_error_text(exc)}") from None


def qemu_ids(conn: Any, virt_type: str) -> Optional[tuple[int, int]]:
    """The uid and gid QEMU runs as on this connection (the DAC security model's base label), or None."""
    from lxml import etree
    try:
        caps = etree.fromstring(conn.getCapabilities().encode())
    except Exception:  # noqa: BLE001 - a driver without capabilities: nothing to adapt to
        return None
    for label in caps.iterfind("host/secmodel/baselabel"):
        if label.getparent().findtext("model") == "dac" and label.get("type") == virt_type:
            try:
                uid, gid = (int(part.lstrip("+")) for part in (label.text or "").split(":"))
            except ValueError:
                return None
            return uid, gid
    return None


def grant_qemu_search(conn: Any, virt_type: str, directory: Path) -> None:
    """QEMU running as another user (Debian: libvirt-qemu) must reach the images in the 0700 VM
    directory: give its group search permission only (0710; no listing, and the images stay 0600,
    libvirt hands them to QEMU's user at start)."""
    ids = qemu_ids(conn, virt_type)
    if ids is None or ids[0] in (0, os.geteuid()):
        return
    from .fsutil import DIR_FLAGS
    try:
        fd = os.open(directory, DIR_FLAGS)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and (st.st_gid != ids[1] or st.st_mode & 0o777 != 0o710):
            os.fchown(fd, -1, ids[1])
            os.fchmod(fd, 0o710)
    except OSError as exc:
        raise VirtscenarioError(f"cannot let QEMU (uid {ids[0]}, gid {ids[1]}) reach the images in {directory}: "
                                f"{exc.strerror}") from None
    finally:
        os.close(fd)


def define_secrets(conn: Any, gen: Generated, directory: Path, passphrase: Optional[bytes] = None,
                   keys: Optional[dict[str, bytes]] = None) -> list[str]:
    """Define the libvirt secret of every encrypted disk; returns their uuids."""
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    done = []
    for disk in gen.disks:
        if disk.encrypted:
            uuid = gen.identity.secret_uuid(disk.path)
            value = (keys or {}).get(disk.path, passphrase)
            try:
                if _define_secret(conn, uuid, disk.path, directory, value):
                    done.append(uuid)
            except libvirt.libvirtError as exc:
                raise LibvirtError(f"libvirt refused the secret for {disk.path}: {libvirt_error_text(exc)}") from None
    return done


def _define_secret(conn: Any, uuid: str, volume: str, directory: Path, passphrase: Optional[bytes]) -> bool:
    import click
    from lxml import etree

    from ..host.hypervisor import quiet_libvirt
    from .keys import KEY_FILE, MAX_PASSPHRASE
    libvirt = quiet_libvirt()
    if passphrase is None:
        from .fsutil import StoreError, read_at
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        try:
            passphrase = read_at(fd, KEY_FILE, MAX_PASSPHRASE, directory / KEY_FILE) if fd >= 0 else None
        except StoreError:
            passphrase = None
        finally:
            if fd >= 0:
                os.close(fd)
        if not passphrase:
            raise VirtscenarioError(f"no passphrase recorded for {volume}: define the libvirt secret {uuid} "
                                    "yourself (virsh secret-define; virsh secret-set-value --plain --file)")
    try:
        other = conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, volume)
        if other.UUIDString() != uuid:
            raise VirtscenarioError(f"libvirt already has secret {other.UUIDString()} for {volume}, left by an "
                                    f"earlier VM: remove it ('virsh secret-undefine {other.UUIDString()}', or "
                                    "'virtscenario delete' for a VM of the store)")
    except libvirt.libvirtError:
        pass
    except AttributeError:
        pass  # a connection object without secret lookups (tests' fakes)
    el = etree.Element("secret", ephemeral="no", private="yes")
    etree.SubElement(el, "uuid").text = uuid
    usage = etree.SubElement(el, "usage", type="volume")
    etree.SubElement(usage, "volume").text = volume
    try:
        secret = conn.secretDefineXML(etree.tostring(el).decode(), 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        # e.g. the test driver: the domain can still be defined, it only cannot open the image.
        click.echo(f"Warning: {conn.getURI()} has no secret driver: libvirt secret {uuid} for {volume} not "
                   "defined", err=True)
        return False
    secret.setValue(passphrase, 0)
    return True


#: libvirt's domain states (virDomainState), as virsh names them.
STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 5: "shut off",
          6: "crashed", 7: "suspended"}


def find_domain(conn: Any, uuid: str, name: str) -> Any:
    """The VM's domain: by uuid (a domain of the same name but another uuid is not this VM)."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        return conn.lookupByUUIDString(uuid) if uuid else conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise LibvirtError(f"cannot look up {name} on {conn.getURI()}: {exc.get_error_message()}") from None


def domain_state(conn: Any, uuid: str, name: str) -> str:
    dom = find_domain(conn, uuid, name)
    if dom is None:
        return "not defined"
    return STATES.get(dom.state()[0], "unknown")


@record
class Undefined(Record):
    domain: Optional[str] = None
    secrets: list[str] = field(default_factory=list)
    stopped: bool = False


def undefine_vm(conn: Any, uuid: str, name: str, secret_uuids: list[str], force: bool) -> Undefined:
    """Undefine the VM's domain with its NVRAM, TPM state, managed save and snapshot metadata, and
    remove the libvirt secrets of its disks. A running domain is refused unless ``force`` (then destroyed)."""
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    out = Undefined()
    uri = conn.getURI()
    dom = find_domain(conn, uuid, name)
    try:
        if dom is not None:
            if dom.isActive():
                if not force:
                    raise VirtscenarioError(f"VM {name!r} is running on {uri}: shut it down first, or pass --force "
                                            "to stop it")
                dom.destroy()
                out.stopped = True
            flags = 0
            for flag in ("VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_TPM", "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE",
                         "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA", "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA"):
                flags |= getattr(libvirt, flag, 0)
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                dom.undefine()  # a driver without NVRAM/TPM (the test driver): nothing of them to remove
            out.domain = dom.UUIDString()
        for secret_uuid in secret_uuids:
            try:
                conn.secretLookupByUUIDString(secret_uuid).undefine()
                out.secrets.append(secret_uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt refused to remove {name} on {uri}: {libvirt_error_text(exc)}") from None
    return out
