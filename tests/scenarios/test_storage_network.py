"""Storage and network end to end through ``virtscenario create``: real qemu-img, the scenarios' options.

Images are checked with ``qemu-img info/check --output=json``, not by trusting our argv.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from .support import plugin_manager

QEMU_IMG = shutil.which("qemu-img")


@pytest.fixture(autouse=True)
def _needs_qemu_img() -> None:
    if QEMU_IMG is None:
        pytest.fail("qemu-img is not installed (Debian: qemu-utils); run scripts/setup.sh", pytrace=False)


@pytest.fixture
def run(run_cli):
    return run_cli(plugin_manager())


def info(path: Path) -> dict[str, Any]:
    out = subprocess.run([QEMU_IMG, "info", "--output=json", "-U", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def check(path: Path) -> dict[str, Any]:
    result = subprocess.run([QEMU_IMG, "check", "--output=json", "-U", str(path)], capture_output=True, text=True)
    return json.loads(result.stdout)


def domain(vm: Path) -> etree._Element:
    return etree.parse(str(vm / "domain.xml")).getroot()


# -- images made with the scenario's options -----------------------------------------------
def test_desktop_image_is_qcow2_with_metadata_preallocation(run, tmp_path):
    code, out, err = run("create", "desktop", "--name", "d", "--output", str(tmp_path), "--disk", "size=1")
    assert code == 0, err
    image = tmp_path / "d" / "d.qcow2"
    assert "d.qcow2 (new image)" in out
    meta = info(image)
    assert meta["format"] == "qcow2" and meta["virtual-size"] == 2**30 and meta["cluster-size"] == 64 * 1024
    data = meta["format-specific"]["data"]
    assert data["lazy-refcounts"] is False and data["compression-type"] == "zstd"
    report = check(image)
    # preallocation=metadata: every cluster is allocated in the metadata at creation
    assert report["allocated-clusters"] == report["total-clusters"] == 2**30 // (64 * 1024)
    assert domain(tmp_path / "d").find("devices/disk/driver").get("type") == "qcow2"


def test_computation_image_is_raw_and_fully_allocated(run, tmp_path):
    code, _out, err = run("create", "computation", "--name", "c", "--output", str(tmp_path), "--disk", "size=1")
    assert code == 0, err
    image = tmp_path / "c" / "c.raw"
    meta = info(image)
    assert meta["format"] == "raw" and meta["virtual-size"] == 2**30
    assert meta["actual-size"] >= 2**30  # preallocation=falloc reserved every block
    driver = domain(tmp_path / "c").find("devices/disk/driver")
    assert (driver.get("type"), driver.get("cache"), driver.get("io")) == ("raw", "none", "native")


def test_raw_with_qcow2_only_options_is_adapted_with_notes(run, tmp_path):
    code, _out, err = run("create", "desktop", "--name", "r", "--output", str(tmp_path), "--disk", "size=1",
                          "--set", "disk.format=raw")
    assert code == 0, err
    assert "disk.preallocation=metadata: raw images have no metadata; using falloc" in err
    assert "disk.cluster_size=" in err and "disk.compression=" in err and "is a raw image (qcow2 only)" in err
    meta = info(tmp_path / "r" / "r.raw")
    assert meta["format"] == "raw" and meta["actual-size"] >= 2**30


def test_securevm_image_is_luks_encrypted_and_the_secret_never_on_argv(run, tmp_path, monkeypatch):
    import virtscenario.vm.images as storage
    calls: list[list[str]] = []
    real_create = storage.create_image

    def spy_run(argv, **kwargs):
        calls.append(list(argv))
        secret_arg = next((a for a in argv if a.startswith("secret,")), None)
        if secret_arg is not None:
            # The passphrase travels in a pipe qemu-img inherits: never argv, never a file on disk.
            fd = int(secret_arg.rsplit("file=/dev/fd/", 1)[1])
            assert kwargs.get("pass_fds") == (fd,) and stat.S_ISFIFO(os.fstat(fd).st_mode)
        return subprocess.run(argv, **kwargs)

    monkeypatch.setattr(storage, "create_image", lambda *a, **kw: real_create(*a, run=spy_run, **kw))
    code, out, err = run("create", "securevm", "--name", "s", "--output", str(tmp_path), "--disk", "size=1",
                         "--set", "disk.luks_iter_time=10")
    assert code == 0, err
    vm = tmp_path / "s"
    passphrase = (vm / "disk.secret").read_text()
    assert stat.S_IMODE((vm / "disk.secret").stat().st_mode) == 0o600 and len(passphrase) >= 32
    assert calls, "qemu-img was not called through create_image"
    for argv in calls:
        assert not any(passphrase in a for a in argv), argv
    create = next(a for a in calls if a[1] == "create")
    assert create[2:4] == ["--object", create[3]] and create[3].startswith("secret,id=sec0,file=/dev/fd/")
    assert "encrypt.iter-time=10" in create[create.index("-o") + 1]
    assert any(a[1] == "check" and any(x.startswith("secret,") for x in a) for a in calls), \
        "the new image must be opened with its passphrase before it is renamed into place"
    assert passphrase not in out + err and passphrase not in (vm / "vm.yaml").read_text()
    assert not [p for p in vm.rglob("*") if "secret" in p.name and p.name != "disk.secret"]
    meta = info(vm / "s.qcow2")
    assert meta["encrypted"] is True and meta["format-specific"]["data"]["encrypt"]["format"] == "luks"
    root = domain(vm)
    secret_uuid = root.find("devices/disk/source/encryption/secret").get("uuid")
    record = yaml.safe_load((vm / "vm.yaml").read_text())
    assert record["secrets"] == {str(vm / "s.qcow2"): secret_uuid}
    assert record["disks"][0]["key"] == "disk.secret" and record["disks"][0]["created"] is True


def test_luks_creation_is_retried_on_qemus_flaky_benchmark(tmp_path):
    from virtscenario.domain.model import ImagePlan
    from virtscenario.vm.images import FLAKY_LUKS, create_image
    creates: list[list[str]] = []

    def flaky(argv, **kw):
        if argv[1] == "create":
            creates.append(argv)
            if len(creates) < 3:
                return subprocess.CompletedProcess(argv, 1, "", f"qemu-img: x.qcow2: {FLAKY_LUKS}\n")
        return subprocess.run(argv, **kw)

    create_image(ImagePlan(str(tmp_path / "x.qcow2"), "qcow2", 2**26, ("encrypt.iter-time=10",), True), b"pw-123",
                 run=flaky)
    # At least 3: the real qemu-img may itself hit the flaky benchmark once more under load.
    assert len(creates) >= 3 and not any("pw-123" in a for argv in creates for a in argv)
    assert info(tmp_path / "x.qcow2")["encrypted"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["x.qcow2"]  # no temporary image left


# -- existing images, several disks, CD-ROM ------------------------------------------------
def test_existing_image_format_is_detected(run, tmp_path):
    qcow = tmp_path / "given.qcow2"
    raw = tmp_path / "given.img"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(qcow), "64M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", str(raw), "64M"], check=True)
    code, out, err = run("create", "computation", "--name", "e", "--output", str(tmp_path / "store"),
                         "--disk", f"path={qcow}", "--disk", f"path={raw}")
    assert code == 0, err
    disks = domain(tmp_path / "store" / "e").findall("devices/disk")
    assert [(d.find("driver").get("type"), d.find("source").get("file")) for d in disks] == \
        [("qcow2", str(qcow)), ("raw", str(raw))]
    assert "(new image)" not in out
    assert not list((tmp_path / "store" / "e").glob("*.raw"))


def test_several_disks_get_their_own_images_and_iothreads(run, tmp_path):
    code, _out, err = run("create", "computation", "--name", "m", "--output", str(tmp_path),
                          "--disk", "size=1", "--disk", "size=1,format=qcow2")
    assert code == 0, err
    vm = tmp_path / "m"
    assert info(vm / "m.raw")["format"] == "raw" and info(vm / "m-1.qcow2")["format"] == "qcow2"
    root = domain(vm)
    assert [(d.find("target").get("dev"), d.find("driver").get("iothread")) for d in root.findall("devices/disk")] \
        == [("vda", "1"), ("vdb", "2")]
    assert root.findtext("iothreads") == "2"


def test_cdrom_boots_first(run, tmp_path):
    iso = tmp_path / "install.iso"
    iso.write_bytes(b"\0" * 4096)
    code, _out, err = run("create", "desktop", "--name", "cd", "--output", str(tmp_path), "--disk", "size=1",
                          "--cdrom", str(iso))
    assert code == 0, err
    root = domain(tmp_path / "cd")
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == str(iso) and cdrom.find("readonly") is not None
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]


def test_missing_existing_image_is_one_clear_error(run, tmp_path):
    code, _out, err = run("create", "desktop", "--name", "x", "--output", str(tmp_path),
                          "--disk", f"path={tmp_path / 'nope.qcow2'}")
    assert code == 1 and err.strip().splitlines()[-1].startswith("Error: --disk path=") and "Traceback" not in err
    assert not (tmp_path / "x").exists()


# -- networks and MAC stability ------------------------------------------------------------
@pytest.mark.parametrize("spec, expect", [
    ("network=lab", ("network", {"network": "lab"})),
    ("bridge=br0", ("bridge", {"bridge": "br0"})),
    ("user", ("user", {})),
])
def test_network_kinds(run, tmp_path, spec, expect):
    code, _out, err = run("create", "computation", "--name", "n", "--output", str(tmp_path), "--disk", "none",
                          "--network", spec)
    assert code == 0, err
    nic = domain(tmp_path / "n").find("devices/interface")
    source = nic.find("source")
    assert (nic.get("type"), dict(source.attrib) if source is not None else {}) == expect
    assert nic.find("model").get("type") == "virtio"
    queues = nic.find("driver").get("queues") if nic.find("driver") is not None else None
    assert queues == (None if spec == "user" else "6")  # slirp has a single queue


def test_network_none_and_several(run, tmp_path):
    code, _out, err = run("create", "desktop", "--name", "none", "--output", str(tmp_path), "--disk", "none",
                          "--network", "none")
    assert code == 0, err
    assert domain(tmp_path / "none").find("devices/interface") is None
    code, _out, err = run("create", "desktop", "--name", "two", "--output", str(tmp_path), "--disk", "none",
                          "--network", "bridge=br0", "--network", "user,model=e1000e")
    assert code == 0, err
    nics = domain(tmp_path / "two").findall("devices/interface")
    assert [(n.get("type"), n.find("model").get("type")) for n in nics] == [("bridge", "virtio"), ("user", "e1000e")]
    macs = [n.find("mac").get("address") for n in nics]
    assert len(set(macs)) == 2 and all(m.startswith("52:54:00:") for m in macs)


def test_uuid_mac_and_images_are_stable_across_force(run, tmp_path):
    args = ("create", "desktop", "--name", "keep", "--output", str(tmp_path), "--disk", "size=1")
    assert run(*args)[0] == 0
    vm = tmp_path / "keep"
    first = domain(vm)
    image_stat = (vm / "keep.qcow2").stat()
    code, _out, err = run(*args)
    assert code == 1 and "already exists" in err
    code, out, err = run(*args, "--force")
    assert code == 0, err
    second = domain(vm)
    assert second.findtext("uuid") == first.findtext("uuid")
    assert second.find("devices/interface/mac").get("address") == first.find("devices/interface/mac").get("address")
    assert f"kept existing image {vm / 'keep.qcow2'}" in err and "(new image)" not in out
    assert (vm / "keep.qcow2").stat().st_ino == image_stat.st_ino


# -- the README's main-job example, without any daemon -------------------------------------
def test_create_desktop_demo_works_without_a_daemon(tmp_path):
    """``virtscenario create desktop --name demo`` as a real process, with libvirt made unimportable."""
    env = dict(os.environ, LIBVIRT_DEFAULT_URI="qemu+unix:///system?socket=/nonexistent")
    code = ("import sys; sys.modules['libvirt'] = None\n"  # any libvirt use would fail loudly
            "from virtscenario.cli.app import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "create", "desktop", "--name", "demo",
                             "--output", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    vm = tmp_path / "demo"
    assert "Created demo (scenario desktop 1.0) in" in result.stdout and f"{vm}/: domain.xml" in result.stdout
    assert "domain.xml, vm.yaml, demo.qcow2 (new image)" in result.stdout.replace("\n   ", "")
    assert (vm / "share").is_dir() and info(vm / "demo.qcow2")["virtual-size"] == 64 * 2**30
    from virtscenario.domain.validate import validate_tree
    assert validate_tree(domain(vm)) is True
    # and the installed console script does the same
    script = Path(sys.executable).with_name("virtscenario")
    assert script.is_file(), f"{script} missing: install the core into this venv"
    result = subprocess.run([str(script), "create", "desktop", "--name", "demo2", "--output", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo2" / "domain.xml").is_file()
