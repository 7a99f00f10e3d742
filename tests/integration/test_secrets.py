"""A connected create (without --define) still hands libvirt the encrypted disk's secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from .conftest import SYSTEM_URI, unique_name

pytestmark = pytest.mark.libvirtd


def test_connected_create_defines_the_disk_secret(libvirtd_conn: Any, guest_dir: Path) -> None:
    name = unique_name("secret")
    argv = [sys.executable, "-m", "virtscenario", "create", "desktop", "--name", name, "--output", str(guest_dir),
            "--connect", SYSTEM_URI, "--virt-type", "qemu", "--disk", "size=64M",
            "--set", "disk.encryption=on", "--set", "filesystem.share=off"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    root = etree.parse(str(guest_dir / name / "domain.xml")).getroot()
    uuid = root.find("devices/disk/source/encryption/secret").get("uuid")
    secret = libvirtd_conn.secretLookupByUUIDString(uuid)
    try:
        assert f"Defined libvirt secret {uuid} on {SYSTEM_URI}" in proc.stdout
        assert secret.usageID() == str(guest_dir / name / f"{name}.qcow2")
        # private='yes': libvirt never hands the value back (the boot test proves the value opens the image).
        assert etree.fromstring(secret.XMLDesc(0).encode()).get("private") == "yes"
        assert oct((guest_dir / name / "disk.secret").stat().st_mode & 0o777) == "0o600"
        assert name not in [d.name() for d in libvirtd_conn.listAllDomains()]  # not defined, only the secret
    finally:
        secret.undefine()
