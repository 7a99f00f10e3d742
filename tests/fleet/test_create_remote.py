"""``create --place`` / ``--pool``: a VM made on a host reached through libvirt only, and ``delete`` there.

The real daemon is reached over SSH (the host the VM is placed on, where it is created and
started) and over loopback TCP (the other transport of the same daemon: what the tests look at
and the refusals run against). ``--pool`` makes create treat the loopback URIs as another
host, so the remote path runs on one machine. Everything made on the shared daemon is named
``fleet2-...``.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from lxml import etree
from virtscenario.fleet.pool import VolumeSpec, create_volume

from .conftest import UNREACHABLE_URI, import_libvirt, node_uri, open_or_fail

pytestmark = pytest.mark.libvirtd

Cli = Callable[..., tuple[int, str, str]]
#: A small guest that starts under TCG: desktop without its TPM, on a user-mode NIC.
SMALL = ("--memory", "256", "--virt-type", "qemu", "--network", "user", "--set", "tpm.model=none")


def vm_name() -> str:
    return f"fleet2-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def leftovers(tcp_uri: str) -> Iterator[list[str]]:
    """Names of domains a test may leave on the daemon; each is stopped and undefined after the test, and the
    secrets whose volume path names it are removed (a passing test leaves nothing: it asserts so itself)."""
    names: list[str] = []
    yield names
    libvirt = import_libvirt()
    conn = open_or_fail(tcp_uri)
    try:
        for name in names:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        for secret in conn.listAllSecrets(0):
            if any(f"/{name}" in (secret.usageID() or "") for name in names):
                secret.undefine()
    finally:
        conn.close()


def record(store: Path, name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((store / name / "vm.yaml").read_text()))


def in_store(store: Path) -> list[str]:
    """What the store holds besides its lock directory (a staging directory counts)."""
    return sorted(p.name for p in store.iterdir() if p.name != ".locks")


def volumes_in(conn: Any, pool: str) -> list[str]:
    p = conn.storagePoolLookupByName(pool)
    p.refresh(0)
    return sorted(p.listVolumes())


def test_placed_created_started_over_ssh_then_deleted_there(
        ssh_uri: str, tcp_uri: str, write_inventory: Callable[..., Path], store: Path, tmp_path: Path,
        dir_pool: Callable[..., tuple[str, Path]], fleet_cli: Cli, leftovers: list[str]) -> None:
    libvirt = import_libvirt()
    name = vm_name()
    leftovers.append(name)
    pool, directory = dir_pool(tcp_uri, "fleet2-")
    share = tmp_path / "share"
    share.mkdir()
    inv = write_inventory({"epyc": node_uri("node-epyc.xml"), "xeon": node_uri("node-xeon.xml"), "remote": ssh_uri,
                           "gone": UNREACHABLE_URI})
    t0 = time.monotonic()
    code, out, err = fleet_cli("create", "desktop", "--name", name, "--place", "--hosts", str(inv), "--pool", pool,
                               *SMALL, "--disk", "size=64MiB", "--set", "disk.encryption=on",
                               "--set", f"filesystem.source_dir={share}", "--start", "--output", str(store))
    elapsed = time.monotonic() - t0
    assert code == 0, err
    assert f"placed on remote ({ssh_uri}), score" in " ".join(err.split())
    assert "rejected: epyc: " in " ".join(err.split()) and "gone: unreachable" in " ".join(err.split())
    assert f"virtiofs share {share} is a directory on {ssh_uri}" in " ".join(err.split())
    assert f"Started {name} on " in " ".join(out.split())

    # the store keeps the record, no image
    rec = record(store, name)
    assert (rec["host"], rec["libvirt_uri"]) == ("remote", ssh_uri)
    [vol] = rec["volumes"]
    assert (vol["pool"], vol["volume"], vol["format"], vol["capacity"]) == (pool, f"{name}.qcow2", "qcow2", 64 << 20)
    assert vol["path"] == str(directory / f"{name}.qcow2") and vol["key"] == "disk.secret"
    assert rec["disks"][0]["pool"] == pool and rec["secrets"] == {vol["path"]: vol["secret"]}
    assert sorted(p.name for p in (store / name).iterdir()) == ["current", "disk.secret", "domain.xml", "gen-1",
                                                                "vm.yaml"]
    xml = (store / name / "domain.xml").read_text()
    assert str(store) not in xml  # nothing of this machine's store is handed to the host
    disk = etree.fromstring(xml.encode()).find("devices/disk")
    assert disk.get("type") == "volume"
    assert (disk.find("source").get("pool"), disk.find("source").get("volume")) == (pool, f"{name}.qcow2")
    assert disk.find("source/encryption/secret").get("uuid") == vol["secret"]

    # what the host has, seen over the other transport
    conn = open_or_fail(tcp_uri)
    try:
        dom = conn.lookupByName(name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        live = etree.fromstring(dom.XMLDesc(0).encode())
        assert live.find("devices/filesystem/source").get("dir") == str(share)
        sv = conn.storagePoolLookupByName(pool).storageVolLookupByName(f"{name}.qcow2")
        sv_xml = etree.fromstring(sv.XMLDesc(0).encode())
        assert sv_xml.find("target/format").get("type") == "qcow2"
        assert sv_xml.find("target/encryption").get("format") == "luks"
        secret = conn.secretLookupByUUIDString(vol["secret"])
        assert secret.usageID() == vol["path"]
        assert etree.fromstring(secret.XMLDesc(0).encode()).get("private") == "yes"

        code, out, _err = fleet_cli("list", "--json", "--output", str(store))
        [row] = json.loads(out)
        assert (row["host"], row["libvirt_uri"], row["disks"][0]["exists"]) == ("remote", ssh_uri, None)
        code, out, _err = fleet_cli("show", name, "--output", str(store))
        assert code == 0 and f"host remote ({ssh_uri})" in out and f"{pool}/{name}.qcow2" in out

        # delete: refused while running, then through the recorded URI: domain, volume and secret go
        code, _out, err = fleet_cli("delete", name, "--output", str(store))
        assert code == 1 and "is running on" in err
        code, out, err = fleet_cli("delete", name, "--force", "--output", str(store))
        assert code == 0, err
        assert f"Removed volume {name}.qcow2 from pool {pool} on " in out
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(name)
        with pytest.raises(libvirt.libvirtError):
            conn.secretLookupByUUIDString(vol["secret"])
        assert volumes_in(conn, pool) == []
        assert not (store / name).exists()
        assert share.is_dir()  # the user's directory on the host is never removed
    finally:
        conn.close()
    print(f"\nplaced, volume created (LUKS), defined and started over ssh in {elapsed:.2f} s")


def test_place_refusals(tcp_uri: str, write_inventory: Callable[..., Path], store: Path, fleet_cli: Cli) -> None:
    name = vm_name()
    inv = write_inventory({"epyc": node_uri("node-epyc.xml"), "gone": UNREACHABLE_URI})
    code, _out, err = fleet_cli("create", "desktop", "--name", name, "--place", "--connect", tcp_uri,
                                "--output", str(store))
    assert code == 2 and "--place and --connect are exclusive" in err
    code, _out, err = fleet_cli("create", "desktop", "--name", name, "--hosts", str(inv), "--output", str(store))
    assert code == 2 and "--hosts is only used with --place" in err
    code, _out, err = fleet_cli("create", "desktop", "--name", name, "--place", "--hosts", str(inv), *SMALL,
                                "--output", str(store))
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith(f"Error: no host of {inv} can run {name} (desktop): epyc: arch: the VM is x86_64, "
                           "this host runs i686 guests (+1 more); gone: unreachable: ")
    assert in_store(store) == []


def test_remote_share_directory_must_exist_there(tcp_uri: str, store: Path, dir_pool: Callable[..., tuple[str, Path]],
                                                 fleet_cli: Cli, tmp_path: Path, leftovers: list[str]) -> None:
    libvirt = import_libvirt()
    name = vm_name()
    leftovers.append(name)
    pool, _directory = dir_pool(tcp_uri, "fleet2-")
    base = ("create", "desktop", "--name", name, "--connect", tcp_uri, "--pool", pool, *SMALL, "--disk", "size=16MiB",
            "--output", str(store))
    missing = tmp_path / "not-there"
    code, _out, err = fleet_cli(*base, "--set", f"filesystem.source_dir={missing}")
    assert code == 1
    assert err.strip() == (f"Error: filesystem.source_dir {missing} is not a directory on {tcp_uri} (cannot open "
                           f"directory '{missing}': No such file or directory): a virtiofs share needs an existing "
                           "directory on the VM's host: create it there, or --set filesystem.share=off")
    code, _out, err = fleet_cli(*base)
    assert code == 1 and "the shared directory must exist on " in err and "filesystem.source_dir=DIR" in err
    code, _out, err = fleet_cli(*base, "--set", "filesystem.source_dir=relative/dir")
    assert code == 1 and "the shared directory must exist on " in err
    # a defined, inactive pool owning the directory: named, with the way out
    owned = tmp_path / "owned"
    owned.mkdir()
    conn = open_or_fail(tcp_uri)
    other = conn.storagePoolDefineXML(f"<pool type='dir'><name>fleet2-owner-{name}</name><target><path>{owned}"
                                      "</path></target></pool>", 0)
    try:
        code, _out, err = fleet_cli(*base, "--set", f"filesystem.source_dir={owned}")
        assert code == 1 and f"conflict with pool: 'fleet2-owner-{name}', which is not active: start it" in err
        other.create(0)  # active: found by its target path, no probe needed
        code, _out, err = fleet_cli(*base, "--set", f"filesystem.source_dir={owned}", "--dry-run")
        assert code == 0 and f"Would check that {owned} is a directory on {tcp_uri}" in err + _out
        # nothing was made on the host nor in the store, and no probe pool is left
        assert volumes_in(conn, pool) == [] and in_store(store) == []
        assert not [p for p in conn.listAllStoragePools(0) if "share-probe" in p.name()]
    finally:
        try:
            other.destroy()
        except libvirt.libvirtError:
            pass
        other.undefine()
        conn.close()


def test_existing_volumes_are_refused_unless_they_match(tcp_uri: str, store: Path,
                                                        dir_pool: Callable[..., tuple[str, Path]],
                                                        fleet_cli: Cli, leftovers: list[str]) -> None:
    name = vm_name()
    leftovers.append(name)
    pool, directory = dir_pool(tcp_uri, "fleet2-")
    base = ("create", "desktop", "--name", name, "--connect", tcp_uri, "--pool", pool, *SMALL, "--disk",
            "size=32MiB", "--set", "filesystem.share=off", "--output", str(store))
    conn = open_or_fail(tcp_uri)
    try:
        raw = create_volume(conn, pool, VolumeSpec(f"{name}.qcow2", 32 << 20, format="raw"))
        code, _out, err = fleet_cli(*base)
        assert code == 1 and f"volume '{name}.qcow2' in pool '{pool}' on {tcp_uri} already exists; refusing to " \
                             "overwrite it (--force keeps it when its format and size match the plan)" in err
        code, _out, err = fleet_cli(*base, "--force")
        assert code == 1 and f"existing volume '{name}.qcow2' in pool '{pool}' on {tcp_uri}: it is a raw volume, " \
                             "the plan says qcow2; remove it" in err
        conn.storagePoolLookupByName(pool).storageVolLookupByName(raw.name).delete(0)
        create_volume(conn, pool, VolumeSpec(f"{name}.qcow2", 16 << 20))
        code, _out, err = fleet_cli(*base, "--force")
        assert code == 1 and "it is 16MiB, the plan says 32MiB" in err
        assert in_store(store) == [] and volumes_in(conn, pool) == [f"{name}.qcow2"]
        conn.storagePoolLookupByName(pool).storageVolLookupByName(f"{name}.qcow2").delete(0)
        create_volume(conn, pool, VolumeSpec(f"{name}.qcow2", 32 << 20))
        code, out, err = fleet_cli(*base, "--force", "--explain")
        assert code == 0, err
        assert f"Kept existing volume {name}.qcow2 in pool {pool} on {tcp_uri} (checked: qcow2, 33554432 bytes)" in out
        assert record(store, name)["volumes"][0]["path"] == str(directory / f"{name}.qcow2")
        # --keep-images keeps the volume; the store entry goes
        code, out, err = fleet_cli("delete", name, "--keep-images", "--output", str(store))
        assert code == 0, err
        assert "its volumes stay on" in err and volumes_in(conn, pool) == [f"{name}.qcow2"]
    finally:
        conn.close()


def test_a_failure_after_a_volume_was_made_removes_it(tcp_uri: str, store: Path,
                                                      dir_pool: Callable[..., tuple[str, Path]],
                                                      fleet_cli: Cli, leftovers: list[str]) -> None:
    """Two encrypted disks; the second's volume exists: the first volume and its secret are removed again."""
    libvirt = import_libvirt()
    name = vm_name()
    leftovers.append(name)
    pool, _directory = dir_pool(tcp_uri, "fleet2-")
    conn = open_or_fail(tcp_uri)
    try:
        create_volume(conn, pool, VolumeSpec(f"{name}-1.qcow2", 16 << 20))
        secrets_before = set(conn.listSecrets())
        code, _out, err = fleet_cli("create", "desktop", "--name", name, "--connect", tcp_uri, "--pool", pool,
                                    *SMALL, "--disk", "size=16MiB", "--disk", "size=16MiB", "--set",
                                    "disk.encryption=on", "--set", "filesystem.share=off", "--output", str(store))
        assert code == 1 and f"volume '{name}-1.qcow2' in pool '{pool}' on {tcp_uri} already exists" in err
        assert volumes_in(conn, pool) == [f"{name}-1.qcow2"]  # the first one is gone again
        assert set(conn.listSecrets()) == secrets_before  # with its secret
        assert in_store(store) == []
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(name)
    finally:
        conn.close()


def test_a_vm_on_a_host_is_not_moved_by_force(tcp_uri: str, ssh_uri: str, store: Path,
                                              dir_pool: Callable[..., tuple[str, Path]], fleet_cli: Cli,
                                              leftovers: list[str]) -> None:
    name = vm_name()
    leftovers.append(name)
    pool, _directory = dir_pool(tcp_uri, "fleet2-")
    base = ("create", "desktop", "--name", name, "--pool", pool, *SMALL, "--disk", "size=16MiB", "--set",
            "filesystem.share=off", "--output", str(store))
    code, _out, err = fleet_cli(*base, "--connect", tcp_uri)
    assert code == 0, err
    code, _out, err = fleet_cli(*base, "--connect", ssh_uri, "--force")
    assert code == 1 and f"VM '{name}' lives on {tcp_uri}, with its volumes: --force regenerates it there" in err
    code, _out, err = fleet_cli("delete", name, "--output", str(store))
    assert code == 0, err
    conn = open_or_fail(tcp_uri)
    try:
        assert volumes_in(conn, pool) == []
    finally:
        conn.close()
