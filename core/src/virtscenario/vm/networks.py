"""libvirt virtual networks: built with lxml and validated against ``network.rng``, a free
subnet, create / list / delete, and what ``create --network network=NAME`` needs first.

Defaults follow libvirt's own ``default`` network (formatnetwork.html, "NAT based network"):
NAT, the host at ``.1`` of a /24, DHCP from ``.2`` to ``.254``, a bridge name libvirt picks
(``virbrN``). The subnet is the first 192.168.x.0/24 (from 192.168.122.0, libvirt's
default) that overlaps no host route, no host address and no other libvirt network. A
``--subnet`` in a special-purpose block (loopback, multicast, link-local, reserved) is
refused: libvirt would define and start it.

A network ``create --create-network`` made is recorded in the VM's vm.yaml
(``networks_created``); :func:`release_network` removes it again once no domain uses it.
A VM defined later on such a network (it exists by then, so nothing is created) records
it too (:func:`created_in_store`): whichever of them is deleted last removes it.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from ..errors import ConfigError, LibvirtError, VirtscenarioError
from ..records import FrozenRecord, frozen_record

if TYPE_CHECKING:  # pragma: no cover
    from ..host.root import HostRoot

NETWORK_SCHEMA = "/usr/share/libvirt/schemas/network.rng"
FORMATNETWORK = "https://libvirt.org/formatnetwork.html"
MODES = {"nat": "NAT", "isolated": "isolated", "route": "routed", "bridge": "host bridge"}
CREATED_KEY = "networks_created"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # IFNAMSIZ - 1

Net = ipaddress.IPv4Network


@frozen_record
class NetworkSpec(FrozenRecord):
    name: str
    mode: str = "nat"  # nat|isolated|route|bridge
    bridge: str = ""  # the host bridge of mode=bridge
    subnet: Optional[str] = None  # CIDR; None: bridge mode (no IP)
    dhcp: Optional[tuple[str, str]] = None
    autostart: bool = False

    def summary(self) -> str:
        if self.mode == "bridge":
            return f"{MODES[self.mode]} {self.bridge}"
        dhcp = f", DHCP {self.dhcp[0]}-{self.dhcp[1]}" if self.dhcp else ", no DHCP"
        return f"{MODES[self.mode]}, {self.subnet}{dhcp}"


@frozen_record
class NetworkInfo(FrozenRecord):
    name: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str
    bridge: str
    subnets: tuple[str, ...]
    dhcp: tuple[str, ...]
    used_by: tuple[str, ...]


# -- input ------------------------------------------------------------------------------------------
def check_network_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"network name {name[:70]!r} is not valid: letters, digits and _ . + - (at most 64, "
                          "starting with a letter or digit)")
    return name


def parse_subnet(text: str) -> Net:
    try:
        subnet = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"--subnet {text!r} is not an IPv4 network such as 192.168.150.0/24") from None
    if not isinstance(subnet, Net) or "/" not in text:
        raise ConfigError(f"--subnet {text!r} is not an IPv4 network such as 192.168.150.0/24")
    if str(subnet) != text.strip():
        raise ConfigError(f"--subnet {text!r} has host bits set: did you mean {subnet}?")
    if not 8 <= subnet.prefixlen <= 29:
        raise ConfigError(f"--subnet {text!r}: the prefix must be between /8 and /29")
    special = special_block(subnet)
    if special:
        raise ConfigError(f"--subnet {subnet} is {special}: a libvirt network needs ordinary unicast addresses "
                          "(e.g. 192.168.150.0/24 or 10.10.0.0/24)")
    return subnet


#: IPv4 blocks no guest network may use (IANA special-purpose registry, RFC 6890): the host would
#: answer for them itself (loopback), route them elsewhere (multicast) or never route them.
SPECIAL_BLOCKS = (
    ("0.0.0.0/8", "unspecified ('this network', RFC 1122)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112; with the broadcast address 255.255.255.255)"),
)


def special_block(subnet: Net) -> Optional[str]:
    """What ``subnet`` overlaps of :data:`SPECIAL_BLOCKS` (``loopback 127.0.0.0/8 (RFC 1122)``), or None."""
    for block, what in SPECIAL_BLOCKS:
        if subnet.overlaps(Net(block)):
            kind, _, rfc = what.partition(" (")
            return f"{kind} ({block}, {rfc}" if rfc else f"{kind} ({block})"
    return None


def gateway(subnet: Net) -> ipaddress.IPv4Address:
    """The host's address on the network: the first one, as in libvirt's default network."""
    return subnet.network_address + 1


def default_dhcp(subnet: Net) -> tuple[str, str]:
    return str(gateway(subnet) + 1), str(subnet.broadcast_address - 1)


def parse_dhcp(text: str, subnet: Net) -> Optional[tuple[str, str]]:
    """``START-END`` inside ``subnet`` (not its network, broadcast or host address), or ``none``."""
    if text.strip() == "none":
        return None
    parts = text.replace(",", "-").split("-")
    try:
        start, end = (ipaddress.IPv4Address(p.strip()) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        start = end = None
    if start is None or end is None:
        raise ConfigError(f"--dhcp {text!r}: give START-END, e.g. {'-'.join(default_dhcp(subnet))}, or none")
    usable = (subnet.network_address, subnet.broadcast_address, gateway(subnet))
    for address in (start, end):
        if address not in subnet or address in usable:
            raise ConfigError(f"--dhcp {text!r}: {address} is not a guest address of {subnet} (the host is "
                              f"{gateway(subnet)})")
    if int(start) > int(end):
        raise ConfigError(f"--dhcp {text!r}: the range ends before it starts")
    return str(start), str(end)


# -- XML --------------------------------------------------------------------------------------------
def network_xml(spec: NetworkSpec) -> bytes:
    """The ``<network>`` document (formatnetwork.html), checked against libvirt's network.rng."""
    from lxml import etree

    from ..domain.validate import validate_tree
    from ..domain.xml import sub
    root = etree.Element("network")
    sub(root, "name", spec.name)
    if spec.mode in ("nat", "route", "bridge"):
        sub(root, "forward", mode=spec.mode)
    if spec.mode == "bridge":
        sub(root, "bridge", name=spec.bridge)
    else:
        # stp on, no forwarding delay: what libvirt's own default network uses for its virbrN.
        sub(root, "bridge", stp="on", delay="0")
    if spec.subnet:
        subnet = Net(spec.subnet)
        ip = sub(root, "ip", address=str(gateway(subnet)), netmask=str(subnet.netmask))
        if spec.dhcp:
            sub(sub(ip, "dhcp"), "range", start=spec.dhcp[0], end=spec.dhcp[1])
    etree.indent(root, space="  ")
    xml = etree.tostring(root, pretty_print=True, encoding="utf-8")
    validate_tree(root, NETWORK_SCHEMA, what="network XML")
    return xml


# -- subnets in use ---------------------------------------------------------------------------------
def host_subnets(host: HostRoot) -> list[tuple[Net, str]]:
    """Routed subnets (``/proc/net/route``, the default route left out) and local IPv4 addresses
    (``/proc/net/fib_trie``), each with what to call it in a message."""
    out: list[tuple[Net, str]] = []
    for line in host.read("/proc/net/route", "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, mask = (ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(c), "little")) for c in (cols[1], cols[7]))
            net = Net(f"{dest}/{mask}", strict=False)
        except ValueError:
            continue
        if net.prefixlen:
            out.append((net, f"the host route {net} on {cols[0]}"))
    last = ""
    seen: set[str] = set()
    for line in host.read("/proc/net/fib_trie", "").splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text == "/32 host LOCAL" and last and last not in seen:
            seen.add(last)
            out.append((Net(f"{last}/32"), f"the host address {last}"))
    return out


def libvirt_subnets(conn: Any, skip: str = "") -> list[tuple[Net, str]]:
    from lxml import etree
    out = []
    for net in conn.listAllNetworks(0):
        if net.name() == skip:
            continue
        root = etree.fromstring(net.XMLDesc(0).encode())
        for ip in root.iterfind("ip"):
            if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
                continue
            try:
                prefix = ip.get("prefix") or ip.get("netmask") or "24"
                subnet = ipaddress.ip_interface(f"{ip.get('address')}/{prefix}").network
            except ValueError:
                continue
            out.append((Net(str(subnet)), f"libvirt network {net.name()!r} ({subnet})"))
    return out


def collision(subnet: Net, used: Iterable[tuple[Net, str]]) -> Optional[str]:
    return next((what for net, what in used if subnet.overlaps(net)), None)


def default_candidates() -> Iterator[Net]:
    """The subnets a network gets by default, in order: 192.168.122.0/24 (libvirt's own) upwards."""
    for third in (*range(122, 255), *range(100, 122)):
        yield Net(f"192.168.{third}.0/24")


def free_subnet(used: list[tuple[Net, str]]) -> Net:
    for candidate in default_candidates():
        if special_block(candidate) is None and collision(candidate, used) is None:
            return candidate
    raise VirtscenarioError("no free 192.168.x.0/24 subnet on this host: give one with --subnet")


def is_local(uri: str) -> bool:
    """Whether ``uri`` is a hypervisor on this machine (its routes and bridges are ours to read)."""
    from urllib.parse import urlsplit
    return (urlsplit(uri).hostname or "localhost") in ("localhost", "127.0.0.1", "::1")


# -- libvirt ----------------------------------------------------------------------------------------
def _libvirt() -> Any:
    from ..host.hypervisor import quiet_libvirt
    return quiet_libvirt()


def _error(exc: Exception) -> str:
    from ..host.hypervisor import libvirt_error_text
    return libvirt_error_text(exc)


def lookup(conn: Any, name: str) -> Any:
    libvirt = _libvirt()
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise LibvirtError(f"libvirt: {_error(exc)}") from None


def plan_network(conn: Any, host: HostRoot, uri: str, name: str, mode: str = "nat", bridge: str = "",
                 subnet: Optional[str] = None, dhcp: Optional[str] = None, autostart: bool = False) -> NetworkSpec:
    """Check everything and fill in the defaults: a one-line error for a name taken, a collision..."""
    check_network_name(name)
    if lookup(conn, name) is not None:
        raise ConfigError(f"network {name!r} already exists on {uri}")
    if mode == "bridge":
        if subnet or dhcp:
            raise ConfigError("--bridge: the host bridge's own network decides addresses; --subnet and --dhcp "
                              "apply to --nat, --isolated and --routed")
        if not _IFNAME.match(bridge):
            raise ConfigError(f"--bridge {bridge[:40]!r} is not an interface name")
        if is_local(uri) and not host.exists(f"/sys/class/net/{bridge}"):
            raise ConfigError(f"--bridge {bridge}: there is no interface {bridge} on this host "
                              f"(/sys/class/net/{bridge})")
        return NetworkSpec(name, mode, bridge=bridge, autostart=autostart)
    used = libvirt_subnets(conn) + (host_subnets(host) if is_local(uri) else [])
    if subnet:
        net = parse_subnet(subnet)
        hit = collision(net, used)
        if hit:
            raise ConfigError(f"--subnet {net} collides with {hit}")
    else:
        net = free_subnet(used)
    ranges = default_dhcp(net) if dhcp is None else parse_dhcp(dhcp, net)
    return NetworkSpec(name, mode, subnet=str(net), dhcp=ranges, autostart=autostart)


def define_network(conn: Any, spec: NetworkSpec) -> Any:
    """Define and start; on a failure the network is undefined again (nothing half-made)."""
    libvirt = _libvirt()
    xml = network_xml(spec).decode()
    try:
        net = conn.networkDefineXML(xml)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt refused network {spec.name}: {_error(exc)}") from None
    try:
        net.create()
        if spec.autostart:
            net.setAutostart(1)
    except libvirt.libvirtError as exc:
        message = _error(exc)
        try:
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError:
            pass
        hint = " (is dnsmasq installed? Debian: dnsmasq-base, SUSE/Fedora: dnsmasq)" if "dnsmasq" in message else ""
        raise LibvirtError(f"libvirt could not start network {spec.name}: {message}{hint}") from None
    return net


def _stop_and_undefine(net: Any, name: str, verb: str) -> None:
    """Destroy (if active) and undefine (if persistent) one network."""
    libvirt = _libvirt()
    try:
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt could not {verb} network {name}: {_error(exc)}") from None


def network_users(conn: Any, name: str) -> list[str]:
    """Defined or running domains with an interface on network ``name``."""
    from lxml import etree
    libvirt = _libvirt()
    users = []
    for dom in conn.listAllDomains(0):
        try:
            xml = dom.XMLDesc(getattr(libvirt, "VIR_DOMAIN_XML_INACTIVE", 0) if dom.isPersistent() else 0)
        except libvirt.libvirtError:
            continue  # vanished meanwhile
        root = etree.fromstring(xml.encode())
        if any(s.get("network") == name for s in root.iterfind("devices/interface[@type='network']/source")):
            users.append(dom.name())
    return sorted(users)


def delete_network(conn: Any, name: str, uri: str) -> None:
    net = lookup(conn, name)
    if net is None:
        raise ConfigError(f"network {name!r} does not exist on {uri}")
    users = network_users(conn, name)
    if users:
        raise ConfigError(f"network {name!r} is used by domain{'s' if len(users) > 1 else ''} {', '.join(users)}: "
                          "remove them or move their interfaces first")
    _stop_and_undefine(net, name, "delete")


def info(conn: Any, net: Any) -> NetworkInfo:
    from lxml import etree
    root = etree.fromstring(net.XMLDesc(0).encode())
    forward = root.find("forward")
    mode = forward.get("mode", "nat") if forward is not None else "isolated"
    bridge = root.find("bridge")
    subnets, dhcp = [], []
    for ip in root.iterfind("ip"):
        prefix = ip.get("prefix") or ip.get("netmask") or ("64" if ip.get("family") == "ipv6" else "24")
        try:
            subnets.append(str(ipaddress.ip_interface(f"{ip.get('address')}/{prefix}").network))
        except ValueError:
            continue
        dhcp += [f"{r.get('start')}-{r.get('end')}" for r in ip.iterfind("dhcp/range")]
    return NetworkInfo(net.name(), bool(net.isActive()), bool(net.autostart()), bool(net.isPersistent()), mode,
                       bridge.get("name", "") if bridge is not None else "", tuple(subnets), tuple(dhcp),
                       tuple(network_users(conn, net.name())))


def list_networks(conn: Any) -> list[NetworkInfo]:
    return sorted((info(conn, net) for net in conn.listAllNetworks(0)), key=lambda n: n.name)


# -- for create -------------------------------------------------------------------------------------
@frozen_record
class Prepared(FrozenRecord):
    created: tuple[str, ...]  # defined and started here (recorded in vm.yaml)
    started: tuple[str, ...]  # existed, inactive, started here
    warnings: tuple[str, ...]
    adopted: tuple[str, ...] = ()  # existed, made by --create-network for another VM (recorded in vm.yaml too)

    @property
    def recorded(self) -> tuple[str, ...]:
        """What the VM's vm.yaml lists in ``networks_created``: delete removes them when no domain uses them."""
        return (*self.created, *self.adopted)


def prepare_networks(conn: Any, names: Iterable[str], uri: str, host: HostRoot, create: bool,
                     required: bool, made_for_others: Iterable[str] = ()) -> Prepared:
    """Make sure the networks the VM's interfaces name exist and are active.

    ``create`` (``--create-network``): a missing one is created (NAT, a free subnet), an
    inactive one started. Otherwise a missing or inactive network is an error when the VM
    is about to be defined (``required``), a warning when only checked. An existing network
    in ``made_for_others`` (:func:`created_in_store`) is adopted: the VM records it as well.
    """
    libvirt = _libvirt()
    created: list[str] = []
    started: list[str] = []
    warnings: list[str] = []
    others = set(made_for_others)
    adopted = [name for name in dict.fromkeys(names) if name in others]
    try:
        for name in dict.fromkeys(names):
            net = lookup(conn, name)
            if net is None:
                if create:
                    define_network(conn, plan_network(conn, host, uri, name))
                    created.append(name)
                    continue
                problem = (f"network {name!r} does not exist on {uri}: create it with 'virtscenario network create "
                           f"{name} --nat{_connect(uri)}' (or add --create-network)")
            elif not net.isActive():
                if create:
                    try:
                        net.create()
                    except libvirt.libvirtError as exc:
                        raise LibvirtError(f"libvirt could not start network {name}: {_error(exc)}") from None
                    started.append(name)
                    continue
                problem = (f"network {name!r} on {uri} is inactive, so the VM would not start: start it with "
                           f"'virsh -c {uri} net-start {name}' (or add --create-network)")
            else:
                continue
            if required:
                raise ConfigError(problem)
            warnings.append(problem)
    except BaseException:
        remove_networks(conn, created)
        raise
    return Prepared(tuple(created), tuple(started), tuple(warnings), tuple(n for n in adopted if n not in created))


def created_in_store(root: Path, uri: str, skip: str) -> set[str]:
    """The networks other VMs of the store at ``root`` (all but ``skip``) record as made by
    ``--create-network`` on ``uri`` (their vm.yaml ``libvirt_uri``)."""
    from ..errors import VirtscenarioError
    from .store import list_vm_names, load_record
    out: set[str] = set()
    for vm in list_vm_names(root):
        if vm == skip:
            continue
        try:
            data = load_record(root / vm) or {}
        except VirtscenarioError:
            continue  # a broken record is reported by 'virtscenario list'
        if str(data.get("libvirt_uri") or "") == uri:
            out.update(str(n) for n in data.get(CREATED_KEY) or [] if isinstance(n, str))
    return out


def _connect(uri: str) -> str:
    from .libvirt import DEFAULT_URI
    return "" if uri == DEFAULT_URI else f" --connect {uri}"


def remove_networks(conn: Any, names: Iterable[str]) -> None:
    """Best-effort removal of networks this run created (after a later failure)."""
    libvirt = _libvirt()
    for name in names:
        net = lookup(conn, name)
        try:
            if net is not None:
                if net.isActive():
                    net.destroy()
                if net.isPersistent():
                    net.undefine()
        except libvirt.libvirtError:
            pass


def recorded_networks(directory: Path) -> list[str]:
    """The networks vm.yaml says ``create --create-network`` made for this VM."""
    from .store import load_vm
    data = load_vm(directory) or {}
    return [str(n) for n in data.get(CREATED_KEY) or [] if isinstance(n, str)]


def release_network(conn: Any, name: str, leaving: Optional[str] = None) -> tuple[bool, str]:
    """For ``delete``: remove network ``name`` (recorded in a VM's ``networks_created``) unless a
    domain other than ``leaving`` (the VM being deleted) still uses it. Returns (removed, message)."""
    if lookup(conn, name) is None:
        return False, f"network {name} is already gone"
    users = [u for u in network_users(conn, name) if u != leaving]
    if users:
        return False, f"kept network {name}: still used by {', '.join(users)}"
    _stop_and_undefine(lookup(conn, name), name, "remove")
    return True, f"removed network {name} (made by --create-network; no other domain uses it)"
