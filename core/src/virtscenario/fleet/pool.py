"""Disk volumes through a host's storage pool API: how a remote host gets its VM's disks.

``virStoragePoolCreateXML`` runs ``qemu-img`` on the host that owns the pool, so
nothing here touches a local file. An encrypted volume is qcow2 with LUKS inside
(``<encryption format='luks'>``, formatstorageencryption.html); its passphrase is a
libvirt secret defined on *that* host (``private='yes'``: libvirt never hands the
value back) before the volume is created, because libvirt reads it from there to
format the volume, and QEMU reads it from there to open the disk.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ConfigError, LibvirtError, VirtscenarioError

LUKS_RETRIES = 5
#: qemu-img 7.2 fails LUKS creation now and then on fast machines (its pbkdf benchmark measures 0 ms);
#: libvirt passes qemu-img's message through.
FLAKY_LUKS = "Unable to get accurate CPU usage"
FILE_POOLS = ("dir", "fs", "netfs")  # pools whose volumes are files at <target path>/<name>


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    capacity: int  # bytes
    format: str = "qcow2"  # qcow2 or raw
    encrypt: bool = False
    preallocation: str = "off"  # disk.preallocation: qcow2 off|metadata, raw off|falloc|full
    lazy_refcounts: bool = False
    cluster_size: Optional[int] = None  # bytes (libvirt >= 7.4 <clusterSize>)


@dataclass(frozen=True)
class Volume:
    pool: str
    name: str
    path: str
    format: str
    capacity: int
    secret_uuid: Optional[str]


def volume_xml(spec: VolumeSpec, secret_uuid: Optional[str] = None) -> str:
    """The ``<volume>`` document for ``virStoragePoolCreateXML`` (storagevol.rng)."""
    from lxml import etree
    if spec.format not in ("qcow2", "raw"):
        raise ConfigError(f"volume format {spec.format!r}: qcow2 or raw")
    if spec.encrypt and spec.format != "qcow2":
        raise ConfigError("an encrypted volume must be qcow2 (LUKS inside qcow2)")
    if spec.encrypt and not secret_uuid:
        raise ConfigError("an encrypted volume needs the uuid of its libvirt secret")
    allowed = ("off", "metadata") if spec.format == "qcow2" else ("off", "falloc", "full")
    if spec.preallocation not in allowed:
        raise ConfigError(f"preallocation={spec.preallocation} of a {spec.format} volume: the pool API offers "
                          f"{', '.join(allowed)}")
    vol = etree.Element("volume")
    etree.SubElement(vol, "name").text = spec.name
    etree.SubElement(vol, "capacity", unit="bytes").text = str(spec.capacity)
    # raw: libvirt allocates <allocation> bytes of the file (fallocate); qcow2 metadata is a create flag
    full = spec.format == "raw" and spec.preallocation in ("falloc", "full")
    etree.SubElement(vol, "allocation", unit="bytes").text = str(spec.capacity if full else 0)
    target = etree.SubElement(vol, "target")
    etree.SubElement(target, "format", type=spec.format)
    if spec.format == "qcow2":
        etree.SubElement(target, "compat").text = "1.1"
        if spec.cluster_size:
            etree.SubElement(target, "clusterSize", unit="B").text = str(spec.cluster_size)
        if spec.lazy_refcounts:
            etree.SubElement(etree.SubElement(target, "features"), "lazy_refcounts")
    if spec.encrypt:
        enc = etree.SubElement(target, "encryption", format="luks")
        etree.SubElement(enc, "secret", type="passphrase", uuid=secret_uuid or "")
    return etree.tostring(vol, encoding="unicode")


def create_flags(spec: VolumeSpec) -> int:
    """VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA (1) for qcow2 metadata preallocation."""
    return 1 if spec.format == "qcow2" and spec.preallocation == "metadata" else 0


def secret_xml(secret_uuid: str, volume_path: str, description: str = "") -> str:
    from lxml import etree
    el = etree.Element("secret", ephemeral="no", private="yes")
    if description:
        etree.SubElement(el, "description").text = description
    etree.SubElement(el, "uuid").text = secret_uuid
    usage = etree.SubElement(el, "usage", type="volume")
    etree.SubElement(usage, "volume").text = volume_path
    return etree.tostring(el, encoding="unicode")


def lookup_pool(conn: Any, name: str) -> Any:
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    uri = conn.getURI()
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise LibvirtError(f"{uri}: storage pool {name!r}: {libvirt_error_text(exc)}") from None
        try:
            have = sorted(conn.listStoragePools() + conn.listDefinedStoragePools())
        except libvirt.libvirtError:
            have = []
        raise ConfigError(f"{uri} has no storage pool {name!r} (pools: {', '.join(have) or 'none'}; "
                          f"--pool NAME, or virsh -c {uri} pool-define-as ...)") from None
    if not pool.isActive():
        raise VirtscenarioError(f"storage pool {name!r} on {uri} is not active (virsh -c {uri} pool-start {name})")
    return pool


def pool_target(pool: Any) -> tuple[str, Optional[str]]:
    """(pool type, its target directory) from the pool's XML."""
    from .facts import _root
    root = _root(pool.XMLDesc(0))
    return root.get("type") or "", (root.findtext("target/path") or "").strip() or None


def create_volume(conn: Any, pool_name: str, spec: VolumeSpec, passphrase: Optional[bytes] = None,
                  secret_uuid: Optional[str] = None) -> Volume:
    """Create ``spec`` in ``pool_name`` on ``conn``'s host; returns where it is.

    Refuses an existing volume. With ``spec.encrypt`` the passphrase becomes a libvirt
    secret on that host (``secret_uuid`` or a new uuid), removed again if the volume
    cannot be created.
    """
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    uri = conn.getURI()
    pool = lookup_pool(conn, pool_name)
    try:
        pool.refresh(0)  # a file someone made since the pool started must be seen, not overwritten
    except libvirt.libvirtError:
        pass
    try:
        pool.storageVolLookupByName(spec.name)
        raise VirtscenarioError(f"volume {spec.name!r} already exists in pool {pool_name!r} on {uri}; "
                                "refusing to overwrite it")
    except libvirt.libvirtError:
        pass
    secret = None
    if spec.encrypt:
        if not passphrase:
            raise ConfigError("an encrypted volume needs a passphrase")
        kind, directory = pool_target(pool)
        if kind not in FILE_POOLS or not directory:
            raise ConfigError(f"pool {pool_name!r} on {uri} is a {kind} pool: encrypted volumes need a "
                              f"file pool ({', '.join(FILE_POOLS)})")
        secret_uuid = secret_uuid or str(uuidlib.uuid4())
        path = f"{directory.rstrip('/')}/{spec.name}"
        try:
            secret = conn.secretDefineXML(secret_xml(secret_uuid, path, f"virtscenario disk {spec.name}"), 0)
            secret.setValue(passphrase, 0)
        except libvirt.libvirtError as exc:
            if secret is not None:
                _undefine(secret)
            raise LibvirtError(f"{uri}: libvirt refused the secret for {path}: {libvirt_error_text(exc)}") from None
    xml = volume_xml(spec, secret_uuid if spec.encrypt else None)
    vol = None
    try:
        for attempt in range(LUKS_RETRIES if spec.encrypt else 1):
            try:
                vol = pool.createXML(xml, create_flags(spec))
                break
            except libvirt.libvirtError as exc:
                if FLAKY_LUKS in libvirt_error_text(exc) and attempt + 1 < LUKS_RETRIES:
                    time.sleep(0.05)
                    continue
                raise LibvirtError(f"{uri}: pool {pool_name!r} could not create {spec.name}: "
                                   f"{libvirt_error_text(exc)}") from None
    finally:
        if vol is None and secret is not None:
            _undefine(secret)
    assert vol is not None
    return Volume(pool_name, spec.name, vol.path(), spec.format, spec.capacity,
                  secret_uuid if spec.encrypt else None)


def delete_volume(conn: Any, volume: Volume) -> None:
    """Remove a volume (and its secret) made by ``create_volume``: rollback and tests."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        conn.storagePoolLookupByName(volume.pool).storageVolLookupByName(volume.name).delete(0)
    except libvirt.libvirtError:
        pass
    if volume.secret_uuid:
        try:
            _undefine(conn.secretLookupByUUIDString(volume.secret_uuid))
        except libvirt.libvirtError:
            pass


def _undefine(secret: Any) -> None:
    try:
        secret.undefine()
    except Exception:  # noqa: BLE001 - rollback is best effort; the caller reports the first error
        pass
