"""``virtscenario host check``: every plugin's host checks (the host tuning plugin adds plan,
apply and revert to this group)."""

from __future__ import annotations

import json

import click

from ..app import ExtensibleGroup
from ..common import host_root_of


@click.group("host", cls=ExtensibleGroup)
def host_group() -> None:
    """Check this host; with the host tuning plugin, plan, apply, persist and revert its tuning.

    --host-root DIR (global option) works on a copy of a host's /proc, /sys, /etc and /dev under DIR.

    \b
    Examples:
      virtscenario host check
      virtscenario host plan computation
      virtscenario --host-root ./host-copy host check --json
    """


@host_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """Run every plugin's host checks (virtualization, /dev/kvm, IOMMU, hugepages, SEV/TDX, tools...).

    Exit status 0 when nothing FAILs, 1 otherwise.

    \b
    Examples:
      virtscenario host check
      virtscenario --host-root /srv/hostimage host check --json
    """
    from ...plugin.hooks import Catalog
    host = host_root_of(ctx)
    outcomes = Catalog().run_host_checks(host)
    failed = any(o.result.status == "FAIL" for o in outcomes)
    if as_json:
        click.echo(json.dumps([{"name": o.result.name, "status": o.result.status, "message": o.result.message,
                                "advice": o.result.advice, "summary": o.check.summary, "plugin": o.plugin}
                               for o in outcomes], indent=2))
    else:
        from ..output import table
        rows = [[o.result.status, o.result.name, o.result.message +
                 (f" -> {o.result.advice}" if o.result.advice and o.result.status != "PASS" else "")]
                for o in outcomes]
        if rows:
            click.echo(table(["STATUS", "CHECK", "RESULT"], rows))
        else:
            click.echo("No host checks are installed (the host tuning plugin, virtscenario-host-tuning, "
                       "provides them).")
        counts = {s: sum(1 for o in outcomes if o.result.status == s) for s in ("PASS", "WARN", "FAIL")}
        where = f"host root {host.root}" if host.is_fake else "this host"
        click.echo(f"\n{counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL ({where})")
    if failed:
        raise SystemExit(1)


# -- host devices (issue 15): listing needs no tuning plugin, so it lives in the core's group.
from .hostdevices import devices_cmd  # noqa: E402 - registered after the group exists

host_group.add_command(devices_cmd)
