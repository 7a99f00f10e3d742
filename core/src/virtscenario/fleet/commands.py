"""The fleet commands: ``hosts list|check|place`` and ``migrate-check``; ``register(cli)`` adds them.

Every command has ``--json``. ``hosts check`` and ``migrate-check`` print everything
first and then fail (one ``Error:`` line, exit 1) when a host failed or a blocker
was found; ``hosts place`` fails when no host is accepted.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from ..errors import VirtscenarioError

DEFAULT_TIMEOUT = 10.0  # seconds per host; check.DEFAULT_TIMEOUT (not imported: registering stays cheap)

HOSTS_HELP = "Host inventory (default: $XDG_CONFIG_HOME/virtscenario/hosts.yaml, then /etc/virtscenario/hosts.yaml)."


def _hosts_option(f: Any) -> Any:
    return click.option("--hosts", "hosts_file", type=click.Path(dir_okay=False), help=HOSTS_HELP)(f)


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="JSON output.")(f)


def _timeout_option(f: Any) -> Any:
    return click.option("--timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        show_default=True, help="Seconds each host has to answer.")(f)


def _complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of the inventory's host names (never raises: completion must not break a shell)."""
    try:
        from .inventory import load_inventory
        names = load_inventory((ctx.params or {}).get("hosts_file")).names()
        return [click.shell_completion.CompletionItem(n) for n in names if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def _complete_vms(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of VM names in the store (--output, else the settings file's store)."""
    try:
        from ..settings.userfile import load_config
        from ..vm.store import list_vm_names, store_root
        params = ctx.params or {}
        root = store_root(params.get("output"), load_config(params.get("config_file")).store)
        return [click.shell_completion.CompletionItem(n) for n in list_vm_names(root) if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group("hosts")
def hosts_group() -> None:
    """Libvirt hosts of the inventory: list, check, place a VM.

    \b
    Examples:
      virtscenario hosts list
      virtscenario hosts check --hosts hosts.yaml
      virtscenario hosts place desktop --name web1 --memory 8GiB
    """


@hosts_group.command("list")
@_hosts_option
@_json_option
def hosts_list(hosts_file: Optional[str], as_json: bool) -> None:
    """List the inventory: name, libvirt URI, labels.

    \b
    Examples:
      virtscenario hosts list
      virtscenario hosts list --hosts hosts.yaml --json
    """
    from .inventory import load_inventory
    inv = load_inventory(hosts_file)
    if as_json:
        _echo_json([h.as_json() for h in inv.hosts])
        return
    from .report import hosts_text
    click.echo(hosts_text(inv))


@hosts_group.command("check")
@click.argument("names", nargs=-1, shell_complete=_complete_hosts)
@_hosts_option
@_json_option
@_timeout_option
def hosts_check(names: tuple[str, ...], hosts_file: Optional[str], as_json: bool, timeout: float) -> None:
    """Connect to every host (or NAMES) at once and report what each offers.

    Exit 1 after printing all when any host failed.

    \b
    Examples:
      virtscenario hosts check
      virtscenario hosts check epyc1 xeon2 --timeout 5
      virtscenario hosts check --hosts hosts.yaml --json
    """
    from .check import check_hosts
    from .inventory import load_inventory
    inv = load_inventory(hosts_file)
    hosts = [inv.get(n) for n in names] if names else list(inv.hosts)
    results = check_hosts(hosts, timeout)
    if as_json:
        _echo_json([r.as_json() for r in results])
    else:
        from .report import check_text
        click.echo(check_text(results))
    failed = [r.host.name for r in results if not r.ok]
    if failed:
        raise VirtscenarioError(f"{len(failed)} of {len(results)} host(s) failed: {', '.join(failed)}")


@hosts_group.command("place")
@click.argument("scenario")
@click.option("--name", default="vm", show_default=True, help="Name of the VM to place.")
@click.option("--memory", type=str, metavar="SIZE", help="Memory, e.g. 4GiB; bare numbers are MiB (vm.memory).")
@click.option("--vcpus", type=str, metavar="N", help="Number of vCPUs (vm.vcpus).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
@_hosts_option
@_json_option
@_timeout_option
def hosts_place(scenario: str, name: str, memory: Optional[str], vcpus: Optional[str], sets: tuple[str, ...],
                config_file: Optional[str], hosts_file: Optional[str], as_json: bool, timeout: float) -> None:
    """Judge every host for a VM of SCENARIO: accepted or rejected with reasons, scored; the chosen one last.

    \b
    Examples:
      virtscenario hosts place desktop --name web1 --memory 8GiB
      virtscenario hosts place securevm --set launch_security.type=auto --json
      virtscenario hosts place computation --name calc --vcpus 16 --hosts hosts.yaml
    """
    placement = run_place(scenario, name, memory, vcpus, sets, config_file, hosts_file, timeout)
    if as_json:
        _echo_json(placement.as_json())
    else:
        from .report import place_text
        click.echo(place_text(placement))
    if placement.chosen is None:
        raise VirtscenarioError(f"no host of the inventory can run {name} ({scenario}); the reasons are above")


def cli_values(memory: Optional[str], vcpus: Optional[str], sets: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    """(key, raw value, flag) the way ``create`` hands them to the settings resolution."""
    out: list[tuple[str, Any, str]] = []
    if vcpus is not None:
        out.append(("vm.vcpus", vcpus, "--vcpus"))
    if memory is not None:
        out.append(("vm.memory", memory, "--memory"))
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        out.append((key.strip(), value, f"--set {key.strip()}"))
    return out


def run_place(scenario: str, name: str, memory: Optional[str], vcpus: Optional[str], sets: tuple[str, ...],
              config_file: Optional[str], hosts_file: Optional[str], timeout: float) -> Any:
    """Placement of a VM over the inventory: what ``create --place`` calls before creating."""
    from .check import check_hosts
    from .inventory import load_inventory
    from .needs import scenario_needs
    from .place import place
    needs = scenario_needs(scenario, name, cli_values(memory, vcpus, sets), config_file)
    inv = load_inventory(hosts_file)
    return place(needs, check_hosts(list(inv.hosts), timeout))


def place_for_create(scenario: str, name: str, values: list[tuple[str, Any, str]], config_file: Optional[str],
                     hosts_file: Optional[str], timeout: float = DEFAULT_TIMEOUT) -> Any:
    """``create --place``: the placement of the VM (``values`` as create resolves them: --memory, --vcpus,
    --virt-type, --os, --set...). No accepted host: one error line with every host's first reason."""
    from .check import check_hosts
    from .inventory import load_inventory
    from .needs import scenario_needs
    from .place import place
    needs = scenario_needs(scenario, name, values, config_file)
    inv = load_inventory(hosts_file)
    placement = place(needs, check_hosts(list(inv.hosts), timeout))
    if placement.chosen is None:
        raise VirtscenarioError(f"no host of {inv.path} can run {name} ({scenario}): {rejected_text(placement)} "
                                f"('virtscenario hosts place {scenario} --hosts {inv.path}' lists every reason)")
    return placement


def rejected_text(placement: Any) -> str:
    """Every rejected host with its first reason, on one line."""
    parts = []
    for d in placement.decisions:
        if not d.accepted:
            more = f" (+{len(d.reasons) - 1} more)" if len(d.reasons) > 1 else ""
            parts.append(f"{d.host}: {d.reasons[0]}{more}")
    return "; ".join(parts) or "none"


def placed_note(placement: Any) -> str:
    chosen = placement.chosen
    accepted = sum(1 for d in placement.decisions if d.accepted)
    rejected = [d for d in placement.decisions if not d.accepted]
    text = (f"placed on {chosen.host} ({chosen.uri}), score {chosen.score:g}: the best of {accepted} accepted "
            f"host(s) of {len(placement.decisions)}")
    return text + (f"; rejected: {rejected_text(placement)}" if rejected else "")


def migrate_check_command() -> click.Command:
    @click.command("migrate-check")
    @click.argument("name", shell_complete=_complete_vms)
    @click.option("--to", "to_host", required=True, metavar="HOST", shell_complete=_complete_hosts,
                  help="Target: inventory name or libvirt URI.")
    @click.option("--from", "from_host", metavar="HOST", shell_complete=_complete_hosts,
                  help="Source host (default: the host the store records for the VM).")
    @click.option("--output", type=click.Path(file_okay=False), help="Store root (as for create).")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
    @_hosts_option
    @_json_option
    @_timeout_option
    def migrate_check(name: str, to_host: str, from_host: Optional[str], output: Optional[str],
                      config_file: Optional[str], hosts_file: Optional[str], as_json: bool, timeout: float) -> None:
        """Can VM NAME live-migrate to HOST? CPU, machine type, storage and blockers, by libvirt's rules.

        Exit 1 after printing when a blocker is found.

        \b
        Examples:
          virtscenario migrate-check web1 --to xeon2
          virtscenario migrate-check web1 --from epyc1 --to qemu+ssh://root@xeon2/system --json
        """
        report = run_migrate_check(name, to_host, from_host, output, config_file, hosts_file, timeout)
        if as_json:
            _echo_json(report.as_json())
        else:
            from .report import migrate_text
            click.echo(migrate_text(report))
        if not report.ok:
            raise VirtscenarioError(f"{name} cannot migrate to {report.target}: "
                                    f"{report.blockers[0].message}"
                                    + (f" (and {len(report.blockers) - 1} more)" if len(report.blockers) > 1 else ""))

    return migrate_check


def run_migrate_check(name: str, to_host: str, from_host: Optional[str], output: Optional[str],
                      config_file: Optional[str], hosts_file: Optional[str], timeout: float) -> Any:
    from .check import check_hosts
    from .inventory import Inventory, load_inventory
    from .migrate import live_xml, migrate_check
    from .needs import stored_vm

    stored = stored_vm(name, output, config_file)
    names = [to_host] + ([from_host] if from_host else []) + ([stored.host] if stored and stored.host else [])
    needs_inventory = any("://" not in n for n in names)
    inv = load_inventory(hosts_file) if needs_inventory or hosts_file else Inventory("(none)", ())
    target = inv.resolve(to_host)
    source_name = from_host or (stored.host if stored else None)
    source = inv.resolve(source_name) if source_name else None
    checked = check_hosts([target] + ([source] if source else []), timeout, keep_open=True)
    try:
        t_res, s_res = checked[0], (checked[1] if source else None)
        for role, res in (("target", t_res), ("source", s_res)):
            if res is not None and not res.ok:
                raise VirtscenarioError(f"{role} {res.host.name}: {res.error}")
        assert t_res.facts is not None
        s_conn = s_res.conn if s_res else None
        s_label = source.name if source else ""
        xml, xml_from, live = None, "", False
        if s_conn is not None:
            xml = live_xml(s_conn, name, _uuid_of(stored.domain_xml) if stored else None)
            if xml:
                xml_from, live = f"running on {s_label}", True
            elif stored is None:
                xml = _defined_xml(s_conn, name)
                xml_from = f"defined on {s_label}"
        if xml is None:
            if stored is None:
                raise VirtscenarioError(f"VM {name!r} is not in the store (create it first, use --output, or name "
                                        "the host it is defined on with --from)")
            xml, xml_from = stored.domain_xml, str(stored.directory / "domain.xml")
        return migrate_check(xml, xml_from, name, target.name, t_res.conn, t_res.facts, source.name if source else None,
                             s_conn, s_res.facts if s_res else None, live)
    finally:
        for res in checked:
            if res.conn is not None:
                try:
                    res.conn.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass


def _uuid_of(xml: str) -> Optional[str]:
    from .facts import _root
    return (_root(xml).findtext("uuid") or "").strip() or None


def _defined_xml(conn: Any, name: str) -> Optional[str]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    try:
        return str(conn.lookupByName(name).XMLDesc(0))
    except libvirt.libvirtError:
        return None


migrate_check = migrate_check_command()


def register(cli: click.Group) -> None:
    """Add ``hosts`` and ``migrate-check`` to ``cli`` (virtscenario's CLI lists them as built-ins)."""
    cli.add_command(hosts_group)
    cli.add_command(migrate_check)
