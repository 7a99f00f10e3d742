"""A VM on a host reached through libvirt only, without a daemon: the domain XML, the refusals, what the store
records and what delete and the store do with it. ``test:///default`` has a dir pool ``default-pool`` whose
volumes live in the driver's memory; every test uses its own VM name (the driver's state is per process)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from lxml import etree
from virtscenario.errors import ConfigError
from virtscenario.fleet.pool import VolumeSpec
from virtscenario.fleet.remote import (
    is_remote,
    recorded_volumes,
    volume_mismatch,
    volume_secrets,
)

Cli = Callable[..., tuple[int, str, str]]
TEST = "test:///default"
POOL = ("--connect", TEST, "--pool", "default-pool")
#: The test driver's volume creation takes no flags: no qcow2 metadata preallocation there.
PLAIN = ("--set", "filesystem.share=off", "--set", "disk.preallocation=off")


def name() -> str:
    return f"fleet2-{uuid.uuid4().hex[:8]}"


def test_is_remote() -> None:
    assert not is_remote(None, None) and not is_remote("qemu:///system", None)
    assert not is_remote("qemu+tcp://127.0.0.1/system", None) and not is_remote("test:///default", None)
    assert is_remote("qemu+ssh://root@epyc1/system", None)
    assert is_remote(None, "default") and is_remote("qemu:///system", "fleet")  # --pool: through libvirt only


def test_new_disks_are_pool_volumes_in_the_domain_xml(fleet_cli: Cli) -> None:
    vm = name()
    code, out, err = fleet_cli("create", "desktop", "--name", vm, *POOL, *PLAIN, "--disk", "size=1",
                               "--disk", "size=2,format=raw", "--set", "disk.encryption=on", "--print-xml")
    assert code == 0, err
    root = etree.fromstring(out.encode())
    disks = root.findall("devices/disk[@device='disk']")
    assert [d.get("type") for d in disks] == ["volume", "volume"]
    assert [(d.find("source").get("pool"), d.find("source").get("volume")) for d in disks] == \
        [("default-pool", f"{vm}.qcow2"), ("default-pool", f"{vm}-1.raw")]
    assert disks[0].find("source/encryption").get("format") == "luks"  # LUKS inside qcow2 only
    assert disks[1].find("source/encryption") is None
    assert "/store/" not in out and "disk.secret" not in out
    assert "disk.compression=zstd has no effect here" in " ".join(err.split())


def test_dry_run_says_what_the_host_would_get(fleet_cli: Cli) -> None:
    code, out, err = fleet_cli("create", "desktop", "--name", name(), *POOL, *PLAIN, "--disk", "size=1",
                               "--dry-run")
    assert code == 0, err
    assert "Would create volume " in out and f"in pool default-pool on {TEST}: qcow2, 1073741824 bytes" in out
    assert "Would create image" not in out


@pytest.mark.parametrize("args, message", [
    (("--disk", "path=/etc/hostname"), "--disk path=/etc/hostname: a file on this machine, which test:///default "
                                       "cannot open; there new disks are volumes of pool 'default-pool'"),
    (("--cdrom", "/etc/hostname"), "--cdrom /etc/hostname: a file on this machine, which test:///default cannot "
                                   "open"),
    (("--cloud-init", "user-data=/etc/hostname"), "--cloud-init: the seed ISO would be a file on this machine"),
    (("--set", "filesystem.share=on"), "filesystem.share: the shared directory must exist on test:///default"),
    (("--set", "disk.preallocation=full"), "disk.preallocation=full: "),
])
def test_files_of_this_machine_are_refused(fleet_cli: Cli, args: tuple[str, ...], message: str) -> None:
    code, _out, err = fleet_cli("create", "desktop", "--name", name(), *POOL, *PLAIN, *args, "--print-xml")
    assert code == 1
    [line] = err.strip().splitlines()[-1:]
    assert line.startswith("Error: ") and message in line


def test_missing_pool_is_one_line(fleet_cli: Cli, tmp_path: Path) -> None:
    code, _out, err = fleet_cli("create", "desktop", "--name", name(), "--connect", TEST, "--pool", "fleet2-nope",
                                *PLAIN, "--output", str(tmp_path))
    assert code == 1
    assert err.strip().startswith(f"Error: {TEST} has no storage pool 'fleet2-nope' (pools: default-pool")
    # --disk none needs no pool at all
    code, _out, err = fleet_cli("create", "desktop", "--name", name(), "--connect", TEST, "--pool", "fleet2-nope",
                                *PLAIN, "--disk", "none", "--print-xml")
    assert code == 0, err


def test_the_store_records_host_uri_and_volumes(fleet_cli: Cli, tmp_path: Path) -> None:
    from .conftest import open_or_fail
    vm = name()
    store = tmp_path / "store"
    # test:///default keeps its state while a connection is open (the commands' own ones close)
    held = open_or_fail(TEST)
    try:
        code, out, err = fleet_cli("create", "desktop", "--name", vm, *POOL, *PLAIN, "--disk", "size=1",
                                   "--output", str(store))
        assert code == 0, err
        rec = yaml.safe_load((store / vm / "vm.yaml").read_text())
        assert rec["host"] is None and rec["libvirt_uri"] == TEST
        assert rec["volumes"] == [{"pool": "default-pool", "volume": f"{vm}.qcow2",
                                   "path": f"/default-pool/{vm}.qcow2", "format": "qcow2", "capacity": 1 << 30,
                                   "secret": None, "key": None}]
        assert rec["disks"][0]["pool"] == "default-pool" and rec["disks"][0]["volume"] == f"{vm}.qcow2"
        assert rec["disks"][0]["path"] == f"/default-pool/{vm}.qcow2"
        assert not any(p.suffix == ".qcow2" for p in (store / vm).iterdir())  # no local image
        # a local VM records where it is too: host null, no volumes
        local = name()
        code, _out, err = fleet_cli("create", "desktop", "--name", local, *PLAIN, "--disk", "none",
                                    "--output", str(store))
        assert code == 0, err
        rec = yaml.safe_load((store / local / "vm.yaml").read_text())
        assert rec["host"] is None and "volumes" not in rec and "libvirt_uri" not in rec
        code, out, _err = fleet_cli("list", "--output", str(store))
        assert code == 0 and f"{vm}.qcow2 (qcow2, 1GiB, pool default-pool)" in " ".join(out.split())
        # delete removes the volume through the recorded URI (same driver state: same process)
        code, out, err = fleet_cli("delete", vm, "--output", str(store))
        assert code == 0, err
        assert f"Removed volume {vm}.qcow2 from pool default-pool on {TEST}" in out
        code, out, err = fleet_cli("create", "desktop", "--name", vm, *POOL, *PLAIN, "--disk", "size=1",
                                   "--output", str(store))
        assert code == 0, err  # the volume really went: a new one of that name is made
        assert f"{vm}.qcow2" in held.storagePoolLookupByName("default-pool").listVolumes()
        fleet_cli("delete", vm, "--output", str(store))
        assert f"{vm}.qcow2" not in held.storagePoolLookupByName("default-pool").listVolumes()
    finally:
        held.close()


def test_store_delete_never_touches_a_local_file_at_a_volume_path(tmp_path: Path) -> None:
    """A volume's path names a file on the VM's host; the same path here is someone else's file."""
    import os

    from virtscenario.vm.store import open_root_for_writing, remove_vm
    store = tmp_path / "store"
    (store / "vm1").mkdir(parents=True)
    os.close(open_root_for_writing(store))
    (store / "vm1" / "vm.yaml").write_text("name: vm1\n")
    here = tmp_path / "images" / "vm1.qcow2"
    here.parent.mkdir()
    here.write_bytes(b"not ours")
    outside = tmp_path / "images" / "vm1-1.qcow2"
    outside.write_bytes(b"ours")
    record = {"disks": [{"path": str(here), "created": True, "pool": "default", "volume": "vm1.qcow2"},
                        {"path": str(outside), "created": True}]}
    removed = remove_vm(store / "vm1", record, keep_images=False)
    assert here.read_bytes() == b"not ours"
    assert not outside.exists() and str(outside) in removed.removed  # a store image outside the VM dir goes


def test_recorded_volumes_and_their_secrets() -> None:
    record: dict[str, Any] = {"volumes": [
        {"pool": "p", "volume": "a.qcow2", "path": "/p/a.qcow2", "format": "qcow2", "capacity": 5, "secret": "u1"},
        {"pool": "p", "volume": "b.raw", "path": "/p/b.raw", "format": "raw", "capacity": 7, "secret": None},
        {"pool": "", "volume": "c"}, "junk"]}
    vols = recorded_volumes(record)
    assert [(v.pool, v.name, v.secret_uuid) for v in vols] == [("p", "a.qcow2", "u1"), ("p", "b.raw", None)]
    assert volume_secrets(record) == {"u1"}
    assert recorded_volumes({}) == [] and volume_secrets({"volumes": None}) == set()


@pytest.mark.parametrize("facts, spec, secret, problem", [
    (("qcow2", 1 << 30, None), VolumeSpec("v", 1 << 30), None, None),
    (("qcow2", 1 << 30, "u"), VolumeSpec("v", 1 << 30, encrypt=True), "u", None),
    (("raw", 1 << 30, None), VolumeSpec("v", 1 << 30), None, "it is a raw volume, the plan says qcow2"),
    (("qcow2", 1 << 29, None), VolumeSpec("v", 1 << 30), None, "it is 512MiB, the plan says 1GiB"),
    (("qcow2", 1 << 30, None), VolumeSpec("v", 1 << 30, encrypt=True), "u", "it is not LUKS-encrypted"),
    (("qcow2", 1 << 30, "u"), VolumeSpec("v", 1 << 30), None, "it is LUKS-encrypted, but disk.encryption is off"),
    (("qcow2", 1 << 30, "x"), VolumeSpec("v", 1 << 30, encrypt=True), "u",
     "it opens with libvirt secret x, this VM records u"),
])
def test_volume_mismatch(facts: Any, spec: VolumeSpec, secret: Any, problem: Any) -> None:
    found = volume_mismatch(facts, spec, secret)
    assert found == problem if problem is None else problem in str(found)


def test_pool_target_refuses_pools_without_files() -> None:
    from virtscenario.fleet.remote import pool_target

    class Pool:
        def isActive(self) -> bool:  # noqa: N802 - libvirt's name
            return True

        def XMLDesc(self, flags: int) -> str:  # noqa: N802
            return "<pool type='rbd'><name>ceph</name><source><name>rbd</name></source></pool>"

    class Conn:
        def getURI(self) -> str:  # noqa: N802
            return "qemu+ssh://h/system"

        def storagePoolLookupByName(self, name: str) -> Pool:  # noqa: N802
            return Pool()

    with pytest.raises(ConfigError, match="storage pool 'ceph' on qemu\\+ssh://h/system is a rbd pool: create makes "
                                          "disks in file pools"):
        pool_target(Conn(), "ceph", "h")
