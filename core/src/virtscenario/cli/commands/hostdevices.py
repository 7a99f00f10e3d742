"""``virtscenario host devices``: PCI, USB and mediated devices, and whether a VM can have each."""

from __future__ import annotations

import json
from typing import Any

import click

from ..common import host_root_of


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def devices_cmd(ctx: click.Context, as_json: bool) -> None:
    """List host devices with IOMMU group, driver and class, and whether each can be passed through.

    Read from sysfs (--host-root works). A device whose IOMMU group holds other endpoints
    can only go to a VM together with them.

    \b
    Examples:
      virtscenario host devices
      virtscenario host devices --json
      virtscenario --host-root ./host-copy host devices
    """
    from ...host.devices import group_partners, pci_problems, read_devices, usb_problems
    host = host_root_of(ctx)
    facts = read_devices(host)
    pci: list[dict[str, Any]] = []
    for dev in facts.pci:
        partners = group_partners(dev, facts)
        problems = pci_problems(dev, facts, frozenset(partners))
        pci.append({"address": dev.address, "nodedev": dev.nodedev, "vendor": dev.vendor, "device": dev.device,
                    "class": f"0x{dev.class_code:06x}", "kind": dev.kind, "driver": dev.driver,
                    "iommu_group": dev.group, "numa_node": dev.numa_node, "passthrough": not problems,
                    "reason": problems[0] if problems else "", "with": partners if not problems else []})
    usb = [{"name": u.name, "vendor": u.vendor, "product": u.product, "bus": u.busnum, "device": u.devnum,
            "description": u.description, "passthrough": not usb_problems(u, facts),
            "reason": (usb_problems(u, facts) or [""])[0]} for u in facts.usb]
    mdev = [{"uuid": m.uuid, "parent": m.parent, "type": m.type_name, "device_api": m.device_api}
            for m in facts.mdevs]
    if as_json:
        click.echo(json.dumps({"iommu": facts.iommu, "boot_disk": facts.boot_disk or None, "pci": pci, "usb": usb,
                               "mdev": mdev}, indent=2))
        return
    from ..output import table
    where = f"host root {host.root}" if host.is_fake else "this host"
    iommu = f"on ({len(facts.groups)} groups)" if facts.iommu else f"off: {facts.iommu_advice()}"
    click.echo(f"Host devices on {where}; IOMMU {iommu}; boot disk {facts.boot_disk or 'unknown'}\n")
    off = "the IOMMU is off on this host"

    def why(p: dict[str, Any]) -> str:
        if p["reason"].startswith(off):
            return off + " (see above)"
        return p["reason"] or (f"together with {', '.join(p['with'])} (same IOMMU group)" if p["with"] else "")
    rows = [[p["address"], p["kind"], f"{p['vendor']}:{p['device']}", p["driver"] or "-",
             "-" if p["iommu_group"] is None else str(p["iommu_group"]), "yes" if p["passthrough"] else "no", why(p)]
            for p in pci]
    rows += [[f"usb {u['bus']:03d}:{u['device']:03d}", "USB device", f"{u['vendor']}:{u['product']}", "-", "-",
              "yes" if u["passthrough"] else "no", u["reason"] or u["description"]] for u in usb]
    rows += [[m["uuid"], f"mdev {m['type']}", m["device_api"] or "-", "-", "-", "yes", f"on {m['parent']}"]
             for m in mdev]
    if rows:
        click.echo(table(["DEVICE", "CLASS", "ID", "DRIVER", "GROUP", "PASSTHROUGH", "WHY / NOTE"], rows))
    else:
        click.echo("No PCI, USB or mediated devices found.")
