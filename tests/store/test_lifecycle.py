"""Issue 9, the VM lifecycle: ``list``, ``show``, ``delete`` (store only, test driver, real libvirtd)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import FAST_LUKS, cli, one_error_line, opens


def make(run: Any, store: Path, name: str, *extra: str) -> None:
    code, _out, err = run("create", "desktop", "--name", name, "--output", str(store), *extra)
    assert code == 0, err


def test_list_text_and_json(run, tmp_path):
    store = tmp_path / "s"
    code, out, _ = run("list", "--output", str(store))
    assert code == 0 and out == f"No VMs in {store}\n"
    make(run, store, "a", "--disk", "size=64M")
    make(run, store, "b", "--disk", "none")
    (store / "broken").mkdir(mode=0o700)
    (store / "broken" / "vm.yaml").write_text("- not a mapping\n")
    code, out, err = run("list", "--output", str(store), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["a", "b", "broken"]
    a = rows[0]
    assert set(a) == {"name", "scenario", "uuid", "directory", "host", "libvirt_uri", "state", "disks", "error"}
    assert a["scenario"] == "desktop" and a["state"] is None and a["error"] is None
    assert a["host"] is None and a["libvirt_uri"] is None  # made here, never defined
    assert a["disks"] == [{"path": str(store / "a" / "a.qcow2"), "format": "qcow2", "size": 64 * 2**20,
                           "encrypted": False, "created": True, "exists": True}]
    assert rows[1]["disks"] == [] and "not a mapping" in rows[2]["error"]
    code, out, _ = run("list", "--output", str(store))
    assert "a.qcow2 (qcow2, 64MiB)" in out and "unreadable:" in out


def test_show_settings_sources_reasons_and_files(run, tmp_path):
    store = tmp_path / "s"
    make(run, store, "web", "--disk", "size=64M", "--vcpus", "3")
    code, out, err = run("show", "web", "--output", str(store), "--json")
    assert code == 0, err
    data = json.loads(out)
    by_key = {s["key"]: s for s in data["settings"]}
    assert by_key["vm.vcpus"]["value"] == 3 and by_key["vm.vcpus"]["source"] == "flag --vcpus"
    assert by_key["disk.cache"]["rationale"] and by_key["disk.cache"]["reference"]
    files = {f["name"]: f for f in data["files"]}
    assert files["web.qcow2"]["mode"] == "0600" and files["web.qcow2"]["kind"] == "file"
    assert files["vm.yaml"] == {"name": "vm.yaml", "kind": "symlink", "size": len("current/vm.yaml"),
                                "mode": "0777", "target": "current/vm.yaml"}
    assert files["current"]["target"] == "gen-1" and files["gen-1"]["mode"] == "0700"
    assert data["uuid"] == yaml.safe_load((store / "web" / "vm.yaml").read_text())["uuid"]
    code, out, _ = run("show", "web", "--output", str(store))
    assert code == 0 and "vm.vcpus" in out and "flag --vcpus" in out and "web.qcow2" in out
    code, _out, err = run("show", "nope", "--output", str(store))
    assert code == 1 and one_error_line(err) == f"Error: no VM 'nope' in the store {store}"


def test_delete_store_only_and_keep_images(run, tmp_path):
    store = tmp_path / "s"
    make(run, store, "k", "--disk", "size=64M", "--set", "disk.encryption=on", *FAST_LUKS)
    key = (store / "k" / "disk.secret").read_bytes()
    code, out, err = run("delete", "k", "--output", str(store), "--keep-images")
    assert code == 0, err
    assert "libvirt not asked" in err and f"Removed {store / 'k' / 'vm.yaml'}" in out
    assert sorted(p.name for p in (store / "k").iterdir()) == ["disk.secret", "k.qcow2", "share"]
    assert run("list", "--output", str(store), "--json")[1].strip() == "[]"
    # The kept image and its key are found again by a new create of that name.
    code, _out, err = run("create", "desktop", "--name", "k", "--output", str(store), "--disk", "size=64M",
                          "--set", "disk.encryption=on", *FAST_LUKS)
    assert code == 0, err
    assert "kept existing image" in err and (store / "k" / "disk.secret").read_bytes() == key
    assert opens(store / "k" / "k.qcow2", key, tmp_path) is None
    code, out, err = run("delete", "k", "--output", str(store))
    assert code == 0, err
    assert out.splitlines() == [f"Removed {store / 'k'}"]
    assert sorted(p.name for p in store.iterdir()) == [".locks"] and list((store / ".locks").iterdir()) == []
    code, _out, err = run("delete", "k", "--output", str(store))
    assert code == 1 and one_error_line(err) == f"Error: no VM 'k' in the store {store}"


def test_delete_removes_images_it_created_elsewhere_but_never_given_ones(run, tmp_path):
    store, images = tmp_path / "s", tmp_path / "images"
    given = tmp_path / "given.qcow2"
    import subprocess
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(given), "64M"], check=True)
    make(run, store, "x", "--disk", "size=64M", "--disk", f"path={given}", "--set", f"disk.directory={images}")
    assert (images / "x.qcow2").is_file()
    code, out, err = run("delete", "x", "--output", str(store))
    assert code == 0, err
    assert f"Removed {images / 'x.qcow2'}" in out and not (images / "x.qcow2").exists() and given.is_file()


def test_delete_waits_for_nobody_a_held_lock_is_one_line(run, tmp_path):
    store = tmp_path / "s"
    make(run, store, "busy", "--disk", "none")
    from virtscenario.vm.lock import VmLock
    from virtscenario.vm.store import open_root
    fd = open_root(store, create=False)
    assert fd is not None
    try:
        with VmLock(fd, store, "busy", "create"):
            code, _out, err = run("delete", "busy", "--output", str(store))
            assert code == 1 and one_error_line(err) == f"Error: VM 'busy' is being created by pid {os.getpid()}"
            code, _out, err = run("create", "desktop", "--name", "busy", "--output", str(store), "--disk", "none",
                                  "--force")
            assert code == 1 and "is being created by pid" in err
    finally:
        os.close(fd)
    assert (store / "busy" / "vm.yaml").is_file()


def test_delete_on_the_test_driver_refuses_a_running_domain(run, tmp_path):
    from ..integration.conftest import import_libvirt
    keep = import_libvirt().open("test:///default")  # the driver's state lives while a connection is open
    store = tmp_path / "s"
    name = f"store-td-{uuid.uuid4().hex[:8]}"
    make(run, store, name, "--disk", "none", "--connect", "test:///default", "--start")
    code, out, _ = run("list", "--output", str(store), "--connect", "test:///default", "--json")
    assert json.loads(out)[0]["state"] == "running"
    code, _out, err = run("delete", name, "--output", str(store))
    assert code == 1
    assert one_error_line(err) == (f"Error: VM {name!r} is running on test:///default: shut it down first, or "
                                   "pass --force to stop it")
    assert (store / name / "vm.yaml").exists()
    code, out, err = run("delete", name, "--output", str(store), "--force")
    assert code == 0, err
    assert f"Stopped {name} on test:///default" in out and f"Undefined {name} on test:///default" in out
    code, out, _ = run("list", "--output", str(store))
    assert name not in out
    assert name not in [d.name() for d in keep.listAllDomains()]
    keep.close()


@pytest.mark.libvirtd
def test_delete_on_libvirtd_removes_domain_nvram_tpm_and_secret_and_create_works_again(tmp_path):
    """On the real daemon: an encrypted, TPM, UEFI VM started by create; delete leaves nothing behind."""
    from ..integration.conftest import SYSTEM_URI, open_libvirtd, remove_domain
    conn = open_libvirtd()
    store = tmp_path / "s"
    name = f"store-del-{uuid.uuid4().hex[:8]}"
    args = ("create", "desktop", "--name", name, "--output", str(store), "--disk", "size=64M",
            "--set", "disk.encryption=on", "--set", "filesystem.share=off", "--network", "user",
            "--connect", SYSTEM_URI, "--virt-type", "qemu", *FAST_LUKS)
    try:
        result = cli(*args, "--start")
        assert result.returncode == 0, result.stderr
        record = yaml.safe_load((store / name / "vm.yaml").read_text())
        dom = conn.lookupByName(name)
        assert dom.isActive() and record["libvirt_uri"] == SYSTEM_URI
        from lxml import etree
        xml = etree.fromstring(dom.XMLDesc(0).encode())
        nvram = Path(xml.findtext("os/nvram"))
        assert nvram.is_file() and xml.find("devices/tpm") is not None
        tpm_state = Path("/var/lib/libvirt/swtpm") / record["uuid"]
        assert tpm_state.is_dir()
        (secret_uuid,) = record["secrets"].values()
        conn.secretLookupByUUIDString(secret_uuid)
        result = cli("delete", name, "--output", str(store))
        assert result.returncode == 1 and "is running on" in one_error_line(result.stderr)
        result = cli("delete", name, "--output", str(store), "--force")
        assert result.returncode == 0, result.stderr
        assert name not in [d.name() for d in conn.listAllDomains()]
        assert not nvram.exists() and not tpm_state.exists()
        assert secret_uuid not in [s.UUIDString() for s in conn.listAllSecrets()]
        assert not (store / name).exists()
        # Re-creating the same VM used to fail: "a secret with UUID ... already defined".
        result = cli(*args, "--define")
        assert result.returncode == 0, result.stderr
        result = cli("delete", name, "--output", str(store))
        assert result.returncode == 0, result.stderr
        assert name not in [d.name() for d in conn.listAllDomains()]
    finally:
        remove_domain(conn, name)
        for secret in conn.listAllSecrets():
            if str(store) in (secret.usageID() or ""):
                secret.undefine()
        conn.close()
