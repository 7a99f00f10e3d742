"""End to end over SSH: place a VM on the inventory, create its disk through the chosen host's pool API,
define and start it there, then ask whether it could migrate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from virtscenario.fleet.commands import run_place
from virtscenario.fleet.pool import VolumeSpec, create_volume

from .conftest import UNREACHABLE_URI, import_libvirt, node_uri, open_or_fail

pytestmark = pytest.mark.libvirtd


def test_place_create_disk_define_and_start_over_ssh(
        ssh_uri: str, tcp_uri: str, write_inventory: Callable[..., Path], store: Path,
        dir_pool: Callable[[str], tuple[str, Path]], fleet_cli: Callable[..., tuple[int, str, str]]) -> None:
    libvirt = import_libvirt()
    name = f"fleet-e2e-{uuid.uuid4().hex[:8]}"
    inv = write_inventory({"epyc": node_uri("node-epyc.xml"), "remote": ssh_uri, "gone": UNREACHABLE_URI})
    t0 = time.monotonic()
    placement = run_place("desktop", name, "256M", None, ("filesystem.share=off", "tpm.model=none"), None, str(inv),
                          10.0)
    assert placement.chosen is not None and placement.chosen.host == "remote"
    assert [d.host for d in placement.ordered()] == ["epyc", "gone", "remote"]
    uri = placement.chosen.uri

    pool, directory = dir_pool(uri)
    conn = open_or_fail(uri)
    try:
        vol = create_volume(conn, pool, VolumeSpec(f"{name}.qcow2", 64 * 1024**2))
        assert Path(vol.path).parent == directory
        xml = subprocess.run(
            [sys.executable, "-m", "virtscenario", "create", "desktop", "--name", name, "--print-xml", "--connect", uri,
             "--virt-type", "qemu", "--memory", "256", "--disk", f"path={vol.path}", "--network", "user",
             "--set", "filesystem.share=off", "--set", "tpm.model=none"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        assert f"<source file=\"{vol.path}\"" in xml
        dom = conn.defineXMLFlags(xml, getattr(libvirt, "VIR_DOMAIN_DEFINE_VALIDATE", 0))
        try:
            dom.create()
            assert dom.isActive()
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            elapsed = time.monotonic() - t0
            # the running VM, seen from the other transport of the same daemon
            code, out, _err = fleet_cli("migrate-check", name, "--from", "remote", "--to", tcp_uri,
                                        "--hosts", str(inv), "--output", str(store), "--json")
            report = json.loads(out)
            assert code == 1 and report["xml_from"] == "running on remote"
            assert report["findings"][0]["message"].startswith("the target is the source host")
            storage = [f["message"] for f in report["findings"] if f["area"] == "storage"]
            assert f"disk vda: {vol.path} is local storage on the source (pool {pool}, dir): migrate with " \
                   "--copy-storage-all (or put it on shared storage)" in storage
            print(f"\nplaced, disk created, defined and started over ssh in {elapsed:.2f} s")
        finally:
            if dom.isActive():
                dom.destroy()
            flags = getattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM", 0) | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_TPM", 0)
            dom.undefineFlags(flags)
    finally:
        conn.close()
