"""migrate-check: libvirt 9.0's own migration rules, between test:/// hosts and over tcp/ssh to the real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest
from virtscenario.fleet.migrate import Disk, _cache_rule, view, xml_findings
from virtscenario.fleet.pool import VolumeSpec, create_volume

from .conftest import node_uri, open_or_fail

DOMAIN = """<domain type='{vtype}'>
  <name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>{memory}</memory><vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  {cpu}
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='{cache}'/><source file='{path}'/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    {devices}
  </devices>
</domain>"""


def domain(name: str, path: str, cache: str = "none", devices: str = "", vtype: str = "kvm",
           cpu: str = "<cpu mode='custom' match='exact'><model>qemu64</model></cpu>", memory: int = 1024) -> str:
    return DOMAIN.format(name=name, uuid=uuid.uuid4(), path=path, cache=cache, devices=devices, vtype=vtype, cpu=cpu,
                         memory=memory)


def stored(store: Path, name: str, xml: str, host: str | None = None) -> None:
    d = store / name
    d.mkdir()
    (d / "domain.xml").write_text(xml)
    (d / "vm.yaml").write_text(f"name: {name}\n" + (f"host: {host}\n" if host else ""))


def test_blockers_read_from_the_xml() -> None:
    devices = """<hostdev mode='subsystem' type='pci'>
        <source><address bus='1' slot='0' function='0'/></source></hostdev>
      <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>
      <interface type='hostdev'><source><address type='pci' bus='2' slot='0' function='0'/></source>
        <teaming type='transient' persistent='ua-net'/></interface>
      <filesystem type='mount'><driver type='virtiofs'/><source dir='/srv/x'/><target dir='share'/></filesystem>
      <interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>
      <shmem name='legacy'><model type='ivshmem'/></shmem>"""
    xml = domain("b", "/srv/b.qcow2", devices=devices).replace(
        "</devices>", "</devices><launchSecurity type='sev'><policy>0x0003</policy></launchSecurity>").replace(
        "<model>qemu64</model>", "<model>EPYC</model><feature policy='require' name='invtsc'/>").replace(
        "<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='virtio'/><transient/>")
    found = [(f.status, f.message) for f in xml_findings(view(xml))]
    assert found == [
        ("blocker", "cannot migrate a domain with <hostdev mode='subsystem' type='pci'> (host devices other than USB "
                    "are tied to the source)"),
        ("blocker", "virtiofs share 'share': migration with virtiofs device is not supported"),
        ("blocker", "launch security sev: QEMU blocks migration (SEV: Migration is not implemented)"),
        ("blocker", "vDPA devices cannot be migrated"),
        ("blocker", "shmem 'legacy': only ivshmem-plain/doorbell with role='master' migrates"),
        ("blocker", "disk vda: migration with transient disk is not supported"),
        ("blocker", "domain has 'invtsc' CPU feature but TSC frequency is not specified"),
    ]
    clean = xml_findings(view(domain("c", "/srv/c.qcow2")))
    assert [(f.status, f.area) for f in clean] == [("ok", "devices")]


@pytest.mark.parametrize("cache, shareable, qemu, status", [
    ("none", False, None, "ok"), ("directsync", False, 2, "ok"), ("writeback", True, 2, "ok"),
    ("writeback", False, 7002000, "ok"), ("unsafe", False, 4002000, "ok"),
    ("writeback", False, 4001000, "blocker"), (None, False, 2, "blocker"), ("writethrough", False, None, "warning"),
])
def test_libvirt_disk_cache_rule(cache: str | None, shareable: bool, qemu: int | None, status: str) -> None:
    disk = Disk("vda", "disk", "file", "/nfs/a.qcow2", False, shareable, False, cache)
    assert _cache_rule("disk vda", disk, qemu).status == status


def test_between_test_hosts_running_vm_copied_into_a_target_pool(
        fleet_cli: Callable[..., tuple[int, str, str]], write_inventory: Callable[..., Path], store: Path) -> None:
    inv = write_inventory({"epyc": node_uri("node-epyc.xml"), "xeon": node_uri("node-xeon.xml")})
    code, out, err = fleet_cli("migrate-check", "fleet-web1", "--from", "epyc", "--to", "xeon", "--hosts", str(inv),
                               "--output", str(store), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["xml_from"] == "running on epyc" and report["migratable"] is True
    got = [(f["area"], f["status"], f["message"]) for f in report["findings"]]
    assert ("storage", "warning", "disk vda: /srv/fleet-epyc/fleet-web1.qcow2 is local storage on the source (pool "
            "local, dir): migrate with --copy-storage-all (or put it on shared storage)") in got
    assert ("storage", "ok", "disk vda: libvirt can pre-create it in the target's pool 'images' at /srv/fleet-epyc") \
        in got
    cpu = next(f for f in report["findings"] if f["area"] == "cpu")
    assert cpu["status"] == "warning" and "not supported by the connection driver" in cpu["message"]


@pytest.mark.parametrize("cache, code", [("writeback", 1), ("none", 0)])
def test_shared_nfs_disk_and_the_source_qemu_cache_rule(
        cache: str, code: int, fleet_cli: Callable[..., tuple[int, str, str]], write_inventory: Callable[..., Path],
        store: Path) -> None:
    inv = write_inventory({"epyc": node_uri("node-epyc.xml"), "xeon": node_uri("node-xeon.xml")})
    stored(store, "fleet-db1", domain("fleet-db1", "/srv/shared/fleet-db1.qcow2", cache), host="xeon")
    rc, out, err = fleet_cli("migrate-check", "fleet-db1", "--to", "epyc", "--hosts", str(inv), "--output", str(store))
    assert rc == code
    assert out.startswith(f"Migration of fleet-db1 from xeon to epyc (domain XML: {store}/fleet-db1/domain.xml):")
    flat = " ".join(out.split())  # findings wrap to the terminal
    assert "disk vda: /srv/shared/fleet-db1.qcow2 on shared storage (pool shared, netfs)" in flat
    if cache == "writeback":
        # the test driver's "QEMU" is version 0.0.2: too old to drop the page cache, so libvirt would refuse
        assert "BLOCKER storage disk vda: cache=writeback: Migration may lead to data corruption" in flat
        assert err.strip().splitlines() == ["Error: fleet-db1 cannot migrate to epyc: disk vda: cache=writeback: "
                                            "Migration may lead to data corruption if disks use cache other than none "
                                            "or directsync"]
    else:
        assert "disk vda: cache=none: safe" in flat and out.rstrip().endswith("fleet-db1 can migrate (2 warning(s))")


def test_unknown_vm_and_host_are_one_line(fleet_cli: Callable[..., tuple[int, str, str]],
                                         write_inventory: Callable[..., Path], store: Path) -> None:
    inv = write_inventory({"epyc": node_uri("node-epyc.xml")})
    code, _out, err = fleet_cli("migrate-check", "nope", "--to", "epyc", "--hosts", str(inv), "--output", str(store))
    assert (code, err.strip()) == (1, "Error: VM 'nope' is not in the store (create it first, use --output, or name "
                                      "the host it is defined on with --from)")
    code, _out, err = fleet_cli("migrate-check", "nope", "--to", "epic", "--hosts", str(inv), "--output", str(store))
    assert (code, err.strip()) == (1, f"Error: no host 'epic' in {inv}; did you mean 'epyc'?")


@pytest.mark.libvirtd
def test_over_tcp_and_ssh_to_the_same_daemon(fleet_cli: Callable[..., tuple[int, str, str]],
                                             write_inventory: Callable[..., Path], tcp_uri: str, ssh_uri: str,
                                             store: Path, dir_pool: Callable[[str], tuple[str, Path]]) -> None:
    pool, _directory = dir_pool(tcp_uri)
    conn = open_or_fail(tcp_uri)
    try:
        vol = create_volume(conn, pool, VolumeSpec("fleet-mig.qcow2", 64 * 1024**2))
    finally:
        conn.close()
    name = f"fleet-mig-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, "-m", "virtscenario", "create", "desktop", "--name", name, "--output", str(store),
            "--connect", tcp_uri, "--virt-type", "qemu", "--disk", f"path={vol.path}", "--network", "user",
            "--set", "cpu.mode=custom", "--set", "cpu.model=qemu64"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    inv = write_inventory({"tcp": tcp_uri, "ssh": ssh_uri})
    code, out, err = fleet_cli("migrate-check", name, "--from", "ssh", "--to", "tcp", "--hosts", str(inv),
                               "--output", str(store), "--json")
    assert code == 1
    report = json.loads(out)
    got = {(f["area"], f["status"]): f["message"] for f in report["findings"]}
    assert got[("host", "blocker")].startswith("the target is the source host (host UUID ")
    assert got[("cpu", "ok")] == "the VM's CPU is a subset of what the target offers (EPYC)"
    assert got[("machine", "ok")].startswith("the target offers machine pc-q35-")
    assert got[("storage", "warning")] == (f"disk vda: {vol.path} is local storage on the source (pool {pool}, dir): "
                                           "migrate with --copy-storage-all (or put it on shared storage)")
    assert got[("storage", "ok")] == f"disk vda: the target already has {vol.path}"
    assert "migration with virtiofs device is not supported" in got[("devices", "blocker")]
    assert err.startswith("Error: " + name + " cannot migrate to tcp: the target is the source host")
    # a CPU this host cannot give: libvirt's own reason
    xml = (store / name / "domain.xml").read_text().replace("<model fallback=\"forbid\">qemu64</model>",
                                                               "<model fallback=\"forbid\">EPYC-Milan</model>")
    assert "EPYC-Milan" in xml
    (store / name / "domain.xml").write_text(xml)
    code, out, err = fleet_cli("migrate-check", name, "--to", "tcp", "--hosts", str(inv), "--output", str(store))
    assert code == 1
    assert "BLOCKER cpu the VM's CPU is incompatible with the target: the CPU is incompatible with host CPU: " \
           "Host CPU does not provide required features:" in " ".join(out.split())


# -- volume disks (create --place --pool): each host resolves pool/volume in its own pool of that name --------
NODE = """<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>
  <mhz>2000</mhz><model>test</model></cpu><memory>16777216</memory>{pools}</node>"""
NFS_SOURCE = "<source><host name='nas.example.org'/><dir path='/export/vms'/><format type='nfs'/></source>"


def pool(kind: str, name: str, path: str, volume: str = "") -> str:
    vol = (f"<volume type='file'><name>{volume}</name><capacity unit='GiB'>8</capacity>"
           "<target><format type='qcow2'/></target></volume>") if volume else ""
    return (f"<pool type='{kind}'><name>{name}</name><uuid>{uuid.uuid4()}</uuid><capacity unit='GiB'>100</capacity>"
            f"<allocation unit='GiB'>0</allocation><available unit='GiB'>100</available>"
            f"{NFS_SOURCE if kind == 'netfs' else ''}<target><path>{path}</path></target>{vol}</pool>")


def volume_domain(name: str, pool_name: str, volume: str) -> str:
    """domain() with its disk made a volume of ``pool_name``, as create --place --pool writes it."""
    xml = domain(name, "/unused.qcow2")
    start = xml.index("<disk type='file' device='disk'>")
    end = xml.index("</disk>", start) + len("</disk>")
    return (xml[:start] + f"<disk type='volume' device='disk'><driver name='qemu' type='qcow2' cache='none'/>"
            f"<source pool='{pool_name}' volume='{volume}'/><target dev='vda' bus='virtio'/></disk>" + xml[end:])


@pytest.mark.parametrize("source_pool, target_pools, expected", [
    # a local dir pool on the source and an NFS pool of the same name on the target: not shared, copy it
    ("dir", [("netfs", "vms", "/srv/nfs-vms", "")],
     [("warning", "disk vda: volume vms/fleet-vol1.qcow2 is local storage on the source (pool vms, dir): migrate "
                  "with --copy-storage-all (or put it in a shared pool of that name on both hosts)"),
      ("ok", "disk vda: libvirt can pre-create volume 'fleet-vol1.qcow2' in the target's pool 'vms' (netfs)")]),
    # a dir pool of that name on the target (at another path): the copy is pre-created there by pool name
    ("dir", [("dir", "vms", "/var/lib/other", "")],
     [("warning", "disk vda: volume vms/fleet-vol1.qcow2 is local storage on the source (pool vms, dir): migrate "
                  "with --copy-storage-all (or put it in a shared pool of that name on both hosts)"),
      ("ok", "disk vda: libvirt can pre-create volume 'fleet-vol1.qcow2' in the target's pool 'vms' (dir)")]),
    ("dir", [("dir", "vms", "/var/lib/other", "fleet-vol1.qcow2")],
     [("warning", "disk vda: volume vms/fleet-vol1.qcow2 is local storage on the source (pool vms, dir): migrate "
                  "with --copy-storage-all (or put it in a shared pool of that name on both hosts)"),
      ("ok", "disk vda: the target's pool 'vms' already has volume 'fleet-vol1.qcow2'")]),
    # shared on both hosts: nothing to copy, the cache rule applies
    ("netfs", [("netfs", "vms", "/srv/nfs-vms", "fleet-vol1.qcow2")],
     [("ok", "disk vda: volume vms/fleet-vol1.qcow2 on shared storage on both hosts (pool vms: netfs on the source, "
             "netfs on the target)"),
      ("ok", "disk vda: cache=none: safe")]),
    # shared on the source only: the target's local pool of that name is another file
    ("netfs", [("dir", "vms", "/srv/nfs-vms", "")],
     [("warning", "disk vda: volume vms/fleet-vol1.qcow2 is on shared storage on the source (pool vms, netfs) but the "
                  "target's pool vms is dir, so the target would open another file: migrate with --copy-storage-all "
                  "(or put it in a shared pool of that name on both hosts)"),
      ("ok", "disk vda: libvirt can pre-create volume 'fleet-vol1.qcow2' in the target's pool 'vms' (dir)")]),
    ("dir", [("dir", "images", "/srv/vms-src", "")],
     [("blocker", "disk vda: the target has no storage pool 'vms' (the disk is volume 'fleet-vol1.qcow2' of that "
                  "pool, looked up by name on each host)")]),
])
def test_volume_disks_are_judged_by_each_hosts_own_pool(
        source_pool: str, target_pools: list[tuple[str, str, str, str]], expected: list[tuple[str, str]],
        fleet_cli: Callable[..., tuple[int, str, str]], write_inventory: Callable[..., Path], store: Path,
        tmp_path: Path) -> None:
    src = tmp_path / "node-src.xml"
    src.write_text(NODE.format(pools=pool(source_pool, "vms", "/srv/vms-src", "fleet-vol1.qcow2")))
    tgt = tmp_path / "node-tgt.xml"
    tgt.write_text(NODE.format(pools="".join(pool(*p) for p in target_pools)))
    inv = write_inventory({"src": f"test://{src}", "tgt": f"test://{tgt}"})
    stored(store, "fleet-vol1", volume_domain("fleet-vol1", "vms", "fleet-vol1.qcow2"), host="src")
    code, out, err = fleet_cli("migrate-check", "fleet-vol1", "--to", "tgt", "--hosts", str(inv), "--output",
                               str(store), "--json")
    report = json.loads(out)
    assert report["source"] == "src" and report["xml_from"] == f"{store}/fleet-vol1/domain.xml"
    got = [(f["status"], f["message"]) for f in report["findings"] if f["area"] == "storage" and "vda" in f["message"]]
    assert got == expected
    assert code == (1 if any(status == "blocker" for status, _m in expected) else 0), err
