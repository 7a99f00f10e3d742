"""Scenarios booted from the test guest on the real libvirtd, then ``virtscenario verify`` from inside them.

One module-scoped fixture creates and starts three VMs through the CLI, as a user would,
all from the test guest (scripts/build-test-guest.sh): direct kernel boot (``--boot
kernel=,initrd=,cmdline=``) and a qcow2 overlay on its disk image (``--disk
path=disk.ext4,overlay=on``), under TCG:

* ``testing`` with ``--cloud-init ssh-key=...`` and ``--os linux2022``, user networking;
* ``desktop`` (vTPM, virtiofs share, secure-boot OVMF), user networking;
* ``computation`` (hugepages, watchdog, no TPM) on an isolated libvirt network with 2
  queue pairs (user networking has a single queue).

They boot concurrently; each test verifies one. The last test changes the testing VM's
definition behind its back (one vCPU fewer, restarted) and expects ``verify`` to fail.
Names start with ``testing-``; everything is removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from lxml import etree

from .agent import agent_exec, wait_for_agent
from .guest import BuildResult, console_tail, destroy_and_undefine

CMDLINE = "console=ttyS0 no_timer_check"  # no_timer_check: TCG on a busy host fails the IO-APIC timer check
MEMORY = "256MiB"
AGENT_TIMEOUT = 240  # three TCG guests boot at once on two host CPUs


def virtscenario(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("virtscenario")
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "virtscenario"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, env=env)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Fleet:
    """The three VMs of the module and where they live."""

    def __init__(self, conn: Any, store: Path, image: Any, key: Path, network: str) -> None:
        self.conn, self.store, self.image, self.key, self.network = conn, store, image, key, network
        tag = uuid.uuid4().hex[:6]
        self.names = {s: f"testing-{s[:4]}-{tag}" for s in ("testing", "desktop", "computation")}
        self.created: dict[str, subprocess.CompletedProcess] = {}
        self.create_seconds: dict[str, float] = {}

    def boot_args(self) -> list[str]:
        img = self.image
        return ["--boot", f'kernel={img.kernel},initrd={img.initrd},cmdline="{CMDLINE}"',
                "--disk", f"path={img.disk},overlay=on", "--memory", MEMORY, "--vcpus", "2",
                "--virt-type", "qemu", "--output", str(self.store), "--connect", "qemu:///system", "--start"]

    def create(self, scenario: str, *extra: str) -> None:
        start = time.monotonic()
        result = virtscenario("create", scenario, "--name", self.names[scenario], *self.boot_args(), *extra)
        self.create_seconds[scenario] = time.monotonic() - start
        self.created[scenario] = result
        assert result.returncode == 0, f"create {scenario}: {result.stderr.strip()}"

    def verify(self, scenario: str, *extra: str) -> subprocess.CompletedProcess:
        start = time.monotonic()
        result = virtscenario("verify", self.names[scenario], "--output", str(self.store), "--connect",
                              "qemu:///system", *extra)
        print(f"verify {scenario}: {time.monotonic() - start:.1f} s, exit {result.returncode}")
        return result

    def console(self, scenario: str) -> str:
        return console_tail(self.store / self.names[scenario] / "console.log", 20)


@pytest.fixture(scope="module")
def fleet(guest_build: BuildResult, guest_libvirtd: Any) -> Iterator[Fleet]:
    import libvirt
    store = Path(os.environ.get("TMPDIR", "/tmp")) / f"virtscenario-verify-{uuid.uuid4().hex[:8]}"
    store.mkdir(mode=0o755)
    key = store / "id_ed25519"
    keygen = shutil.which("ssh-keygen")
    assert keygen, "ssh-keygen is missing (openssh-client, scripts/setup.sh --tests)"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "testing@virtscenario", "-f", str(key)],
                   check=True, capture_output=True, timeout=60)
    # An isolated network (no forward, no IP): a tap per queue, so multi-queue is real there.
    network = f"testing-net-{uuid.uuid4().hex[:6]}"
    net = guest_libvirtd.networkCreateXML(f"<network><name>{network}</name></network>")
    fleet = Fleet(guest_libvirtd, store, guest_build.image, key, network)
    base_sum = sha256(guest_build.image.disk)
    try:
        fleet.create("testing", "--network", "user", "--os", "linux2022",
                     "--cloud-init", f"ssh-key={key}.pub,user=tester,hostname=seeded")
        fleet.create("desktop", "--network", "user")
        fleet.create("computation", "--network", f"network={network},queues=2")
        print("create + start: " + ", ".join(f"{s} {t:.1f} s" for s, t in fleet.create_seconds.items()))
        yield fleet
    finally:
        for name in fleet.names.values():
            try:
                destroy_and_undefine(guest_libvirtd.lookupByName(name))
            except libvirt.libvirtError:
                pass
        net.destroy()
        shutil.rmtree(store, ignore_errors=True)
    assert sha256(guest_build.image.disk) == base_sum, "the base image was written through an overlay"


def rows_of(result: subprocess.CompletedProcess) -> dict[str, dict[str, str]]:
    assert result.stdout.strip().startswith("["), f"no JSON from verify: {result.stdout[:300]} {result.stderr}"
    return {row["check"]: row for row in json.loads(result.stdout)}


def assert_verified(fleet: Fleet, scenario: str) -> dict[str, dict[str, str]]:
    result = fleet.verify(scenario, "--json", "--timeout", str(AGENT_TIMEOUT))
    assert result.returncode == 0, (f"verify {scenario} exited {result.returncode}: {result.stderr.strip()}\n"
                                    f"{result.stdout}\n--- console ---\n{fleet.console(scenario)}")
    rows = rows_of(result)
    assert all(r["status"] in ("ok", "skipped") for r in rows.values()), rows
    return rows


@pytest.mark.libvirtd
def test_testing_scenario_boots_from_overlay_and_kernel_and_verifies(fleet: Fleet):
    rows = assert_verified(fleet, "testing")
    for check in ("vCPUs", "vCPU topology", "memory", "disks (count, size)", "disk discard (TRIM)", "NICs", "TPM",
                  "clocksource", "memory encryption", "panic device (keeps a crash)", "watchdog"):
        assert rows[check]["status"] == "ok", rows[check]
    assert rows["TPM"]["expected"] == "absent"
    assert rows["vCPU topology"]["observed"] == "1 socket(s) x 1 die(s) x 2 core(s) x 1 thread(s)"
    vm = fleet.store / fleet.names["testing"]
    root = etree.parse(str(vm / "domain.xml")).getroot()
    assert root.findtext("os/kernel") == str(fleet.image.kernel) and root.findtext("os/cmdline") == CMDLINE
    assert root.find("devices/disk/source").get("file") == str(vm / f"{fleet.names['testing']}.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(vm / f"{vm.name}.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert (info["backing-filename"], info["backing-filename-format"]) == (str(fleet.image.disk), "raw")
    assert (vm / f"{vm.name}.qcow2").stat().st_mode & 0o777 == 0o600
    assert "virtscenario-test-guest: ready" in (vm / "console.log").read_text(errors="replace")


@pytest.mark.libvirtd
def test_cloud_init_seed_is_readable_inside_the_guest(fleet: Fleet):
    dom = fleet.conn.lookupByName(fleet.names["testing"])
    wait_for_agent(dom, AGENT_TIMEOUT)
    # libata probes SATA ports asynchronously: give /dev/sr0 a few seconds to appear.
    script = ("i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; "
              # The ISO 9660 volume id: 32 bytes at offset 40 of the primary volume descriptor (sector 16).
              "echo label=$(dd if=/dev/sr0 bs=1 skip=32808 count=32 2>/dev/null); "
              "mount -t iso9660 -o ro /dev/sr0 /mnt/cdrom && ls /mnt/cdrom && "
              "echo ---user-data && cat /mnt/cdrom/user-data && echo ---meta-data && cat /mnt/cdrom/meta-data; "
              "umount /mnt/cdrom")
    result = agent_exec(dom, ["sh", "-c", script])
    assert result.exitcode == 0, result.stderr
    out = result.stdout
    assert out.startswith("label=cidata\n"), out
    assert {"user-data", "meta-data"} <= set(out.split("---user-data")[0].split()[1:])
    user_data = out.split("---user-data\n")[1].split("---meta-data")[0]
    assert user_data.startswith("#cloud-config\n")
    public_key = Path(f"{fleet.key}.pub").read_text().strip()
    import yaml
    [user] = yaml.safe_load(user_data)["users"]
    assert (user["name"], user["ssh_authorized_keys"], user["lock_passwd"]) == ("tester", [public_key], True)
    assert public_key in user_data.splitlines()[-1]  # one line, as in authorized_keys
    assert "passw" not in user_data.replace("lock_passwd", "")  # no password of any kind
    meta = out.split("---meta-data\n")[1]
    assert "local-hostname: seeded" in meta
    uuid_text = etree.parse(str(fleet.store / fleet.names["testing"] / "domain.xml")).getroot().findtext("uuid")
    assert f"instance-id: {uuid_text}" in meta
    seed = fleet.store / fleet.names["testing"] / "cidata.iso"
    assert seed.stat().st_mode & 0o777 == 0o600
    private = Path(fleet.key).read_text()
    assert private.split("\n")[1] not in seed.read_bytes().decode(errors="replace")  # only the public key


@pytest.mark.libvirtd
def test_desktop_decisions_are_seen_inside(fleet: Fleet):
    rows = assert_verified(fleet, "desktop")
    assert rows["TPM"]["status"] == "ok" and rows["TPM"]["observed"].startswith("tpm0: TPM 2.0, driver tpm_crb")
    share = rows["virtiofs share host_share"]
    assert share["status"] == "ok" and share["observed"].startswith("mounted"), share
    assert rows["vCPU topology"]["observed"] == "1 socket(s) x 1 die(s) x 2 core(s) x 1 thread(s)"
    assert rows["disk discard (TRIM)"]["status"] == "ok"


@pytest.mark.libvirtd
def test_computation_decisions_are_seen_inside(fleet: Fleet):
    rows = assert_verified(fleet, "computation")
    assert rows["TPM"]["expected"] == "absent" and rows["TPM"]["observed"] == "absent"
    queues = next(r for name, r in rows.items() if name.startswith("queue pairs"))
    assert queues["observed"] == "2" and queues["status"] == "ok", queues
    assert not any(name.startswith("virtiofs") for name in rows)
    assert "memory" in rows and rows["memory"]["status"] == "ok"


@pytest.mark.libvirtd
def test_verify_fails_for_a_vm_changed_behind_its_back(fleet: Fleet):
    """One vCPU fewer in libvirt's definition (not in the store), restarted: verify reports it and exits 1."""
    name = fleet.names["testing"]
    dom = fleet.conn.lookupByName(name)
    import libvirt
    xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    xml.find("vcpu").text = "1"
    xml.find("cpu/topology").set("cores", "1")
    dom.destroy()
    dom = fleet.conn.defineXML(etree.tostring(xml, encoding="unicode"))
    dom.create()
    silent = fleet.verify("testing", "--timeout", "1")  # the guest is still booting: nothing answers yet
    assert silent.returncode == 2, silent.stderr
    assert "no answer from the guest agent" in silent.stderr
    result = fleet.verify("testing", "--timeout", str(AGENT_TIMEOUT))
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}\n{fleet.console('testing')}"
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert "MISMATCH" in lines["vCPUs"] and "1 online" in lines["vCPUs"]
    assert "MISMATCH" in lines["vCPU topology"]
    assert "ok" in lines["memory"]  # only what changed is reported
    assert result.stderr.startswith("Error: 2 check(s) disagree with the scenario's decisions: vCPUs, vCPU topology")


@pytest.mark.libvirtd
def test_verify_of_a_stopped_vm_exits_2(fleet: Fleet):
    dom = fleet.conn.lookupByName(fleet.names["computation"])
    dom.destroy()
    result = fleet.verify("computation")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"Error: {fleet.names['computation']} is not running on qemu:///system "
                                     f"(virsh start {fleet.names['computation']})")


@pytest.mark.libvirtd
def test_a_panic_is_kept_for_inspection(fleet: Fleet):
    """The testing scenario's promise, end to end: the guest's kernel panics, its pvpanic driver
    tells QEMU, and on_crash=preserve keeps the domain (crashed, its memory there) instead of
    rebooting it. Last in the module: the testing VM stays crashed."""
    import libvirt

    from .agent import agent_command
    name = fleet.names["testing"]
    dom = fleet.conn.lookupByName(name)
    wait_for_agent(dom, AGENT_TIMEOUT)
    rows = rows_of(fleet.verify("testing", "--json", "--timeout", str(AGENT_TIMEOUT)))
    assert rows["panic device (keeps a crash)"]["status"] == "ok", rows["panic device (keeps a crash)"]
    assert "driver pvpanic" in rows["panic device (keeps a crash)"]["observed"]
    # guest-exec returns at once; the panic then takes the agent down with the guest.
    agent_command(dom, "guest-exec", {"path": "sh", "arg": ["-c", "echo c > /proc/sysrq-trigger"]})
    deadline = time.monotonic() + 120
    state = dom.state()
    while time.monotonic() < deadline and state[0] != libvirt.VIR_DOMAIN_CRASHED:
        time.sleep(0.5)
        state = dom.state()
    assert state == [libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_CRASHED_PANICKED], \
        f"state {state}\n--- console ---\n{fleet.console('testing')}"
    assert "Kernel panic" in (fleet.store / name / "console.log").read_text(errors="replace")
