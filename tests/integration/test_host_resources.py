"""Host resources on the real libvirtd: networks (created, used by a started TCG guest, refused
while in use, deleted; subnet collisions) and a host device from this machine's nodedev list.

Names are ``<prefix>-hostres-...`` (the daemon is shared; the prefix is
``VIRTSCENARIO_TEST_DOMAIN_PREFIX``, see conftest.unique_name). dnsmasq (Debian: dnsmasq-base) must be
installed: ``scripts/setup.sh --tests`` does it; without it libvirt cannot start a NAT network.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from lxml import etree
from virtscenario import hookimpl
from virtscenario.domain.generate import Request, generate
from virtscenario.domain.sections.hostdevs import parse_hostdev
from virtscenario.host.devices import group_partners, pci_problems, read_devices
from virtscenario.host.root import HostRoot
from virtscenario.plugin.builtin import choices as core_choices
from virtscenario.plugin.builtin import rules as core_rules
from virtscenario.plugin.hooks import Catalog
from virtscenario.plugin.manager import VirtscenarioPluginManager
from virtscenario.types import Choice, Scenario
from virtscenario.vm.networks import recorded_networks, release_network

from .conftest import SYSTEM_URI, import_libvirt, open_libvirtd, remove_domain, unique_name

pytestmark = pytest.mark.libvirtd
REF = "https://libvirt.org/formatnetwork.html"
#: A guest that starts in a second under TCG: BIOS, no disk, no display.
TINY = Scenario("hostres-tiny", "host resources test guest", "1.0", settings=tuple(
    Choice(k, v, f"integration test: {k}", REF) for k, v in (
        ("vm.vcpus", 1), ("vm.memory", "128MiB"), ("firmware.type", "bios"), ("graphics.type", "none"),
        ("video.model", "none"), ("sound.model", "none"), ("tpm.model", "none"))))


class TinyPlugin:
    @hookimpl
    def register_scenarios(self) -> list[Scenario]:
        return [TINY]


def pm() -> VirtscenarioPluginManager:
    manager = VirtscenarioPluginManager()
    manager.register_plugin(core_rules, name="core_rules", distribution="virtscenario", builtin=True)
    manager.register_plugin(core_choices, name="core_choices", distribution="virtscenario", builtin=True)
    manager.register_plugin(TinyPlugin(), name="tiny", distribution="tests")
    return manager


def name(label: str) -> str:
    return unique_name(f"hostres-{label}")


@pytest.fixture()
def conn() -> Iterator[Any]:
    connection = open_libvirtd()
    yield connection
    connection.close()


@pytest.fixture()
def cli(run_cli: Callable) -> Callable[..., tuple[int, str, str]]:
    return run_cli(pm())


@pytest.fixture()
def cleanup(conn: Any) -> Iterator[dict[str, list[str]]]:
    """Domains and networks to remove after the test, pass or fail."""
    made: dict[str, list[str]] = {"domains": [], "networks": []}
    yield made
    libvirt = import_libvirt()
    for dom in made["domains"]:
        remove_domain(conn, dom)
    for net_name in made["networks"]:
        try:
            net = conn.networkLookupByName(net_name)
        except libvirt.libvirtError:
            continue
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()


def net_xml(conn: Any, net_name: str) -> Any:
    return etree.fromstring(conn.networkLookupByName(net_name).XMLDesc(0).encode())


def subnet_of(root: Any) -> ipaddress.IPv4Network:
    ip = root.find("ip")
    return ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('netmask')}").network


def test_nat_and_isolated_networks_carry_a_started_guest_then_go(conn: Any, cli: Callable, cleanup: dict,
                                                                 tmp_path: Path) -> None:
    nat, iso, vm = name("nat"), name("iso"), name("vm")
    cleanup["networks"] += [nat, iso]
    cleanup["domains"].append(vm)
    code, out, err = cli("network", "create", nat, "--nat")
    assert code == 0, err
    nat_root = net_xml(conn, nat)
    assert nat_root.find("forward").get("mode") == "nat" and conn.networkLookupByName(nat).isActive()
    nat_subnet = subnet_of(nat_root)
    assert f"Created network {nat} (NAT, {nat_subnet}, DHCP" in out
    # The free subnet overlaps no other libvirt network and no route of this host.
    for other in conn.listAllNetworks(0):
        if other.name() != nat and net_xml(conn, other.name()).find("ip") is not None:
            assert not nat_subnet.overlaps(subnet_of(net_xml(conn, other.name())))

    code, out, err = cli("network", "create", iso, "--isolated", "--dhcp", "none")
    assert code == 0, err
    iso_root = net_xml(conn, iso)
    assert iso_root.find("forward") is None and iso_root.find("ip/dhcp") is None
    assert not subnet_of(iso_root).overlaps(nat_subnet)

    code, out, err = cli("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none",
                         "--network", f"network={iso}", "--virt-type", "qemu", "--start")
    assert code == 0, err
    dom = conn.lookupByName(vm)
    assert dom.isActive()
    live = etree.fromstring(dom.XMLDesc(0).encode())
    assert [s.get("network") for s in live.iterfind("devices/interface/source")] == [iso]

    code, out, err = cli("network", "list", "--json")
    import json
    rows = {n["name"]: n for n in json.loads(out)}
    assert rows[iso]["used_by"] == [vm] and rows[iso]["mode"] == "isolated" and rows[nat]["used_by"] == []

    code, out, err = cli("network", "delete", iso)
    assert (code, err) == (1, f"Error: network {iso!r} is used by domain {vm}: remove them or move their "
                              "interfaces first\n")
    assert conn.networkLookupByName(iso).isActive()

    remove_domain(conn, vm)
    for net_name in (iso, nat):
        code, out, err = cli("network", "delete", net_name)
        assert (code, out) == (0, f"Deleted network {net_name} on {SYSTEM_URI}\n"), err
    names = {n.name() for n in conn.listAllNetworks(0)}
    assert iso not in names and nat not in names


def test_colliding_subnets_are_refused_naming_the_collision(conn: Any, cli: Callable, cleanup: dict) -> None:
    first, second = name("a"), name("b")
    cleanup["networks"] += [first, second]
    assert cli("network", "create", first, "--isolated")[0] == 0
    taken = subnet_of(net_xml(conn, first))
    inside = list(taken.subnets(new_prefix=25))[1]
    code, out, err = cli("network", "create", second, "--isolated", "--subnet", str(inside))
    assert (code, err) == (1, f"Error: --subnet {inside} collides with libvirt network {first!r} ({taken})\n")
    # A route of this host (read here independently of the code under test).
    with open("/proc/net/route") as handle:
        rows = [line.split() for line in handle.read().splitlines()[1:]]
    routed = [(r[0], ipaddress.IPv4Network((int.from_bytes(bytes.fromhex(r[1]), "little"),
                                            bin(int.from_bytes(bytes.fromhex(r[7]), "little")).count("1"))))
              for r in rows if len(r) > 7 and r[7] != "00000000"]
    routed = [(iface, net) for iface, net in routed if not net.overlaps(taken)]
    assert routed, "this host has no route besides the default one: nothing to collide with"
    iface, net = routed[0]
    code, out, err = cli("network", "create", second, "--nat", "--subnet", str(net))
    assert (code, err) == (1, f"Error: --subnet {net} collides with the host route {net} on {iface}\n")
    assert second not in {n.name() for n in conn.listAllNetworks(0)}


@pytest.mark.parametrize("subnet,what", [
    ("127.0.0.0/24", "loopback (127.0.0.0/8, RFC 1122)"),
    ("224.0.0.0/24", "multicast (224.0.0.0/4, RFC 5771)"),
    ("169.254.0.0/24", "link-local (169.254.0.0/16, RFC 3927)"),
    ("255.255.255.0/24", "reserved (240.0.0.0/4, RFC 1112; with the broadcast address 255.255.255.255)"),
])
def test_special_subnets_are_refused_before_libvirt_sees_them(conn: Any, cli: Callable, cleanup: dict, subnet: str,
                                                               what: str) -> None:
    # libvirt itself defines and starts these (a virbrN with 127.0.0.1/24): the check is ours.
    net_name = name("special")
    cleanup["networks"].append(net_name)
    code, out, err = cli("network", "create", net_name, "--isolated", "--subnet", subnet)
    assert (code, out, err) == (1, "", f"Error: --subnet {subnet} is {what}: a libvirt network needs ordinary "
                                       "unicast addresses (e.g. 192.168.150.0/24 or 10.10.0.0/24)\n")
    assert net_name not in {n.name() for n in conn.listAllNetworks(0)}


def test_missing_network_refused_then_created_recorded_and_released(conn: Any, cli: Callable, cleanup: dict,
                                                                    tmp_path: Path) -> None:
    net_name, vm = name("auto"), name("vm")
    cleanup["networks"].append(net_name)
    cleanup["domains"].append(vm)
    args = ("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none", "--network",
            f"network={net_name}", "--virt-type", "qemu", "--define")
    code, out, err = cli(*args)
    assert (code, err) == (1, f"Error: network {net_name!r} does not exist on {SYSTEM_URI}: create it with "
                              f"'virtscenario network create {net_name} --nat' (or add --create-network)\n")
    assert not (tmp_path / vm).exists()

    code, out, err = cli(*args, "--create-network")
    assert code == 0, err
    assert f"Created network {net_name} on {SYSTEM_URI} (recorded in vm.yaml)" in out
    assert conn.networkLookupByName(net_name).isActive() and conn.lookupByName(vm)
    assert recorded_networks(tmp_path / vm) == [net_name]

    # What 'delete' calls: kept while another domain uses it, removed once only the leaving VM does.
    assert release_network(conn, net_name) == (False, f"kept network {net_name}: still used by {vm}")
    assert release_network(conn, net_name, leaving=vm) == (
        True, f"removed network {net_name} (made by --create-network; no other domain uses it)")
    assert net_name not in {n.name() for n in conn.listAllNetworks(0)}


def test_a_network_shared_by_two_vms_goes_with_the_last_one(conn: Any, cli: Callable, cleanup: dict,
                                                            tmp_path: Path) -> None:
    net_name, first, second = name("shared"), name("vm-a"), name("vm-b")
    cleanup["networks"].append(net_name)
    cleanup["domains"] += [first, second]

    def create(vm: str, *extra: str) -> str:
        code, out, err = cli("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none",
                             "--network", f"network={net_name}", "--virt-type", "qemu", "--define", *extra)
        assert code == 0, err
        return out

    assert f"Created network {net_name} on {SYSTEM_URI} (recorded in vm.yaml)" in create(first, "--create-network")
    out = create(second, "--create-network")  # the network exists now: nothing is created
    assert "Created network" not in out and f"Network {net_name} on {SYSTEM_URI} was made by --create-network" in out
    assert recorded_networks(tmp_path / first) == recorded_networks(tmp_path / second) == [net_name]

    code, out, err = cli("delete", first, "--output", str(tmp_path))
    assert code == 0, err
    assert f"Kept network {net_name}: still used by {second} on {SYSTEM_URI}" in out
    assert conn.networkLookupByName(net_name).isActive()
    code, out, err = cli("delete", second, "--output", str(tmp_path))
    assert code == 0, err
    assert (f"Removed network {net_name} (made by --create-network; no other domain uses it) on {SYSTEM_URI}"
            in out)
    assert net_name not in {n.name() for n in conn.listAllNetworks(0)}


def test_inactive_network_refused_then_started(conn: Any, cli: Callable, cleanup: dict, tmp_path: Path) -> None:
    net_name, vm = name("off"), name("vm")
    cleanup["networks"].append(net_name)
    cleanup["domains"].append(vm)
    code, _out, err = cli("network", "create", net_name, "--isolated")
    assert code == 0, err
    conn.networkLookupByName(net_name).destroy()
    args = ("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none", "--network",
            f"network={net_name}", "--virt-type", "qemu", "--start")
    code, out, err = cli(*args)
    assert (code, err) == (1, f"Error: network {net_name!r} on {SYSTEM_URI} is inactive, so the VM would not "
                              f"start: start it with 'virsh -c {SYSTEM_URI} net-start {net_name}' (or add "
                              "--create-network)\n")
    code, out, err = cli(*args, "--create-network")
    assert code == 0, err
    assert f"Started network {net_name} on {SYSTEM_URI}" in out and conn.lookupByName(vm).isActive()
    assert recorded_networks(tmp_path / vm) == []  # started, not created: delete must leave it alone


# -- a host device of this machine --------------------------------------------------------------------
def _nodedevs(conn: Any, flag: str) -> list[Any]:
    libvirt = import_libvirt()
    return conn.listAllDevices(getattr(libvirt, flag))


def _pci_address(dev: Any) -> str:
    cap = etree.fromstring(dev.XMLDesc(0).encode()).find("capability[@type='pci']")
    return "{:04x}:{:02x}:{:02x}.{:x}".format(*(int(cap.findtext(f)) for f in ("domain", "bus", "slot", "function")))


def test_a_nodedev_of_this_machine_is_checked_and_defined(conn: Any, cli: Callable, cleanup: dict,
                                                          tmp_path: Path) -> None:
    pci = _nodedevs(conn, "VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV")
    usb = _nodedevs(conn, "VIR_CONNECT_LIST_NODE_DEVICES_CAP_USB_DEV")
    assert pci or usb, "libvirt lists no PCI or USB device on this machine"
    facts = read_devices(HostRoot())
    capable = []
    for dev in pci:
        found = facts.pci_device(_pci_address(dev))
        assert found is not None and found.nodedev == dev.name()  # sysfs and libvirt agree
        partners = group_partners(found, facts)
        if not pci_problems(found, facts, frozenset(partners)):
            capable.append((dev.name(), partners))
    vm = name("dev")
    cleanup["domains"].append(vm)
    if capable:
        nodedev, partners = capable[0]
        extra = [a for p in partners for a in ("--hostdev", f"pci={p}")]
        code, out, err = cli("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none",
                             "--network", "none", "--virt-type", "qemu", "--define", "--hostdev", f"pci={nodedev}",
                             *extra)
        assert code == 0, err
    else:
        # Not one PCI device here can be passed through: say why, in the exact line create prints.
        groups = os.listdir("/sys/kernel/iommu_groups") if os.path.isdir("/sys/kernel/iommu_groups") else []
        nodedev = next(d.name() for d in pci if not facts.pci_device(_pci_address(d)).is_bridge
                       and not facts.controls_boot_disk(facts.pci_device(_pci_address(d)).path))
        code, out, err = cli("create", "hostres-tiny", "--name", vm, "--output", str(tmp_path), "--disk", "none",
                             "--network", "none", "--hostdev", f"pci={nodedev}", "--define")
        found = facts.pci_device(_pci_address(conn.nodeDeviceLookupByName(nodedev)))
        problems = pci_problems(found, facts, frozenset([found.address]))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        assert (code, err) == (1, f"Error: --hostdev pci={nodedev}: {problems[0]}{more}\n")
        if not groups:  # this machine (and the CI sandbox): no IOMMU at all
            assert problems[0] == ("the IOMMU is off on this host (/sys/kernel/iommu_groups is empty): "
                                   f"{facts.iommu_advice()}")
        assert not (tmp_path / vm).exists()
        # libvirt still defines (never starts) our <hostdev> for that real device: the rendering is right.
        cat = Catalog(pm())
        gen = generate(Request("hostres-tiny", vm, store_root=tmp_path, hostdevs=[parse_hostdev(f"pci={nodedev}")],
                               cli_settings=[("vm.virt_type", "qemu", "--virt-type")], networks=[]), cat)
        conn.defineXML(gen.xml.decode())
    root = etree.fromstring(conn.lookupByName(vm).XMLDesc(0).encode())
    address = root.find("devices/hostdev[@type='pci']/source/address")
    assert root.find("devices/hostdev").get("managed") == "yes"
    got = "{:04x}:{:02x}:{:02x}.{:x}".format(*(int(address.get(k), 16) for k in ("domain", "bus", "slot",
                                                                                   "function")))
    assert got == _pci_address(conn.nodeDeviceLookupByName(nodedev))
    assert not conn.lookupByName(vm).isActive()
