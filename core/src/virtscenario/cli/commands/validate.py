"""``virtscenario validate FILE``: libvirt's RelaxNG schema, and a hypervisor's capabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ...errors import ConfigError, VirtscenarioError


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--connect", metavar="URI", help="Also check against this hypervisor's domain capabilities.")
@click.option("--schema", type=click.Path(dir_okay=False), help="RelaxNG schema (default: libvirt's domain.rng).")
def validate_cmd(file: str, connect: Optional[str], schema: Optional[str]) -> None:
    """Validate a domain XML file against libvirt's schema (and a hypervisor).

    \b
    Examples:
      virtscenario validate /var/lib/virtscenario/vms/work/domain.xml
      virtscenario validate domain.xml --connect qemu:///system
    """
    from lxml import etree

    from ...domain.validate import schema_path, validate_tree
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"{file}: no such file")
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True,
                                                      huge_tree=False)).getroot()
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{file}: not well-formed XML ({exc})") from None
    if not validate_tree(root, schema, what=file):
        click.echo(f"Warning: schema {schema_path(schema)} is not installed; only well-formedness was checked",
                   err=True)
    else:
        click.echo(f"{file}: valid against {schema_path(schema)}")
    if connect:
        from ...domain.caps import problems
        from ...vm.libvirt import connect as open_hypervisor
        hv = open_hypervisor(connect)
        if hv.caps is None:
            click.echo(f"Warning: {connect} reports no domain capabilities; hypervisor checks skipped", err=True)
            return
        found = problems(root, hv.caps)
        if found:
            raise VirtscenarioError(f"{file}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
        click.echo(f"{file}: accepted by the capabilities of {connect}")
