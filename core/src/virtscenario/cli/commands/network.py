"""``virtscenario network list | create | delete``: libvirt virtual networks (:mod:`virtscenario.vm.networks`)."""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from ..common import host_root_of

CONNECT_HELP = "libvirt URI (default qemu:///system)."


def _connect(uri: Optional[str]) -> tuple[Any, str]:
    from ...host.hypervisor import open_connection
    from ...vm.libvirt import DEFAULT_URI
    uri = uri or DEFAULT_URI
    return open_connection(uri), uri


@click.group("network")
def network_group() -> None:
    """List, create and delete libvirt virtual networks (NAT, isolated, routed, host bridge).

    \b
    Examples:
      virtscenario network list
      virtscenario network create lab --isolated --subnet 192.168.150.0/24
    """


@network_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--connect", metavar="URI", help=CONNECT_HELP)
def list_cmd(as_json: bool, connect: Optional[str]) -> None:
    """Every network of the hypervisor: state, mode, subnet, DHCP range and the domains using it.

    \b
    Examples:
      virtscenario network list
      virtscenario network list --connect qemu+ssh://root@kvm2/system --json
    """
    from ...vm.networks import list_networks
    conn, uri = _connect(connect)
    nets = list_networks(conn)
    if as_json:
        click.echo(json.dumps([{"name": n.name, "active": n.active, "autostart": n.autostart,
                                "persistent": n.persistent, "mode": n.mode, "bridge": n.bridge,
                                "subnets": list(n.subnets), "dhcp": list(n.dhcp), "used_by": list(n.used_by)}
                               for n in nets], indent=2))
        return
    from ..output import table
    rows = [[n.name, "active" if n.active else "inactive", "yes" if n.autostart else "no", n.mode, n.bridge or "-",
             ", ".join(n.subnets) or "-", ", ".join(n.dhcp) or "-", ", ".join(n.used_by) or "-"] for n in nets]
    click.echo(table(["NAME", "STATE", "AUTOSTART", "MODE", "BRIDGE", "SUBNET", "DHCP", "USED BY"], rows)
               if rows else f"No networks on {uri}.")


@network_group.command("create")
@click.argument("name")
# One flag each (not one shared flag_value dest, where the last flag silently wins): conflicts are refused.
@click.option("--nat", is_flag=True, help="NAT to the host's networks (the default; like libvirt's 'default' "
              "network).")
@click.option("--isolated", is_flag=True, help="Guests and host only, no forwarding.")
@click.option("--routed", is_flag=True, help="Routed to the host's networks, without NAT.")
@click.option("--bridge", metavar="BR", help="Connect guests to the existing host bridge BR.")
@click.option("--subnet", metavar="CIDR", help="IPv4 subnet, e.g. 192.168.150.0/24 (default: a free "
              "192.168.x.0/24); the host gets its first address.")
@click.option("--dhcp", metavar="RANGE", help="DHCP range START-END, or none (default: the whole subnet after the "
              "host's address).")
@click.option("--autostart", is_flag=True, help="Start the network when libvirtd starts.")
@click.option("--connect", metavar="URI", help=CONNECT_HELP)
@click.pass_context
def create_cmd(ctx: click.Context, name: str, nat: bool, isolated: bool, routed: bool, bridge: Optional[str],
               subnet: Optional[str], dhcp: Optional[str], autostart: bool, connect: Optional[str]) -> None:
    """Define and start network NAME (validated against libvirt's network.rng).

    A subnet that overlaps a host route, a host address or another libvirt network
    is refused, naming the collision; so is a loopback, multicast, link-local or
    reserved one.

    \b
    Examples:
      virtscenario network create lab --nat --autostart
      virtscenario network create backend --isolated --subnet 10.10.0.0/24 --dhcp 10.10.0.100-10.10.0.200
      virtscenario network create lan --bridge br0
    """
    from ...errors import UsageError
    from ...vm.networks import define_network, plan_network
    modes = [m for m, given in (("nat", nat), ("isolated", isolated), ("route", routed)) if given]
    if bridge and modes:
        raise UsageError("--bridge cannot be combined with --nat, --isolated or --routed")
    if len(modes) > 1:
        flags = " and ".join(f"--{'routed' if m == 'route' else m}" for m in modes)
        raise UsageError(f"{flags} cannot be combined: a network has one mode")
    mode = modes[0] if modes else None
    conn, uri = _connect(connect)
    spec = plan_network(conn, host_root_of(ctx), uri, name, "bridge" if bridge else (mode or "nat"), bridge or "",
                        subnet, dhcp, autostart)
    net = define_network(conn, spec)
    made = f", bridge {_bridge_name(net)}" if spec.mode != "bridge" and _bridge_name(net) else ""
    click.echo(f"Created network {name} ({spec.summary()}{made}) on {uri}"
               + ("; it starts with libvirtd" if autostart else ""))


def _bridge_name(net: Any) -> str:
    """The bridge libvirt picked (virbrN); '' when the driver names none (the test driver raises)."""
    from ...host.hypervisor import quiet_libvirt
    try:
        return str(net.bridgeName() or "")
    except quiet_libvirt().libvirtError:
        return ""


@network_group.command("delete")
@click.argument("name")
@click.option("--connect", metavar="URI", help=CONNECT_HELP)
def delete_cmd(name: str, connect: Optional[str]) -> None:
    """Stop and undefine network NAME; refused while a defined domain uses it.

    \b
    Examples:
      virtscenario network delete lab
      virtscenario network delete lab --connect qemu:///system
    """
    from ...vm.networks import delete_network
    conn, uri = _connect(connect)
    delete_network(conn, name, uri)
    click.echo(f"Deleted network {name} on {uri}")
