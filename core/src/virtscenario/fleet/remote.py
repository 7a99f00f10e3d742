"""Creating a VM on a host reached through libvirt only (``create --place`` / ``--pool`` / a remote ``--connect``).

Nothing of that host is a file here, so everything goes through its libvirt:

- new disks are volumes of a storage pool there (:mod:`.pool`, ``virStorageVolCreateXML``:
  libvirt runs qemu-img on that host), referenced from the domain as ``<disk type='volume'>``;
  an encrypted volume's passphrase is a private libvirt secret on that host;
- a virtiofs share must be an existing directory there, checked with a storage pool
  (:func:`check_share_dir`);
- the store keeps the record (domain.xml, vm.yaml, the random disk key): ``host``,
  ``libvirt_uri`` and ``volumes`` say where the VM lives, so ``delete`` removes the domain,
  the volumes and their secrets through the same URI (:func:`delete_volumes`).

Volumes made by a create run are deleted again when the run fails before the store has
recorded them (:func:`volumes_made`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import ConfigError, LibvirtError, VirtscenarioError

HOST_KEY = "host"  # vm.yaml: the inventory name of the VM's host (create --place), else null
VOLUMES_KEY = "volumes"  # vm.yaml: the VM's volumes in storage pools of its host
DEFAULT_POOL = "default"


def is_remote(uri: Optional[str], pool: Optional[str]) -> bool:
    """Whether create must reach the VM's host through libvirt only: ``--pool`` was given, or the URI is
    another machine's. ``--pool`` with a local URI treats this machine as one (how the tests run it)."""
    if pool is not None:
        return True
    if not uri:
        return False
    from ..vm.networks import is_local
    return not is_local(uri)


# -- the pool ---------------------------------------------------------------------------------------
def pool_target(conn: Any, name: str, host: str, needed: bool = True) -> Any:
    """The pool new disks go to, as :class:`~virtscenario.domain.sections.disks.PoolTarget`.

    Only file pools (dir, fs, netfs): their volumes are files qemu-img formats as qcow2 or raw
    (with LUKS), at ``<target path>/<volume>``. ``needed=False`` (no new disk): not looked up.
    """
    from ..domain.sections.disks import PoolTarget
    from .pool import FILE_POOLS, lookup_pool
    from .pool import pool_target as target_of
    if not needed:
        return PoolTarget(name, "", host)
    pool = lookup_pool(conn, name)
    kind, directory = target_of(pool)
    if kind not in FILE_POOLS or not directory:
        raise ConfigError(f"storage pool {name!r} on {conn.getURI()} is a {kind or 'unknown'} pool: create makes "
                          f"disks in file pools ({', '.join(FILE_POOLS)}), whose volumes are qcow2 or raw files "
                          "(--pool NAME)")
    return PoolTarget(name, directory, host)


def needs_pool(disk_specs: Optional[list[Any]]) -> bool:
    """Whether the VM gets a new disk (None: the scenario's one disk; ``--disk none``: an empty list)."""
    return disk_specs is None or any(d.path is None or d.overlay for d in disk_specs)


# -- the share directory ----------------------------------------------------------------------------
def check_share_dir(conn: Any, path: str, vm_name: str) -> str:
    """Refuse unless ``path`` is a directory on ``conn``'s host; returns how it was seen.

    libvirt has no call that stats a path, but its storage driver opens a ``dir`` pool's
    directory whenever it refreshes the pool (storage_util.c ``virStorageBackendRefreshLocal``:
    "cannot open directory '...': No such file or directory"). So: an active pool whose target
    is ``path`` is refreshed; otherwise a transient dir pool is created on ``path``
    (``virStoragePoolCreateXML`` starts and refreshes it) and destroyed at once. A transient
    pool leaves no definition behind; it is named after the VM, so it is recognisable should
    the process die in those milliseconds (libvirtd drops it on restart).
    """
    import secrets

    from lxml import etree

    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    uri = conn.getURI()
    fix = "create it there, or --set filesystem.share=off"
    try:
        existing = conn.storagePoolLookupByTargetPath(path)  # active pools only
    except libvirt.libvirtError:
        existing = None
    if existing is not None:
        try:
            existing.refresh(0)
        except libvirt.libvirtError as exc:
            raise VirtscenarioError(f"filesystem.source_dir {path} on {uri}: storage pool {existing.name()!r} "
                                    f"cannot read it ({libvirt_error_text(exc)}): {fix}") from None
        return f"storage pool {existing.name()}"
    el = etree.Element("pool", type="dir")
    etree.SubElement(el, "name").text = f"{vm_name}-share-probe-{secrets.token_hex(4)}"
    etree.SubElement(etree.SubElement(el, "target"), "path").text = path
    try:
        probe = conn.storagePoolCreateXML(etree.tostring(el, encoding="unicode"), 0)
    except libvirt.libvirtError as exc:
        text = libvirt_error_text(exc)
        if "conflict with pool" in text:  # a defined, inactive pool owns that directory
            raise VirtscenarioError(f"filesystem.source_dir {path} on {uri}: {text}, which is not active: start it "
                                    f"(virsh -c {uri} pool-start NAME) so its directory can be checked") from None
        raise VirtscenarioError(f"filesystem.source_dir {path} is not a directory on {uri} ({text}): "
                                f"a virtiofs share needs an existing directory on the VM's host: {fix}") from None
    try:
        probe.destroy()
    except libvirt.libvirtError:
        pass  # transient: gone with the daemon at the latest
    return "a transient dir pool"


# -- volumes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    disk: Any  # DiskPlan with pool and volume
    spec: Any  # VolumeSpec


def planned_volumes(gen: Any) -> list[Planned]:
    """The VM's new pool disks with the volume each becomes (the settings as plan_images checked them)."""
    from .pool import VolumeSpec
    s = gen.settings.value
    out = []
    for disk in gen.disks:
        if not disk.pool or not disk.create:
            continue
        qcow2 = disk.format == "qcow2"
        prealloc = s("disk.preallocation") or "off"
        if not qcow2 and prealloc == "metadata":
            prealloc = "falloc"  # as for a local raw image: raw has no metadata
        out.append(Planned(disk, VolumeSpec(
            name=disk.volume, capacity=int(disk.size or 0), format=disk.format, encrypt=bool(disk.encrypted),
            preallocation=prealloc, lazy_refcounts=bool(s("disk.lazy_refcounts")) if qcow2 else False,
            cluster_size=int(s("disk.cluster_size")) if qcow2 and s("disk.cluster_size") else None)))
    return out


def dry_run_lines(gen: Any, uri: str) -> list[str]:
    out = []
    for p in planned_volumes(gen):
        enc = ", LUKS-encrypted with a libvirt secret there" if p.spec.encrypt else ""
        out.append(f"Would create volume {p.spec.name} in pool {p.disk.pool} on {uri}: {p.spec.format}, "
                   f"{p.spec.capacity} bytes{enc} (with --force an existing one of that format and size is kept)")
    if gen.share_dir:
        out.append(f"Would check that {gen.share_dir} is a directory on {uri} (a transient dir pool)")
    return out


@dataclass
class Made:
    """What :func:`volumes_made` did on the host."""

    uri: str
    created: list[Any] = field(default_factory=list)  # pool.Volume
    kept: list[Any] = field(default_factory=list)
    key_to_keep: Optional[bytes] = None  # a new random key the store must keep as disk.secret

    def lines(self) -> list[str]:
        out = []
        for vol in self.created:
            out.append(f"Created volume {vol.name} in pool {vol.pool} on {self.uri}")
            if vol.secret_uuid:
                out.append(f"Defined libvirt secret {vol.secret_uuid} on {self.uri}")
        out += [f"Kept existing volume {vol.name} in pool {vol.pool} on {self.uri} (checked: {vol.format}, "
                f"{vol.capacity} bytes{', LUKS' if vol.secret_uuid else ''})" for vol in self.kept]
        return out


@contextlib.contextmanager
def volumes_made(conn: Any, gen: Any, directory: Path, force: bool, passphrase: Optional[bytes],
                 old_record: Optional[dict[str, Any]] = None, progress: Any = None) -> Iterator[Made]:
    """Create (or with ``force`` keep, after checking) the VM's volumes, record them in ``gen.record_extra``,
    and delete the ones made here when the body (writing the store) fails."""
    from ..vm.keys import FROM_KEY_FILE, FROM_PASSPHRASE_FILE, new_key
    from .pool import Volume, create_volume, delete_volume, lookup_pool
    uri = conn.getURI()
    made = Made(uri)
    planned = planned_volumes(gen)
    key: Optional[bytes] = passphrase
    source = FROM_PASSPHRASE_FILE
    if key is None and any(p.spec.encrypt for p in planned):
        key = stored_key(directory)
        source = FROM_KEY_FILE
        if key is None:
            key = made.key_to_keep = new_key()
    old_keys = {(str(v.get("pool")), str(v.get("volume"))): v.get("key")
                for v in (old_record or {}).get(VOLUMES_KEY) or [] if isinstance(v, dict)}
    entries = []
    try:
        for p in planned:
            secret_uuid = gen.identity.secret_uuid(p.disk.path) if p.spec.encrypt else None
            pool = lookup_pool(conn, p.disk.pool)
            old = _existing(pool, p.spec.name)
            if old is not None:
                _check_existing(conn, old, p, secret_uuid, force)
                vol = Volume(p.disk.pool, p.spec.name, old.path(), p.spec.format, p.spec.capacity, secret_uuid)
                made.kept.append(vol)
            else:
                if progress:
                    progress(f"Creating volume {p.spec.name} in pool {p.disk.pool} on {uri}")
                vol = create_volume(conn, p.disk.pool, p.spec, key if p.spec.encrypt else None, secret_uuid)
                made.created.append(vol)
                if vol.path != p.disk.path:
                    raise VirtscenarioError(f"pool {p.disk.pool!r} on {uri} put volume {vol.name} at {vol.path}, "
                                            f"not at {p.disk.path}: its target changed meanwhile; run create again")
            kept = old is not None and (vol.pool, vol.name) in old_keys
            entries.append({"pool": vol.pool, "volume": vol.name, "path": vol.path, "format": vol.format,
                            "capacity": vol.capacity, "secret": vol.secret_uuid,
                            "key": (old_keys[(vol.pool, vol.name)] if kept else source) if vol.secret_uuid else None})
        gen.record_extra[VOLUMES_KEY] = entries
        yield made
    except BaseException:
        for vol in reversed(made.created):
            delete_volume(conn, vol)
        gen.record_extra.pop(VOLUMES_KEY, None)
        raise


def _existing(pool: Any, name: str) -> Any:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        pool.refresh(0)  # a file someone made since the pool started must be seen
    except libvirt.libvirtError:
        pass
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return None


def volume_facts(vol: Any) -> tuple[str, int, Optional[str]]:
    """(format, capacity in bytes, LUKS secret uuid or None) of a volume, from libvirt's volume XML."""
    from .facts import _root
    root = _root(vol.XMLDesc(0))
    fmt = root.find("target/format")
    capacity = int(root.findtext("capacity") or 0)  # libvirt reports it in bytes
    enc = root.find("target/encryption")
    secret = enc.find("secret") if enc is not None else None
    return (fmt.get("type") if fmt is not None else "raw") or "raw", capacity, \
        (secret.get("uuid") if secret is not None else None) if enc is not None else None


def volume_mismatch(facts: tuple[str, int, Optional[str]], spec: Any, secret_uuid: Optional[str]) -> Optional[str]:
    """What in an existing volume differs from the plan (format, size, LUKS and its secret), or None."""
    from ..units import format_size
    fmt, capacity, secret = facts
    if fmt != spec.format:
        return f"it is a {fmt} volume, the plan says {spec.format}"
    if capacity not in (spec.capacity, -(-spec.capacity // 512) * 512):
        return f"it is {format_size(capacity)}, the plan says {format_size(spec.capacity)}"
    if spec.encrypt and secret is None:
        return "it is not LUKS-encrypted, but disk.encryption is on"
    if secret is not None and not spec.encrypt:
        return "it is LUKS-encrypted, but disk.encryption is off (the VM would not boot without its secret)"
    if secret is not None and secret != secret_uuid:
        return f"it opens with libvirt secret {secret}, this VM records {secret_uuid}"
    return None


def _check_existing(conn: Any, vol: Any, p: Planned, secret_uuid: Optional[str], force: bool) -> None:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    uri = conn.getURI()
    where = f"volume {p.spec.name!r} in pool {p.disk.pool!r} on {uri}"
    if not force:
        raise VirtscenarioError(f"{where} already exists; refusing to overwrite it (--force keeps it when its "
                                "format and size match the plan)")
    problem = volume_mismatch(volume_facts(vol), p.spec, secret_uuid)
    if problem:
        raise VirtscenarioError(f"existing {where}: {problem}; remove it to create a new one (virsh -c {uri} "
                                f"vol-delete --pool {p.disk.pool} {p.spec.name}; its data is lost), or keep the "
                                "settings it was made with")
    if secret_uuid:
        try:
            conn.secretLookupByUUIDString(secret_uuid)
        except libvirt.libvirtError:
            raise VirtscenarioError(f"existing {where} is encrypted, and its libvirt secret {secret_uuid} is gone "
                                    "from that host: define it again with the passphrase (virsh secret-define; "
                                    "virsh secret-set-value --plain --file)") from None


def stored_key(directory: Path) -> Optional[bytes]:
    """The VM's random key (disk.secret) when the store has one (an update with --force), else None."""
    from ..vm.fsutil import StoreError, read_at
    from ..vm.keys import KEY_FILE, MAX_PASSPHRASE
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return read_at(fd, KEY_FILE, MAX_PASSPHRASE, directory / KEY_FILE) or None
    except StoreError:
        return None
    finally:
        os.close(fd)


def store_view(gen: Any) -> Any:
    """``gen`` as the store writes it for a VM on another host: the share directory lives there, so the
    store makes none here (the domain XML still names it)."""
    import dataclasses
    if not gen.share_dir:
        return gen
    return dataclasses.replace(gen, plan=dataclasses.replace(gen.plan, share_dir=None))


def define(conn: Any, gen: Any, start: bool) -> Any:
    """Define (libvirt validates) and optionally start the VM on its host. Unlike a local VM, nothing of the
    store is handed to QEMU: the disks' secrets were defined there with their volumes."""
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        dom = conn.defineXMLFlags(gen.xml.decode(), getattr(libvirt, "VIR_DOMAIN_DEFINE_VALIDATE", 0))
        if start:
            dom.create()
        return dom
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt on {conn.getURI()} refused {gen.domain.name}: {libvirt_error_text(exc)} (the VM "
                           "and its volumes are recorded: fix it and run create again with --force, or "
                           f"'virtscenario delete {gen.domain.name}' removes them)") from None


def same_host(record: Optional[dict[str, Any]], uri: str, name: str) -> None:
    """``--force`` regenerates a VM where it lives: a VM whose volumes are on one host is not moved by
    naming another (its domain and disks would be left behind)."""
    if not record or not record.get(VOLUMES_KEY):
        return
    old = record.get("libvirt_uri")
    if old and old != uri:
        host = f"{record.get(HOST_KEY)} ({old})" if record.get(HOST_KEY) else str(old)
        raise VirtscenarioError(f"VM {name!r} lives on {host}, with its volumes: --force regenerates it there "
                                f"(--connect {old}); to move it, delete it first")


# -- delete -----------------------------------------------------------------------------------------
def recorded_volumes(record: dict[str, Any]) -> list[Any]:
    from .pool import Volume
    out = []
    for item in record.get(VOLUMES_KEY) or []:
        if isinstance(item, dict) and item.get("pool") and item.get("volume"):
            out.append(Volume(str(item["pool"]), str(item["volume"]), str(item.get("path") or ""),
                              str(item.get("format") or ""), int(item.get("capacity") or 0),
                              str(item["secret"]) if item.get("secret") else None))
    return out


def volume_secrets(record: dict[str, Any]) -> set[str]:
    return {v.secret_uuid for v in recorded_volumes(record) if v.secret_uuid}


def delete_volumes(conn: Any, record: dict[str, Any]) -> list[str]:
    """Remove the VM's recorded volumes and their secrets on ``conn``'s host; lines saying what happened.

    A volume that is gone already is said so, not an error (a delete interrupted before can run again).
    """
    from ..host.hypervisor import libvirt_error_text, quiet_libvirt
    libvirt = quiet_libvirt()
    uri = conn.getURI()
    lines = []
    for vol in recorded_volumes(record):
        try:
            pool = conn.storagePoolLookupByName(vol.pool)
            found = _existing(pool, vol.name)
            if found is None:
                lines.append(f"Volume {vol.name} is not in pool {vol.pool} on {uri} any more")
            else:
                found.delete(0)
                lines.append(f"Removed volume {vol.name} from pool {vol.pool} on {uri}")
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"cannot remove volume {vol.name} of pool {vol.pool} on {uri}: "
                               f"{libvirt_error_text(exc)}") from None
        if vol.secret_uuid:
            try:
                conn.secretLookupByUUIDString(vol.secret_uuid).undefine()
                lines.append(f"Removed libvirt secret {vol.secret_uuid} on {uri}")
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                    raise LibvirtError(f"cannot remove libvirt secret {vol.secret_uuid} on {uri}: "
                                       f"{libvirt_error_text(exc)}") from None
    return lines
