"""Testing an OS without a daemon: the testing scenario, --boot, --disk overlay=on, --cloud-init and --os.

Images are made by the real qemu-img, the seed ISO by the real xorriso and read back by
xorriso, the XML validated against libvirt's RelaxNG schema, osinfo-db read from the host
(and from a small tree under --host-root). Booting them is tests/guest/test_verify.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from virtscenario.domain.bootargs import DirectBoot, parse_boot
from virtscenario.errors import ConfigError
from virtscenario.host.osinfo import OsDatabase, lookup
from virtscenario.host.root import HostRoot
from virtscenario.vm.cloudinit import plan_seed, write_seed

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQtlX1nKxMVYH0dUbmbd6tHPEF3xYSPlLqfmPB2hqfa tester@lab"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("virtscenario")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A raw 64 MiB base image with some data in it."""
    path = tmp_path / "base.raw"
    with open(path, "wb") as handle:
        handle.truncate(64 * 1024**2)
        handle.write(b"base image marker\n")
    return path


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id.pub"
    path.write_text(PUBLIC_KEY + "\n")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- --boot -----------------------------------------------------------------------------------

def test_parse_boot_kernel_initrd_and_quoted_cmdline(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "initrd").write_bytes(b"i")
    arg = parse_boot(f'uefi,kernel={tmp_path}/vmlinuz,initrd={tmp_path}/initrd,cmdline="console=ttyS0,115200 quiet"')
    assert arg.firmware == "efi"
    assert arg.direct == DirectBoot(str(tmp_path / "vmlinuz"), str(tmp_path / "initrd"), "console=ttyS0,115200 quiet")
    assert parse_boot("bios").firmware == "bios" and parse_boot("bios").direct is None
    assert parse_boot(f"kernel={tmp_path}/vmlinuz,kernel_args=ro").direct.cmdline == "ro"  # virt-install's name


@pytest.mark.parametrize("text,message", [
    ("kernel=/nonexistent/vmlinuz", "kernel=/nonexistent/vmlinuz: no such file"),
    ("cmdline=quiet", "need kernel=PATH"),
    ("uefi,bios", "give one of uefi and bios"),
    ("floppy", "unknown word 'floppy'"),
    ('kernel=/x,cmdline="open', "unbalanced double quote"),
    ("kernel=/x,dtb=/y", "unknown option 'dtb'"),
])
def test_parse_boot_refuses_bad_input(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_boot(text)


# -- the testing scenario end to end (CLI) -------------------------------------------------------

def test_testing_vm_with_overlay_kernel_seed_and_os(tmp_path, base, key):
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel")
    initrd.write_bytes(b"initrd")
    before = sha(base)
    store = tmp_path / "store"
    result = cli("create", "testing", "--name", "t1", "--output", str(store),
                 "--disk", f"path={base},overlay=on,size=1", "--boot",
                 f'kernel={kernel},initrd={initrd},cmdline="console=ttyS0,115200 no_timer_check"',
                 "--cloud-init", f"ssh-key={key},user=tester,hostname=box", "--os", "linux", "--network", "user")
    assert result.returncode == 0, result.stderr
    vm = store / "t1"
    root = etree.parse(str(vm / "domain.xml")).getroot()
    # direct kernel boot, rendered where libvirt puts it
    os_el = root.find("os")
    assert [c.tag for c in os_el][-4:] == ["kernel", "initrd", "cmdline", "boot"]
    assert os_el.findtext("cmdline") == "console=ttyS0,115200 no_timer_check"
    # the overlay: a qcow2 in the store whose backing file is the base, format recorded
    overlay = vm / "t1.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], capture_output=True,
                                     text=True, check=True).stdout)
    assert (info["format"], info["backing-filename"], info["backing-filename-format"]) == \
        ("qcow2", str(base), "raw")
    assert info["virtual-size"] == 1024**3  # size=1 grows the overlay beyond its 64 MiB base
    assert overlay.stat().st_mode & 0o777 == 0o600
    assert not list(vm.glob(".*.tmp")), "a temporary file was left behind"
    assert sha(base) == before
    disks = root.findall("devices/disk")
    assert disks[0].find("source").get("file") == str(overlay)
    assert disks[0].find("driver").get("cache") == "unsafe"
    # the seed: a second CD-ROM, 0600
    seed = disks[1]
    assert (seed.get("device"), seed.find("source").get("file"), seed.find("target").get("bus")) == \
        ("cdrom", str(vm / "cidata.iso"), "sata")
    assert seed.find("readonly") is not None
    assert (vm / "cidata.iso").stat().st_mode & 0o777 == 0o600
    # the scenario's devices: console log, pvpanic, watchdog, no share, crash kept
    assert root.find("devices/console/log").attrib == {"file": str(vm / "console.log"), "append": "on"}
    assert root.find("devices/panic").get("model") == "isa"
    assert root.find("devices/watchdog").attrib == {"model": "i6300esb", "action": "reset"}
    assert root.find("devices/filesystem") is None and root.findtext("on_crash") == "preserve"
    assert root.find("os/firmware/feature[@name='secure-boot']").get("enabled") == "no"
    # vm.yaml: the backing chain and the seed, never the key
    record = (vm / "vm.yaml").read_text()
    assert f"backing: {base}" in record and "backing_format: raw" in record and "user: tester" in record
    assert "AAAAC3Nza" not in record
    # no host plan: the scenario asks nothing of the host
    assert "Host plan" not in result.stdout


def test_overlay_works_for_every_scenario_and_refuses_nonsense(tmp_path, base):
    result = cli("create", "computation", "--name", "c1", "--output", str(tmp_path / "s"),
                 "--disk", f"path={base},overlay=on", "--network", "user")
    assert result.returncode == 0, result.stderr
    assert "disk.format=raw has no effect here" in result.stderr  # an overlay is qcow2
    root = etree.parse(str(tmp_path / "s/c1/domain.xml")).getroot()
    assert root.find("devices/disk/driver").get("type") == "qcow2"
    for spec, message in ((f"path={base},overlay=maybe", "overlay='maybe' is not on or off"),
                          ("size=2,overlay=on", "overlay=on needs path=BASE"),
                          (f"path={tmp_path}/missing,overlay=on", "no such file"),
                          (f"path={base},overlay=on,size=1M", "cannot be smaller than its base"),
                          (f"path={base},overlay=on,format=raw", "an overlay is a qcow2 image (only qcow2 has "
                                                                 "backing files), not raw; drop format=")):
        bad = cli("create", "desktop", "--name", "d1", "--output", str(tmp_path / "s"), "--disk", spec,
                  "--dry-run")
        assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr


def test_securevm_overlay_is_refused_unless_the_user_turns_disk_encryption_off(tmp_path, base):
    # securevm's disk.encryption says "unreadable at rest"; an overlay is not, nor is its base.
    store = tmp_path / "s"
    args = ("create", "securevm", "--name", "sv", "--output", str(store), "--disk", f"path={base},overlay=on",
            "--network", "none", "--explain")
    refused = cli(*args)
    assert refused.returncode == 1 and refused.stderr.startswith(
        f"Error: --disk path={base},overlay=on: disk.encryption is on (scenario securevm"), refused.stderr
    assert refused.stderr.endswith("but an overlay is not encrypted at rest and its base stays readable: add --set "
                                   "disk.encryption=off to accept an unencrypted disk, or give a new disk (--disk "
                                   "size=GiB), which is encrypted\n") and refused.stderr.count("\n") == 1
    assert not store.exists()
    result = cli(*args, "--set", "disk.encryption=off")
    assert result.returncode == 0, result.stderr
    # The table says what the disk is: not encrypted, by the user's decision.
    row = next(line for line in result.stdout.splitlines() if line.startswith("disk.encryption"))
    assert row.split()[1:3] == ["off", "flag"]
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(store / "sv" / "sv.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(base) and not info.get("encrypted")
    root = etree.parse(str(store / "sv" / "domain.xml")).getroot()
    assert root.find("devices/disk/source/encryption") is None


def test_dry_run_says_what_it_would_make_and_writes_nothing(tmp_path, base, key):
    result = cli("create", "testing", "--name", "t2", "--output", str(tmp_path / "s"), "--disk",
                 f"path={base},overlay=on", "--cloud-init", f"ssh-key={key}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"overlay on {base} (raw, never written)" in result.stdout
    assert "Would write cloud-init seed" in result.stdout and "user-data, meta-data" in result.stdout
    assert not (tmp_path / "s").exists()
    # format=qcow2 is the overlay's own format: the base's stays what the base is.
    result = cli("create", "testing", "--name", "t2", "--output", str(tmp_path / "s"), "--disk",
                 f"path={base},overlay=on,format=qcow2", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"qcow2, the base's size, overlay on {base} (raw, never written)" in result.stdout


def test_boot_bios_and_uefi_are_the_firmware_setting(tmp_path):
    result = cli("create", "testing", "--name", "t3", "--output", str(tmp_path), "--boot", "bios", "--print-xml")
    assert result.returncode == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    assert root.find("os").get("firmware") is None and root.find("os/firmware") is None
    assert "firmware.secure_boot=off has no effect" not in result.stderr  # off asks for nothing
    shown = cli("create", "testing", "--name", "t3", "--output", str(tmp_path), "--boot", "bios", "--dry-run")
    assert [line for line in shown.stdout.splitlines() if line.startswith("firmware.type")][0].split()[1:4] == \
        ["bios", "flag", "--boot"]


# -- --cloud-init -----------------------------------------------------------------------------

def _extract(iso: Path, dest: Path) -> dict[str, str]:
    xorriso = shutil.which("xorriso")
    assert xorriso, "xorriso is missing (scripts/setup.sh)"
    subprocess.run([xorriso, "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(dest)], check=True,
                   capture_output=True, timeout=60)
    return {p.name: p.read_text() for p in dest.iterdir()}


def test_seed_iso_holds_the_default_user_data_and_its_label(tmp_path, key):
    plan = plan_seed(f"ssh-key={key},user=tester", tmp_path / "vm", "vm", "1234-uuid")
    (tmp_path / "vm").mkdir()  # the store's VM directory
    write_seed(plan)
    iso = tmp_path / "vm" / "cidata.iso"
    with open(iso, "rb") as handle:
        handle.seek(16 * 2048 + 40)
        assert handle.read(32).decode().strip() == "cidata"  # the ISO 9660 volume id NoCloud looks for
    files = _extract(iso, tmp_path / "out")
    assert set(files) == {"user-data", "meta-data"}
    import yaml
    assert files["user-data"].startswith("#cloud-config\n")
    assert yaml.safe_load(files["user-data"]) == {"users": [{
        "name": "tester", "lock_passwd": True, "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "ssh_authorized_keys": [PUBLIC_KEY]}]}
    assert files["meta-data"] == "instance-id: 1234-uuid\nlocal-hostname: vm\n"
    assert sorted(p.name for p in (tmp_path / "vm").iterdir()) == ["cidata.iso"]  # no staging left


HASH = "$6$rounds=4096$saltsalt$8Yh0fDk0bLd6Kk8n0C8oQ0c0iHnN2o2Lr8v6wZ1qk0dQ0f9g3X0yJxJ1nq2kQ3c8yL4x0Z3mA7rN9s2d5T1"


def test_seed_with_the_users_own_files_is_copied_as_is(tmp_path):
    user_data = tmp_path / "ud"
    user_data.write_text(f"#cloud-config\nusers: [{{name: a, passwd: '{HASH}', lock_passwd: false}}]\n"
                         "chpasswd:\n  expire: false\n")
    net = tmp_path / "net"
    net.write_text("version: 2\nethernets: {}\n")
    plan = plan_seed(f"user-data={user_data},network-config={net}", tmp_path / "vm", "vm", "u")
    assert plan.user is None and plan.file("user-data").data == user_data.read_bytes()  # copied as is
    assert plan.file("network-config").data == net.read_bytes()
    assert plan.warnings == ()  # a hash and 'chpasswd: {expire: false}' set no password in clear
    (tmp_path / "vm").mkdir()
    write_seed(plan)
    files = _extract(tmp_path / "vm" / "cidata.iso", tmp_path / "out")
    assert files["user-data"] == user_data.read_text() and set(files) == {"user-data", "meta-data", "network-config"}


@pytest.mark.parametrize("user_data,where", [
    ("users: [{name: a, plain_text_passwd: hunter2}]\n", "users[0].plain_text_passwd"),  # flow style
    ("users:\n  - default\n  - name: a\n    plain_text_passwd: hunter2\n", "users[1].plain_text_passwd"),
    ("users:\n  - {name: a, passwd: hunter2}\n", "users[0].passwd"),  # passwd wants a hash: this is none
    ("password: hunter2\nchpasswd: {expire: false}\n", "password"),
    ("chpasswd:\n  list: |\n    a:hunter2\n    b:RANDOM\n", "chpasswd.list[0]"),
    ("chpasswd: {list: [a:R, 'b:hunter2']}\n", "chpasswd.list[1]"),
    ("chpasswd:\n  users:\n    - {name: a, password: hunter2, type: text}\n    - {name: b, type: RANDOM}\n",
     "chpasswd.users[0].password"),
    ("rh_subscription: {username: a, password: hunter2}\n", "rh_subscription.password"),
    ("users: [{name: a, plain_text_passwd: x}, {name: b, passwd: y}]\n", "users[0].plain_text_passwd, "
                                                                          "users[1].passwd"),
])
def test_seed_refuses_a_clear_password_in_cloud_config(tmp_path, user_data, where):
    path = tmp_path / "ud"
    path.write_text("#cloud-config\n" + user_data)
    with pytest.raises(ConfigError) as info:
        plan_seed(f"user-data={path}", tmp_path / "vm", "vm", "u")
    assert str(info.value) == (
        f"--cloud-init user-data={path} sets a password in clear text ({where}): it would be stored in the seed in "
        "the store and on a CD-ROM anyone in the guest can read; give a crypt hash instead ('mkpasswd -m "
        "sha-512': users[].passwd or hashed_passwd, chpasswd users with type hash) or log in with SSH keys")


@pytest.mark.parametrize("user_data", [
    f"users: [{{name: a, hashed_passwd: '{HASH}'}}]\n",
    "chpasswd:\n  users:\n    - {name: b, type: RANDOM}\n    - {name: c, password: '$y$j9T$abc$def'}\n",
    "chpasswd: {list: [a:RANDOM, 'b:$6$salt$hash']}\n",
    "users: [{name: a, lock_passwd: true, ssh_authorized_keys: ['ssh-ed25519 AAAA x']}]\n",
    "password: ''\n",
])
def test_seed_accepts_hashes_random_and_no_password(tmp_path, user_data):
    path = tmp_path / "ud"
    path.write_text("#cloud-config\n" + user_data)
    assert plan_seed(f"user-data={path}", tmp_path / "vm", "vm", "u").warnings == ()


def test_seed_warns_when_user_data_is_not_yaml(tmp_path):
    script = tmp_path / "ud"
    script.write_text("#!/bin/sh\necho 'root: x' | chpasswd\nprintf '%s' \"password: $1\" > /tmp/x\n")
    plan = plan_seed(f"user-data={script}", tmp_path / "vm", "vm", "u")
    assert len(plan.warnings) == 1 and plan.warnings[0].startswith(
        f"--cloud-init user-data={script} is not cloud-config YAML, and mentions password: if it sets a password "
        "in clear text, that is stored in")
    script.write_text("#!/bin/sh\necho hello\n")
    assert plan_seed(f"user-data={script}", tmp_path / "vm", "vm", "u").warnings == ()
    # cloud-config our bounded YAML reader refuses (anchors): searched like a script, flow style included.
    script.write_text("#cloud-config\nusers: [{name: &n a, plain_text_passwd: hunter2}]\n")
    warnings = plan_seed(f"user-data={script}", tmp_path / "vm", "vm", "u").warnings
    assert len(warnings) == 1 and "and mentions plain_text_passwd: if it sets a password" in warnings[0]


def test_create_refuses_a_clear_password_before_writing_anything(tmp_path, base):
    user_data = tmp_path / "ud"
    user_data.write_text("#cloud-config\nusers: [{name: a, plain_text_passwd: hunter2}]\n")
    store = tmp_path / "store"
    result = cli("create", "testing", "--name", "t5", "--output", str(store), "--disk", "none", "--network", "none",
                 "--cloud-init", f"user-data={user_data}")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "sets a password in clear text (users[0].plain_text_passwd)" in result.stderr
    assert not (store / "t5").exists()


@pytest.mark.parametrize("content,message", [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
     "this is a private key"),
    ("not a key\n", "not an OpenSSH public key"),
    ("", "not an OpenSSH public key"),
])
def test_seed_refuses_what_is_not_a_public_key(tmp_path, content, message):
    path = tmp_path / "k"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        plan_seed(f"ssh-key={path}", tmp_path / "vm", "vm", "u")


@pytest.mark.parametrize("spec,message", [
    ("user=bob", "give ssh-key=FILE"),
    ("ssh-key=K,user-data=K", "with user-data=FILE put the key in that file"),
    ("ssh-key=K,user=Bad Name", "not a valid user name"),
    ("ssh-key=K,hostname=-bad", "not a valid host name"),
    ("ssh-key=K,password=x", "unknown option 'password'"),
])
def test_cloud_init_option_errors_are_one_line(tmp_path, key, spec, message):
    result = cli("create", "testing", "--name", "t4", "--output", str(tmp_path), "--print-xml", "--cloud-init",
                 spec.replace("K", str(key)))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


# -- --os ---------------------------------------------------------------------------------------

OSINFO_TREE = {
    "usr/share/osinfo/os/microsoft.com/win-11.xml": """<libosinfo version="0.0.1">
  <os id="http://microsoft.com/win/11"><short-id>win11</short-id><name>Microsoft Windows 11</name>
    <family>winnt</family>
    <resources arch="x86_64"><minimum><n-cpus>2</n-cpus><ram>4294967296</ram><storage>68719476736</storage>
    </minimum></resources></os></libosinfo>""",
    "usr/share/osinfo/os/ubuntu.com/ubuntu-22.04.xml": """<libosinfo version="0.0.1">
  <os id="http://ubuntu.com/ubuntu/22.04"><short-id>ubuntu22.04</short-id><name>Ubuntu 22.04 LTS</name>
    <family>linux</family>
    <resources arch="all"><minimum><n-cpus>1</n-cpus><ram>2147483648</ram><storage>10737418240</storage>
    </minimum><recommended><ram>4294967296</ram></recommended></resources></os></libosinfo>""",
    "usr/share/osinfo/os/libosinfo.org/linux-2022.xml": """<libosinfo version="0.0.1">
  <os id="http://libosinfo.org/linux/2022"><short-id>linux2022</short-id><name>Generic Linux 2022</name>
    <family>linux</family><derives-from id="http://ubuntu.com/ubuntu/22.04"/>
    <resources arch="all" inherit="true"/></os></libosinfo>""",
    # A local override (/etc/osinfo) of the system's win11 wins, as in libosinfo.
    "etc/osinfo/os/microsoft.com/win-11.xml": """<libosinfo version="0.0.1">
  <os id="http://microsoft.com/win/11"><short-id>win11</short-id><name>Windows 11 (site)</name>
    <family>winnt</family>
    <resources arch="x86_64"><minimum><n-cpus>2</n-cpus><ram>4294967296</ram><storage>68719476736</storage>
    </minimum></resources></os></libosinfo>""",
}


@pytest.fixture
def osinfo_root(tmp_path: Path) -> HostRoot:
    for rel, text in OSINFO_TREE.items():
        path = tmp_path / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HostRoot(tmp_path / "root")


def test_osinfo_inherits_resources_and_local_overrides_system(osinfo_root, monkeypatch):
    for var in ("OSINFO_SYSTEM_DIR", "OSINFO_LOCAL_DIR", "OSINFO_USER_DIR"):
        monkeypatch.delenv(var, raising=False)
    info, note = lookup("linux2022", osinfo_root)
    assert note is None and info.family == "linux" and info.uri == "http://libosinfo.org/linux/2022"
    assert (info.minimum.n_cpus, info.minimum.ram, info.recommended.ram) == (1, 2 * 1024**3, 4 * 1024**3)
    win, _ = lookup("win11", osinfo_root)
    assert (win.name, win.family, win.osinfo_family) == ("Windows 11 (site)", "windows", "winnt")
    with pytest.raises(ConfigError, match="libosinfo knows no such OS; did you mean linux2022"):
        lookup("linux2021", osinfo_root)
    assert lookup("windows", osinfo_root)[0].family == "windows"


def test_osinfo_without_database_guesses_and_says_so(tmp_path):
    info, note = lookup("win10", HostRoot(tmp_path))
    assert info.family == "windows" and note and "database is not installed" in note
    assert not OsDatabase(HostRoot(tmp_path)).installed


def test_installed_osinfo_db_is_read():
    db = OsDatabase(HostRoot())
    assert db.installed, "osinfo-db is not installed (scripts/setup.sh installs it)"
    info = db.by_short_id("win11")
    assert info is not None and info.family == "windows" and info.minimum.ram == 4 * 1024**3


def test_windows_guest_gets_what_windows_needs(tmp_path, osinfo_root):
    result = cli("--host-root", str(osinfo_root.root), "create", "testing", "--name", "w1", "--output",
                 str(tmp_path / "s"), "--os", "win11", "--dry-run")
    assert result.returncode == 0, result.stderr
    table = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines() if line[:1].isalpha()}
    for key, value in (("features.hyperv", "on"), ("clock.offset", "localtime"), ("tpm.model", "tpm-crb"),
                       ("firmware.secure_boot", "on"), ("firmware.enrolled_keys", "on"), ("os.id", "win11")):
        assert table[key][0] == value, (key, table[key])
    assert table["features.hyperv"][1] == "adapted"
    # below Windows 11's minimum (2 GiB of the 4, 20 GiB of the 64): warned, not refused
    assert "vm.memory=2GiB is below Windows 11 (site)'s minimum of 4GiB" in result.stderr
    assert "disk.size=20GiB is below Windows 11 (site)'s minimum of 64GiB" in result.stderr
    xml = cli("--host-root", str(osinfo_root.root), "create", "testing", "--name", "w1", "--output",
              str(tmp_path / "s"), "--os", "win11", "--print-xml")
    root = etree.fromstring(xml.stdout.encode())
    assert root.find("features/hyperv") is not None and root.find("clock").get("offset") == "localtime"
    assert root.find("clock/timer[@name='hypervclock']").get("present") == "yes"
    assert root.find("devices/tpm/backend").get("version") == "2.0"
    ns = {"libosinfo": "http://libosinfo.org/xmlns/libvirt/domain/1.0"}
    assert root.find("metadata/libosinfo:libosinfo/libosinfo:os", ns).get("id") == "http://microsoft.com/win/11"


def test_users_own_value_is_kept_against_the_os_with_a_warning(tmp_path, osinfo_root):
    result = cli("--host-root", str(osinfo_root.root), "create", "testing", "--name", "w2", "--output",
                 str(tmp_path), "--os", "win11", "--set", "features.hyperv=off", "--print-xml")
    assert result.returncode == 0, result.stderr
    assert etree.fromstring(result.stdout.encode()).find("features/hyperv") is None
    assert "features.hyperv=False kept as you set it" in result.stderr


def test_linux_guest_gets_none_of_the_windows_bits(tmp_path, osinfo_root):
    config = tmp_path / "site.yaml"
    config.write_text("scenarios:\n  testing:\n    clock.offset: localtime\n")
    config.chmod(0o600)
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    # A site plugin that made every testing VM a Windows one: a Linux guest undoes it.
    (plugin / "winsite.py").write_text(
        "from virtscenario.api import Choice, hookimpl\n"
        "@hookimpl\ndef scenario_overrides(scenario):\n"
        "    if scenario.name == 'testing':\n"
        "        yield Choice('features.hyperv', True, 'site runs Windows', 'https://site/wiki')\n")
    result = cli("--host-root", str(osinfo_root.root), "--plugins-dir", str(plugin), "create", "testing", "--name",
                 "l1", "--output", str(tmp_path / "s"), "--os", "linux2022", "--print-xml")
    assert result.returncode == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    assert root.find("features/hyperv") is None
    assert "features.hyperv=off for the linux guest linux2022 (the plugin value was on)" in result.stderr
    ns = {"libosinfo": "http://libosinfo.org/xmlns/libvirt/domain/1.0"}
    assert root.find("metadata/libosinfo:libosinfo/libosinfo:os", ns).get("id") == "http://libosinfo.org/linux/2022"


def test_unknown_os_is_one_line(tmp_path, osinfo_root):
    result = cli("--host-root", str(osinfo_root.root), "create", "testing", "--name", "x", "--output", str(tmp_path),
                 "--os", "windoze", "--print-xml")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: os.id=windoze (--os): libosinfo knows no such OS")


# -- docs/testing-an-os.md ------------------------------------------------------------------------

def doc_create_commands() -> list[list[str]]:
    """The ``virtscenario create`` commands of docs/testing-an-os.md, as argv lists."""
    import re
    import shlex
    text = (Path(__file__).resolve().parents[2] / "docs" / "testing-an-os.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip().startswith("virtscenario create"):
                out.append(shlex.split(line.split("#", 1)[0] if " #" in line else line))
    return out


def test_docs_create_commands_run(tmp_path, key):
    """Each create command of the walk-through, with its files stood in for, generates a valid VM."""
    commands = doc_create_commands()
    assert len(commands) == 2, commands
    base = tmp_path / "debian-12-genericcloud-amd64.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "2G"], check=True)
    (tmp_path / "user-data").write_text(f"#cloud-config\nusers:\n  - name: me\n"
                                        f"    ssh_authorized_keys: [{PUBLIC_KEY}]\n")
    for name in ("bzImage", "initrd.img"):
        (tmp_path / name).write_bytes(b"x")
    for argv in commands:
        args = []
        for arg in argv[1:]:
            arg = arg.replace("/var/lib/virtscenario/images/", f"{tmp_path}/").replace("/srv/build/", f"{tmp_path}/")
            arg = arg.replace("$HOME/.ssh/id_ed25519.pub", str(key)).replace("user-data=user-data",
                                                                                f"user-data={tmp_path}/user-data")
            args.append(arg)
        args = [a for a in args if a != "--start"]
        result = cli(*args, "--output", str(tmp_path / "store"), "--print-xml")
        assert result.returncode == 0, (args, result.stderr)
        root = etree.fromstring(result.stdout.encode())
        assert root.find("devices/disk/source").get("file").startswith(str(tmp_path / "store"))


class _Guest:
    """What verify_checks sees of a Linux guest: ``run`` answers from canned /sys listings."""

    is_linux = True

    def __init__(self, acpi: bool, driver: str) -> None:
        self.acpi, self.driver = acpi, driver

    def run(self, argv: list[str]):
        from virtscenario.vm.agent import ExecResult
        script = argv[-1]
        if "pvpanic" in script:
            out = ("/sys/bus/acpi/devices/QEMU0001:00\n" if self.acpi else "") + \
                (f"bound {self.driver}/QEMU0001:00\n" if self.acpi and self.driver else "")
            return ExecResult(0, out, "")
        return ExecResult(0, "0x8086 0x25ab\n", "")  # the watchdog's PCI ids


class _Vm:
    scenario = "testing"

    def __init__(self) -> None:
        self.domain = etree.fromstring("<domain><devices><panic model='isa'/><watchdog model='i6300esb'/>"
                                       "</devices></domain>")


@pytest.mark.parametrize(("acpi", "driver", "ok"), [(True, "pvpanic-mmio", True), (True, "", False),
                                                     (False, "", False)])
def test_the_panic_check_needs_a_bound_driver(acpi: bool, driver: str, ok: bool) -> None:
    """The device alone reports nothing: a guest without the driver never tells QEMU of a panic,
    and on_crash never acts (the test guest had no pvpanic-mmio module and verify said ok)."""
    from virtscenario_testing import verify_checks
    check = next(c for c in verify_checks(_Vm(), _Guest(acpi, driver)) if c.check.startswith("panic device"))
    assert check.ok is ok
    if acpi and not driver:
        assert "no driver bound" in check.observed and "modprobe pvpanic-mmio" in check.observed
