"""libvirt networks: the XML of each mode (valid against network.rng), subnets in use from a fake
/proc, the free subnet, and create/delete/users on libvirt's test driver (test:///default)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Iterator

import pytest
from lxml import etree
from virtscenario.domain.validate import validate_tree
from virtscenario.errors import ConfigError
from virtscenario.host.root import HostRoot
from virtscenario.vm import networks as n

SCHEMA = "/usr/share/libvirt/schemas/network.rng"
# eth0 192.0.2.0/24 with the default route through 192.0.2.1; wg0 10.8.0.0/16; docker0 172.17.0.0/16.
ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wg0\t0000080A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     |-- 192.168.122.77
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 192.168.122.77
        /32 host LOCAL
"""


@pytest.fixture
def host(tmp_path: Path) -> HostRoot:
    for name, text in (("route", ROUTE), ("fib_trie", FIB_TRIE)):
        path = tmp_path / "proc/net" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "sys/class/net/br0").mkdir(parents=True)
    return HostRoot(tmp_path)


@pytest.fixture
def conn(libvirt_module: Any) -> Iterator[Any]:
    """test:///default (one per process): networks a test makes are removed again."""
    connection = libvirt_module.open("test:///default")
    before = {net.name() for net in connection.listAllNetworks(0)}
    yield connection
    for net in connection.listAllNetworks(0):
        if net.name() not in before:
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()
    connection.close()


@pytest.fixture(scope="session")
def libvirt_module() -> Any:
    from tests.integration.conftest import import_libvirt
    return import_libvirt()


@pytest.mark.parametrize("spec,forward,has_ip", [
    (n.NetworkSpec("a", "nat", subnet="192.168.150.0/24", dhcp=("192.168.150.2", "192.168.150.254")), "nat", True),
    (n.NetworkSpec("b", "isolated", subnet="10.1.0.0/16", dhcp=None), None, True),
    (n.NetworkSpec("c", "route", subnet="10.2.0.0/24", dhcp=("10.2.0.10", "10.2.0.20")), "route", True),
    (n.NetworkSpec("d", "bridge", bridge="br0"), "bridge", False),
])
def test_network_xml_per_mode_is_schema_valid(spec: n.NetworkSpec, forward: Any, has_ip: bool) -> None:
    root = etree.fromstring(n.network_xml(spec))
    assert validate_tree(root, SCHEMA, what="network XML")
    assert root.findtext("name") == spec.name
    assert (root.find("forward").get("mode") if root.find("forward") is not None else None) == forward
    assert (root.find("ip") is not None) == has_ip
    if spec.mode == "bridge":
        assert root.find("bridge").attrib == {"name": "br0"}
    else:
        assert root.find("bridge").attrib == {"stp": "on", "delay": "0"}
        subnet = ipaddress.ip_network(spec.subnet)
        ip = root.find("ip")
        assert (ip.get("address"), ip.get("netmask")) == (str(subnet.network_address + 1), str(subnet.netmask))
        ranges = [(r.get("start"), r.get("end")) for r in ip.iterfind("dhcp/range")]
        assert ranges == ([spec.dhcp] if spec.dhcp else [])


@pytest.mark.parametrize("text,message", [
    ("192.168.1.5/24", "has host bits set: did you mean 192.168.1.0/24?"),
    ("192.168.1.0", "is not an IPv4 network"),
    ("fd00::/64", "is not an IPv4 network"),
    ("10.0.0.0/30", "the prefix must be between /8 and /29"),
    ("127.0.0.0/24", "is loopback (127.0.0.0/8, RFC 1122)"),
    ("127.0.0.0/8", "is loopback (127.0.0.0/8, RFC 1122)"),
    ("224.0.0.0/24", "is multicast (224.0.0.0/4, RFC 5771)"),
    ("239.1.0.0/16", "is multicast (224.0.0.0/4, RFC 5771)"),
    ("169.254.0.0/24", "is link-local (169.254.0.0/16, RFC 3927)"),
    ("169.0.0.0/8", "is link-local (169.254.0.0/16, RFC 3927)"),  # a /8 that holds the link-local /16
    ("255.255.255.0/24", "is reserved (240.0.0.0/4, RFC 1112; with the broadcast address 255.255.255.255)"),
    ("240.0.0.0/8", "is reserved (240.0.0.0/4"),
    ("0.0.0.0/8", "is unspecified (0.0.0.0/8, 'this network', RFC 1122)"),
])
def test_bad_subnets(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        n.parse_subnet(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_special_subnets_say_what_to_use_instead() -> None:
    with pytest.raises(ConfigError) as info:
        n.parse_subnet("127.0.0.0/24")
    assert str(info.value) == ("--subnet 127.0.0.0/24 is loopback (127.0.0.0/8, RFC 1122): a libvirt network needs "
                               "ordinary unicast addresses (e.g. 192.168.150.0/24 or 10.10.0.0/24)")
    # Neighbours of the special blocks are ordinary.
    for ok in ("126.0.0.0/8", "128.0.0.0/24", "169.253.0.0/16", "223.255.255.0/24", "10.0.0.0/8", "1.0.0.0/24"):
        assert str(n.parse_subnet(ok)) == ok


def test_the_default_subnet_is_never_special() -> None:
    candidates = list(n.default_candidates())
    assert len(candidates) == 155 and all(n.special_block(c) is None for c in candidates)
    # Every candidate taken: the error says so rather than falling back on anything else.
    used = [(ipaddress.IPv4Network("192.168.0.0/16"), "the host route 192.168.0.0/16 on eth0")]
    with pytest.raises(Exception, match="no free 192.168.x.0/24 subnet on this host"):
        n.free_subnet(used)


def test_dhcp_ranges() -> None:
    subnet = ipaddress.IPv4Network("10.5.0.0/24")
    assert n.parse_dhcp("10.5.0.100-10.5.0.200", subnet) == ("10.5.0.100", "10.5.0.200")
    assert n.parse_dhcp("none", subnet) is None
    assert n.default_dhcp(subnet) == ("10.5.0.2", "10.5.0.254")
    for bad, message in (("10.5.0.1-10.5.0.9", "10.5.0.1 is not a guest address of 10.5.0.0/24 (the host is "
                                               "10.5.0.1)"),
                         ("10.5.0.9-10.5.0.2", "the range ends before it starts"),
                         ("10.6.0.2-10.6.0.9", "10.6.0.2 is not a guest address"),
                         ("lots", "give START-END")):
        with pytest.raises(ConfigError) as info:
            n.parse_dhcp(bad, subnet)
        assert message in str(info.value)


def test_host_subnets_from_routes_and_local_addresses(host: HostRoot) -> None:
    used = n.host_subnets(host)
    assert [(str(net), what) for net, what in used] == [
        ("192.0.2.0/24", "the host route 192.0.2.0/24 on eth0"),
        ("10.8.0.0/16", "the host route 10.8.0.0/16 on wg0"),
        ("172.17.0.0/16", "the host route 172.17.0.0/16 on docker0"),
        ("192.168.122.77/32", "the host address 192.168.122.77"),
        ("127.0.0.1/32", "the host address 127.0.0.1"),  # loopback addresses are host addresses too
    ]
    # 192.168.122.0/24 holds a host address: the first free /24 is the next one.
    assert str(n.free_subnet(used)) == "192.168.123.0/24"
    assert n.collision(ipaddress.IPv4Network("10.8.4.0/24"), used) == "the host route 10.8.0.0/16 on wg0"


def test_plan_on_the_test_driver(conn: Any, host: HostRoot) -> None:
    # test:///default's own 'default' network holds 192.168.122.0/24.
    spec = n.plan_network(conn, host, "test:///default", "t-nat")
    assert (spec.mode, spec.subnet, spec.dhcp) == ("nat", "192.168.123.0/24", ("192.168.123.2", "192.168.123.254"))
    with pytest.raises(ConfigError) as info:
        n.plan_network(conn, host, "test:///default", "t-iso", "isolated", subnet="192.168.122.0/25")
    assert str(info.value) == ("--subnet 192.168.122.0/25 collides with libvirt network 'default' "
                               "(192.168.122.0/24)")
    with pytest.raises(ConfigError, match="network 'default' already exists on test:///default"):
        n.plan_network(conn, host, "test:///default", "default")
    with pytest.raises(ConfigError, match="there is no interface br9 on this host"):
        n.plan_network(conn, host, "test:///default", "t-br", "bridge", bridge="br9")
    with pytest.raises(ConfigError, match="--subnet and --dhcp apply to --nat"):
        n.plan_network(conn, host, "test:///default", "t-br", "bridge", bridge="br0", subnet="10.0.0.0/24")
    assert n.plan_network(conn, host, "test:///default", "t-br", "bridge", bridge="br0").bridge == "br0"
    with pytest.raises(ConfigError, match="network name 'a/b' is not valid"):
        n.plan_network(conn, host, "test:///default", "a/b")


def test_create_list_delete_and_users_on_the_test_driver(conn: Any, host: HostRoot) -> None:
    net = n.define_network(conn, n.plan_network(conn, host, "test:///default", "t-lab", "route", autostart=True))
    assert net.isActive() and net.autostart()
    rows = {i.name: i for i in n.list_networks(conn)}
    assert (rows["t-lab"].mode, rows["t-lab"].subnets, rows["t-lab"].used_by) == ("route", ("192.168.123.0/24",), ())
    assert rows["default"].used_by == ("test",)  # the test driver's own domain
    with pytest.raises(ConfigError) as info:
        n.delete_network(conn, "default", "test:///default")
    assert str(info.value) == ("network 'default' is used by domain test: remove them or move their interfaces "
                               "first")
    n.delete_network(conn, "t-lab", "test:///default")
    assert n.lookup(conn, "t-lab") is None
    with pytest.raises(ConfigError, match="network 't-lab' does not exist on test:///default"):
        n.delete_network(conn, "t-lab", "test:///default")


def test_prepare_networks_for_create(conn: Any, host: HostRoot) -> None:
    uri = "test:///default"
    with pytest.raises(ConfigError) as info:
        n.prepare_networks(conn, ["t-missing"], uri, host, create=False, required=True)
    assert str(info.value) == ("network 't-missing' does not exist on test:///default: create it with 'virtscenario "
                               "network create t-missing --nat --connect test:///default' (or add --create-network)")
    warned = n.prepare_networks(conn, ["t-missing", "default"], uri, host, create=False, required=False)
    assert (warned.created, warned.started, len(warned.warnings)) == ((), (), 1)
    made = n.prepare_networks(conn, ["t-missing", "default", "t-missing"], uri, host, create=True, required=True)
    assert (made.created, made.started) == (("t-missing",), ())
    assert n.lookup(conn, "t-missing").isActive()


def test_recording_in_vm_yaml(tmp_path: Path) -> None:
    from virtscenario.vm.store import VM_FILE, atomic_write, dump_yaml
    atomic_write(tmp_path / VM_FILE, dump_yaml({"name": "x", "uuid": "u", n.CREATED_KEY: ["lab", 3, "backend"]}))
    assert n.recorded_networks(tmp_path) == ["lab", "backend"]  # only names; the record is written by write_vm


def test_create_with_create_network_records_it(conn: Any, run_cli: Any, tmp_path: Path) -> None:
    from tests.conftest import make_pm

    from . import demo_plugin
    run = run_cli(make_pm(("demo", demo_plugin)))
    store = tmp_path / "store"
    args = ("create", "plain", "--name", "t-netvm", "--output", str(store), "--disk", "none", "--connect",
            "test:///default", "--network", "network=t-made", "--define")
    try:
        code, out, err = run(*args)
        assert (code, err) == (1, "Error: network 't-made' does not exist on test:///default: create it with "
                                  "'virtscenario network create t-made --nat --connect test:///default' (or add "
                                  "--create-network)\n")
        assert not store.exists() and n.lookup(conn, "t-made") is None
        code, out, err = run(*args, "--create-network")
        assert code == 0, err
        assert "Created network t-made on test:///default (recorded in vm.yaml)" in out
        assert n.recorded_networks(store / "t-netvm") == ["t-made"]
        assert n.network_users(conn, "t-made") == ["t-netvm"]
        # --force keeps the record (the network exists now, so nothing new is created).
        code, out, err = run(*args, "--force")
        assert code == 0, err
        assert n.recorded_networks(store / "t-netvm") == ["t-made"]
        # delete removes the domain and, since no other domain uses it, the network made for it.
        code, out, err = run("delete", "t-netvm", "--output", str(store), "--connect", "test:///default")
        assert code == 0, err
        assert ("Removed network t-made (made by --create-network; no other domain uses it) on test:///default"
                in out)
        assert n.lookup(conn, "t-made") is None and not (store / "t-netvm").exists()
    finally:
        try:
            conn.lookupByName("t-netvm").undefine()
        except Exception:  # noqa: BLE001 - not defined when the test failed early
            pass


def test_a_vm_defined_on_a_network_made_for_another_records_it_too(conn: Any, run_cli: Any,
                                                                    tmp_path: Path) -> None:
    from tests.conftest import make_pm

    from . import demo_plugin
    run = run_cli(make_pm(("demo", demo_plugin)))
    store, other_store = tmp_path / "store", tmp_path / "other"

    def create(vm: str, *extra: str, output: Path = store) -> None:
        code, _out, err = run("create", "plain", "--name", vm, "--output", str(output), "--disk", "none", "--connect",
                              "test:///default", "--network", "network=t-shared", "--define", *extra)
        assert code == 0, err
    try:
        create("t-first", "--create-network")
        create("t-second")  # no --create-network: the network exists, and the store says who made it
        create("t-third", output=other_store)  # another store knows nothing of it
        assert n.recorded_networks(store / "t-second") == ["t-shared"]
        assert n.recorded_networks(other_store / "t-third") == []
        assert n.created_in_store(store, "test:///default", skip="t-x") == {"t-shared"}
        assert n.created_in_store(store, "qemu:///system", skip="t-x") == set()  # another hypervisor's network
        code, out, err = run("delete", "t-first", "--output", str(store))
        assert code == 0, err
        assert "Kept network t-shared: still used by t-second, t-third on test:///default" in out
        code, out, err = run("delete", "t-third", "--output", str(other_store))
        assert code == 0 and "t-shared" not in out, err
        assert n.lookup(conn, "t-shared") is not None
        code, out, err = run("delete", "t-second", "--output", str(store))
        assert code == 0, err
        assert "Removed network t-shared" in out and n.lookup(conn, "t-shared") is None
    finally:
        for vm in ("t-first", "t-second", "t-third"):
            try:
                conn.lookupByName(vm).undefine()
            except Exception:  # noqa: BLE001 - deleted by the test when it passed
                pass


def test_network_cli_usage_and_errors(conn: Any, run_cli: Any) -> None:
    from tests.conftest import make_pm
    run = run_cli(make_pm())
    code, out, err = run("network", "create", "x", "--nat", "--bridge", "br0", "--connect", "test:///default")
    assert (code, err) == (2, "Error: --bridge cannot be combined with --nat, --isolated or --routed\n")
    for flags, said in ((("--nat", "--isolated"), "--nat and --isolated"),
                        (("--isolated", "--routed"), "--isolated and --routed"),
                        (("--routed", "--nat", "--isolated"), "--nat and --isolated and --routed")):
        code, out, err = run("network", "create", "t-modes", *flags, "--connect", "test:///default")
        assert (code, out, err) == (2, "", f"Error: {said} cannot be combined: a network has one mode\n")
    code, out, err = run("network", "create", "t-modes", "--isolated", "--isolated", "--connect", "test:///default")
    assert code == 0 and "(isolated, 192.168." in out, err  # a repeated flag is one mode
    code, out, err = run("network", "delete", "t-modes", "--connect", "test:///default")
    assert code == 0, err
    code, out, err = run("network", "delete", "nope", "--connect", "test:///default")
    assert (code, err) == (1, "Error: network 'nope' does not exist on test:///default\n")
    code, out, err = run("network", "list", "--connect", "test:///default")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "STATE", "AUTOSTART", "MODE", "BRIDGE", "SUBNET",
                                                         "DHCP", "USED", "BY"]
