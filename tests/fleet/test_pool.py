"""Disk volumes through a host's storage pool API, over qemu+tcp and qemu+ssh to the real daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import pytest
from lxml import etree
from virtscenario.errors import ConfigError, VirtscenarioError
from virtscenario.fleet.pool import VolumeSpec, create_volume, delete_volume, secret_xml, volume_xml

from .conftest import import_libvirt, open_or_fail

SCHEMAS = Path("/usr/share/libvirt/schemas")


@pytest.mark.parametrize("spec, secret", [
    (VolumeSpec("a.qcow2", 1 << 30), None),
    (VolumeSpec("b.qcow2", 1 << 30, encrypt=True, lazy_refcounts=True, cluster_size=65536,
                preallocation="metadata"), str(uuid.uuid4())),
    (VolumeSpec("c.raw", 1 << 30, format="raw", preallocation="falloc"), None),
])
def test_volume_and_secret_xml_follow_libvirt_schemas(spec: VolumeSpec, secret: str | None) -> None:
    vol = etree.RelaxNG(etree.parse(str(SCHEMAS / "storagevol.rng")))
    assert vol.validate(etree.fromstring(volume_xml(spec, secret))), vol.error_log
    sec = etree.RelaxNG(etree.parse(str(SCHEMAS / "secret.rng")))
    assert sec.validate(etree.fromstring(secret_xml(str(uuid.uuid4()), "/srv/x.qcow2", "d"))), sec.error_log


def test_volume_xml_refuses_what_libvirt_cannot_do() -> None:
    with pytest.raises(ConfigError, match="must be qcow2"):
        volume_xml(VolumeSpec("x.raw", 1, format="raw", encrypt=True), "u")
    with pytest.raises(ConfigError, match="needs the uuid of its libvirt secret"):
        volume_xml(VolumeSpec("x.qcow2", 1, encrypt=True))
    with pytest.raises(ConfigError, match="qcow2 or raw"):
        volume_xml(VolumeSpec("x.vmdk", 1, format="vmdk"))
    with pytest.raises(ConfigError, match="preallocation=full of a qcow2 volume: the pool API offers off, metadata"):
        volume_xml(VolumeSpec("x.qcow2", 1, preallocation="full"))


def image_info(path: str) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return dict(json.loads(out))


@pytest.mark.libvirtd
@pytest.mark.parametrize("transport", ["tcp", "ssh"])
def test_plain_volume(transport: str, tcp_uri: str, ssh_uri: str,
                      dir_pool: Callable[[str], tuple[str, Path]]) -> None:
    uri = tcp_uri if transport == "tcp" else ssh_uri
    pool, directory = dir_pool(uri)
    conn = open_or_fail(uri)
    try:
        vol = create_volume(conn, pool, VolumeSpec("fleet-disk.qcow2", 96 * 1024**2, lazy_refcounts=True))
        assert vol.path == str(directory / "fleet-disk.qcow2")
        info = image_info(vol.path)
        assert (info["format"], info["virtual-size"]) == ("qcow2", 96 * 1024**2)
        assert info["format-specific"]["data"]["lazy-refcounts"] is True  # type: ignore[index]
        with pytest.raises(VirtscenarioError, match="already exists in pool .*refusing to overwrite it"):
            create_volume(conn, pool, VolumeSpec("fleet-disk.qcow2", 1024**2))
        delete_volume(conn, vol)
        assert not Path(vol.path).exists()
        # preallocation: qcow2 metadata through the create flag, raw fully allocated by libvirt
        meta = create_volume(conn, pool, VolumeSpec("fleet-meta.qcow2", 64 * 1024**2, preallocation="metadata"))
        sparse = create_volume(conn, pool, VolumeSpec("fleet-sparse.qcow2", 64 * 1024**2))
        assert image_info(meta.path)["actual-size"] > image_info(sparse.path)["actual-size"]  # type: ignore[operator]
        raw = create_volume(conn, pool, VolumeSpec("fleet.raw", 32 * 1024**2, format="raw", preallocation="falloc"))
        assert image_info(raw.path)["actual-size"] >= 32 * 1024**2  # type: ignore[operator]
    finally:
        conn.close()


@pytest.mark.libvirtd
def test_encrypted_volume_with_a_secret_on_that_host(tcp_uri: str, dir_pool: Callable[[str], tuple[str, Path]]) -> None:
    libvirt = import_libvirt()
    pool, directory = dir_pool(tcp_uri)
    passphrase = os.urandom(24).hex().encode()
    conn = open_or_fail(tcp_uri)
    try:
        vol = create_volume(conn, pool, VolumeSpec("fleet-enc.qcow2", 64 * 1024**2, encrypt=True), passphrase)
        assert vol.secret_uuid
        secret = conn.secretLookupByUUIDString(vol.secret_uuid)
        assert secret.usageID() == vol.path == str(directory / "fleet-enc.qcow2")
        assert etree.fromstring(secret.XMLDesc(0).encode()).get("private") == "yes"
        with pytest.raises(libvirt.libvirtError):
            secret.value(0)  # private: libvirt never hands it back
        info = image_info(vol.path)
        assert info["encrypted"] is True
        # the image opens with our passphrase (through a 0600 file, never argv)
        tmp = Path(tempfile.mkdtemp(prefix="fleet-key-"))
        try:
            key = tmp / "key"
            key.touch(0o600)
            key.write_bytes(passphrase)
            ok = subprocess.run(["qemu-img", "check", "-U", "--object", f"secret,id=k,file={key}", "--image-opts",
                                 f"driver=qcow2,file.filename={vol.path},encrypt.key-secret=k"],
                                capture_output=True, text=True, timeout=120, check=False)
            assert ok.returncode == 0, ok.stderr
            key.write_bytes(b"wrong")
            bad = subprocess.run(["qemu-img", "check", "-U", "--object", f"secret,id=k,file={key}", "--image-opts",
                                  f"driver=qcow2,file.filename={vol.path},encrypt.key-secret=k"],
                                 capture_output=True, text=True, timeout=120, check=False)
            assert bad.returncode != 0 and "Invalid password" in bad.stderr
        finally:
            shutil.rmtree(tmp)
        delete_volume(conn, vol)
        with pytest.raises(libvirt.libvirtError):
            conn.secretLookupByUUIDString(vol.secret_uuid)
    finally:
        conn.close()


@pytest.mark.libvirtd
def test_pool_errors_are_one_line(tcp_uri: str, dir_pool: Callable[[str], tuple[str, Path]]) -> None:
    pool, _directory = dir_pool(tcp_uri)
    conn = open_or_fail(tcp_uri)
    try:
        with pytest.raises(ConfigError) as err:
            create_volume(conn, "fleet-nope", VolumeSpec("x.qcow2", 1024**2))
        assert str(err.value).startswith(f"{tcp_uri} has no storage pool 'fleet-nope' (pools: ")
        assert pool in str(err.value)
        conn.storagePoolLookupByName(pool).destroy()
        with pytest.raises(VirtscenarioError, match=re.escape(f"storage pool '{pool}' on {tcp_uri} is not active")):
            create_volume(conn, pool, VolumeSpec("x.qcow2", 1024**2))
        with pytest.raises(ConfigError, match="an encrypted volume needs a passphrase"):
            conn.storagePoolLookupByName(pool).create(0)
            create_volume(conn, pool, VolumeSpec("x.qcow2", 1024**2, encrypt=True))
        assert conn.storagePoolLookupByName(pool).listVolumes() == []  # nothing half-made
    finally:
        conn.close()
