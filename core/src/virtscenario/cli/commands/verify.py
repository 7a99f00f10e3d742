"""``virtscenario verify NAME``: what the scenario decided against what the running guest sees."""

from __future__ import annotations

from typing import Optional

import click

from ..common import complete_vms


@click.command("verify")
@click.argument("name", shell_complete=complete_vms)
@click.option("--output", type=click.Path(file_okay=False), help="Store root the VM was created in (as for create).")
@click.option("--connect", metavar="URI", help="The hypervisor the VM runs on (default: qemu:///system).")
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON: [{check, expected, observed, status}].")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, metavar="SECONDS", show_default=True,
              help="Seconds to wait for the guest agent's first answer.")
def verify_cmd(name: str, output: Optional[str], connect: Optional[str], as_json: bool, timeout: float) -> None:
    """Compare a running VM, seen from inside through its guest agent, with its scenario's decisions.

    \b
    Checks: vCPU count and topology, memory, disks (count, size, discard), NICs and queue
    pairs, TPM, virtiofs shares, clocksource, memory encryption, plus the scenario plugin's own.
    Exit status: 0 all agree, 1 a mismatch (or an error), 2 nothing could be observed (the VM
    is not running, has no agent channel, or its agent did not answer within --timeout).

    \b
    Examples:
      virtscenario verify work
      virtscenario verify t --output ./vms --connect qemu:///system --json
    """
    from ...host.hypervisor import open_connection
    from ...settings.userfile import load_config
    from ...vm.libvirt import DEFAULT_URI
    from ...vm.names import check_vm_name
    from ...vm.store import store_root, vm_dir
    from ...vm.verify import load_vm, verify
    check_vm_name(name)
    root = store_root(output, load_config(None).store if output is None else None)
    vm = load_vm(vm_dir(root, name))
    conn = open_connection(connect or DEFAULT_URI)
    try:
        report = verify(vm, conn, timeout)
    finally:
        conn.close()
    if as_json:
        import json
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        from ..output import table
        click.echo(f"{report.vm}: agent answered after {report.agent_seconds:.1f} s")
        click.echo(table(["CHECK", "EXPECTED", "OBSERVED", "STATUS"],
                         [[c.check, c.expected, c.observed, c.status] for c in report.checks], wrap_last=False))
    if report.failed:
        bad = [c.check for c in report.checks if c.ok is False]
        click.echo(f"Error: {len(bad)} check(s) disagree with the scenario's decisions: {', '.join(bad)}", err=True)
        raise click.exceptions.Exit(1)
