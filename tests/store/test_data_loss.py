"""Issue 9, data loss: keys never regenerated, images verified before reuse, no mixed generations,
broken records refused, passphrases never left on disk."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from lxml import etree

from .conftest import FAST_LUKS, QEMU_IMG, info, one_error_line, opens, snapshot


def test_force_with_more_disks_keeps_the_key_of_the_existing_image(run, tmp_path):
    """CRITICAL: --force used to replace disk.secret, so the first image never opened again."""
    args = ("create", "securevm", "--name", "m", "--output", str(tmp_path), *FAST_LUKS)
    assert run(*args, "--disk", "size=64M")[0] == 0
    vm = tmp_path / "m"
    key = (vm / "disk.secret").read_bytes()
    code, out, err = run(*args, "--disk", "size=64M", "--disk", "size=64M", "--force")
    assert code == 0, err
    assert (vm / "disk.secret").read_bytes() == key, "a key in use was regenerated"
    assert f"kept existing image {vm / 'm.qcow2'} (checked: qcow2, LUKS, opens with disk.secret)" in err
    assert "m-1.qcow2 (new image)" in out
    for image in ("m.qcow2", "m-1.qcow2"):
        assert opens(vm / image, key, tmp_path) is None, image
    record = yaml.safe_load((vm / "vm.yaml").read_text())
    assert [(d["path"], d["key"]) for d in record["disks"]] == [(str(vm / "m.qcow2"), "disk.secret"),
                                                                 (str(vm / "m-1.qcow2"), "disk.secret")]


def test_plain_image_where_an_encrypted_one_is_planned_is_refused(run, tmp_path):
    """A LUKS creation killed half-way used to leave a plain qcow2 that the retry kept as 'encrypted'."""
    vm = tmp_path / "m"
    vm.mkdir(mode=0o700)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(vm / "m.qcow2"), "64M"], check=True)
    before = snapshot(tmp_path)
    code, _out, err = run("create", "securevm", "--name", "m", "--output", str(tmp_path), "--disk", "size=64M",
                          *FAST_LUKS)
    assert code == 1
    assert one_error_line(err) == (f"Error: existing image {vm / 'm.qcow2'}: it is not LUKS-encrypted, but "
                                   "disk.encryption is on; remove it to create a new one (its data is lost), or keep "
                                   "the settings it was made with")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "wrong size", "raw bytes"])
def test_half_made_or_foreign_image_is_not_reused(run, tmp_path, damage):
    vm = tmp_path / "d"
    vm.mkdir(mode=0o700)
    image = vm / "d.qcow2"
    if damage == "raw bytes":
        image.write_bytes(b"\0" * 65536)
    else:
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(image), "128M" if damage == "wrong size" else
                        "64M"], check=True)
        if damage == "truncated":
            os.truncate(image, 100_000)  # qemu-img killed while writing metadata
    code, _out, err = run("create", "desktop", "--name", "d", "--output", str(tmp_path), "--disk", "size=64M")
    assert code == 1
    line = one_error_line(err)
    expected = {"truncated": "fails qemu-img check", "wrong size": "it is 128MiB, the plan says 64MiB",
                "raw bytes": "it is a raw image, the plan says qcow2"}[damage]
    assert line.startswith(f"Error: existing image {image}") and expected in line, line
    assert not (vm / "vm.yaml").exists() and not (vm / "current").exists()


def test_force_turning_encryption_off_is_refused(run, tmp_path):
    """It used to keep the LUKS image and drop <encryption> from the XML: a VM that cannot boot."""
    args = ("create", "securevm", "--name", "e", "--output", str(tmp_path), "--disk", "size=64M", *FAST_LUKS)
    assert run(*args)[0] == 0
    before = snapshot(tmp_path)
    code, _out, err = run(*args, "--force", "--set", "disk.encryption=off")
    assert code == 1
    assert "it is LUKS-encrypted, but disk.encryption is off" in one_error_line(err)
    assert snapshot(tmp_path) == before


def test_failure_while_writing_the_new_generation_leaves_the_old_vm(run, tmp_path, monkeypatch):
    """ENOSPC on vm.yaml used to leave the new domain.xml next to the old vm.yaml."""
    args = ("create", "desktop", "--name", "g", "--output", str(tmp_path), "--disk", "size=64M")
    assert run(*args)[0] == 0
    before = snapshot(tmp_path)
    import virtscenario.vm.fsutil as fsutil
    real_write = os.write

    def full(fd, data):
        if b"scenario_version" in bytes(data):  # the new vm.yaml
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(fsutil.os, "write", full)
    code, _out, err = run(*args, "--force", "--vcpus", "3")
    assert code == 1
    line = one_error_line(err)
    assert line.startswith(f"Error: cannot write {tmp_path / 'g' / 'gen-2' / 'vm.yaml'}: No space left on device")
    assert snapshot(tmp_path) == before, "the old VM must stay, whole and alone"


@pytest.mark.parametrize("content", ["", "- a list\n", "just text\n", "name: x\n"])
def test_force_on_an_empty_or_broken_record_is_refused(run, tmp_path, content):
    """It used to give the VM a new uuid and new MACs silently."""
    args = ("create", "desktop", "--name", "b", "--output", str(tmp_path), "--disk", "none")
    assert run(*args)[0] == 0
    record = tmp_path / "b" / "vm.yaml"
    record.resolve().write_text(content)
    before = snapshot(tmp_path)
    code, _out, err = run(*args, "--force")
    assert code == 1
    line = one_error_line(err)
    assert str(tmp_path / "b") in line and ("has no uuid" in line or "the VM's record" in line), line
    assert snapshot(tmp_path) == before


def test_passphrase_file_is_used_byte_for_byte_and_never_copied(run, tmp_path):
    """The newline used to be stripped, so qemu-img with the same file said 'Invalid password'."""
    pw = tmp_path / "pw"
    pw.write_bytes(b"correct horse,battery\n")
    code, out, err = run("create", "securevm", "--name", "p", "--output", str(tmp_path / "store"),
                         "--disk", "size=64M", "--passphrase-file", str(pw), *FAST_LUKS)
    assert code == 0, err
    assert f"--passphrase-file {pw} ends with a newline, which is part of the passphrase" in err
    vm = tmp_path / "store" / "p"
    image = vm / "p.qcow2"
    # The same file, as qemu-img reads it, opens the image; the stripped text does not.
    result = subprocess.run([QEMU_IMG, "check", "-q", "--object", f"secret,id=k,file={pw}", "--image-opts",
                             f"driver=qcow2,file.filename={image},encrypt.key-secret=k"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "Invalid password" in (opens(image, b"correct horse,battery", tmp_path) or "")
    assert not (vm / "disk.secret").exists()
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            assert b"correct horse" not in path.read_bytes(), f"the passphrase was copied into {path}"
    record = yaml.safe_load((vm / "vm.yaml").read_text())
    assert record["disks"][0]["key"] == "passphrase-file"


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"x" * 1025, "longer than 1024 bytes")])
def test_passphrase_file_bounds(run, tmp_path, content, message):
    pw = tmp_path / "pw"
    pw.write_bytes(content)
    code, _out, err = run("create", "securevm", "--name", "p", "--output", str(tmp_path / "store"),
                          "--disk", "size=64M", "--passphrase-file", str(pw))
    assert code == 1 and message in one_error_line(err)
    assert not (tmp_path / "store").exists()


def test_force_with_the_wrong_passphrase_file_is_refused(run, tmp_path):
    pw, other = tmp_path / "pw", tmp_path / "other"
    pw.write_bytes(b"first")
    other.write_bytes(b"second")
    args = ("create", "securevm", "--name", "w", "--output", str(tmp_path / "s"), "--disk", "size=64M", *FAST_LUKS)
    assert run(*args, "--passphrase-file", str(pw))[0] == 0
    before = snapshot(tmp_path / "s")
    code, _out, err = run(*args, "--force", "--passphrase-file", str(other))
    assert code == 1
    assert one_error_line(err) == (f"Error: existing image {tmp_path / 's' / 'w' / 'w.qcow2'} does not open with "
                                   "--passphrase-file: give the --passphrase-file it was made with")
    assert snapshot(tmp_path / "s") == before
    code, _out, err = run(*args, "--force", "--passphrase-file", str(pw))
    assert code == 0, err


def test_comma_in_the_store_path_and_name_with_encryption(run, tmp_path):
    """The path used to go unescaped into 'qemu-img --object secret,...,file=': option injection."""
    store = tmp_path / "a,b"
    code, _out, err = run("create", "securevm", "--name", "v,id=x", "--output", str(store), "--disk", "size=64M",
                          *FAST_LUKS)
    assert code == 0, err
    vm = store / "v,id=x"
    assert opens(vm / "v,id=x.qcow2", (vm / "disk.secret").read_bytes(), tmp_path) is None
    assert info(vm / "v,id=x.qcow2")["encrypted"] is True


def test_images_and_files_are_private_whatever_the_umask(run, tmp_path):
    old = os.umask(0)
    try:
        code, _out, err = run("create", "desktop", "--name", "u", "--output", str(tmp_path / "new" / "store"),
                              "--disk", "size=64M", "--set", "disk.encryption=on", *FAST_LUKS)
    finally:
        os.umask(old)
    assert code == 0, err
    store = tmp_path / "new" / "store"
    vm = store / "u"

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.lstat().st_mode)

    assert mode(store) == 0o711 and mode(tmp_path / "new") == 0o711
    assert mode(vm) == 0o700 and mode(vm / "share") == 0o700 and mode(vm / "gen-1") == 0o700
    for name in ("u.qcow2", "disk.secret", "gen-1/domain.xml", "gen-1/vm.yaml"):
        assert mode(vm / name) == 0o600, name
    assert mode(store / ".locks") == 0o700 and mode(store / ".locks" / "u.lock") == 0o600
    # And for real: user nobody reads neither the disk nor the key.
    for path in (vm / "u.qcow2", vm / "disk.secret"):
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(path)],
                                capture_output=True, text=True)
        assert result.returncode != 0 and "Permission denied" in result.stderr


def test_an_older_store_is_migrated_without_a_mixed_state(run, tmp_path):
    """Plain domain.xml/vm.yaml (before generations) become gen-1 with the same bytes, then gen-2."""
    args = ("create", "desktop", "--name", "old", "--output", str(tmp_path), "--disk", "size=64M")
    assert run(*args)[0] == 0
    vm = tmp_path / "old"
    xml, record = (vm / "domain.xml").read_bytes(), (vm / "vm.yaml").read_bytes()
    for name in ("domain.xml", "vm.yaml", "current"):
        (vm / name).unlink()
    (vm / "gen-1" / "domain.xml").rename(vm / "domain.xml")
    (vm / "gen-1" / "vm.yaml").rename(vm / "vm.yaml")
    (vm / "gen-1").rmdir()
    (vm / "old.qcow2").chmod(0o644)  # as older versions left it
    code, _out, err = run(*args, "--force", "--vcpus", "3")
    assert code == 0, err
    assert os.readlink(vm / "vm.yaml") == "current/vm.yaml" and os.readlink(vm / "current") == "gen-2"
    assert etree.parse(str(vm / "domain.xml")).getroot().findtext("vcpu") == "3"
    assert yaml.safe_load((vm / "vm.yaml").read_text())["uuid"] == yaml.safe_load(record)["uuid"]
    assert xml != (vm / "domain.xml").read_bytes()
    assert stat.S_IMODE((vm / "old.qcow2").stat().st_mode) == 0o600
    assert sorted(p.name for p in vm.iterdir()) == ["current", "domain.xml", "gen-2", "old.qcow2", "share",
                                                     "vm.yaml"]
