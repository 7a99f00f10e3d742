"""The ``virtscenario`` command line (click). Imports are lazy: ``--version`` loads no plugin."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import click

from . import __version__
from .errors import VirtscenarioError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """Loads plugins (and their ``register_commands``) only when a non-built-in command is needed."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from .catalog import Catalog
        Catalog().call("register_commands", cli=self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)


def _list_plugins_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        _print_plugins(as_json=False)
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="virtscenario", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--host-root", type=click.Path(file_okay=False), envvar="VIRTSCENARIO_HOST_ROOT",
              help="Map /proc, /sys, /etc, /dev and the journal under DIR (tests, offline images).")
@click.option("--list-plugins", is_flag=True, expose_value=False, is_eager=True, callback=_list_plugins_flag,
              help="List plugins and exit.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, host_root: Optional[str]) -> None:
    """Generate libvirt guests and host plans from workload scenarios."""
    ctx.obj = {"debug": debug, "host_root": host_root}


def host_root_of(ctx: click.Context) -> Any:
    from .hostroot import HostRoot
    root = (ctx.find_root().obj or {}).get("host_root")
    if root and not os.path.isdir(root):
        raise VirtscenarioError(f"--host-root {root}: no such directory")
    return HostRoot.from_env(root)


# -- plugins ----------------------------------------------------------------------------
@cli.group("plugins")
def plugins_group() -> None:
    """Installed plugins."""


def _print_plugins(as_json: bool) -> None:
    from .plugins import get_plugin_manager, list_plugins
    infos = list_plugins(get_plugin_manager())
    if as_json:
        click.echo(json.dumps([i.as_json() for i in infos], indent=2))
        return
    from .output import table
    rows = [[i.name, i.version or "-", i.distribution or "-", i.status + (f" ({i.error})" if i.error else ""),
             ", ".join(i.hooks) or "-"] for i in infos]
    click.echo(table(["NAME", "VERSION", "DISTRIBUTION", "STATUS", "HOOKS"], rows))


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def plugins_list(as_json: bool) -> None:
    """List plugins: name, version, distribution, hooks, status."""
    _print_plugins(as_json)


@plugins_group.command("install")
@click.argument("names", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade to the newest version.")
@click.option("-e", "--editable", "editables", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Install a local plugin project in development mode (repeatable).")
def plugins_install(names: tuple[str, ...], upgrade: bool, editables: tuple[str, ...]) -> None:
    """Install plugin distributions with pip into the environment virtscenario runs in."""
    from .sdk.pipcmd import install
    install(names, upgrade=upgrade, editables=editables)
    click.echo("Done: 'virtscenario plugins list' shows the plugins now available.")


@plugins_group.command("uninstall")
@click.argument("names", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def plugins_uninstall(names: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin distributions with pip from the environment virtscenario runs in."""
    from .sdk.pipcmd import uninstall
    uninstall(names, yes=yes)


@cli.group("plugin")
def plugin_group() -> None:
    """Tools for plugin authors."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Project directory to create (default: ./virtscenario-NAME).")
def plugin_new(name: str, directory: Optional[str]) -> None:
    """Scaffold a scenario plugin distribution named virtscenario-NAME."""
    from .sdk.scaffold import scaffold
    path = scaffold(name, directory)
    click.echo(f"Created {path}: pip install -e '{path}[test]', then run pytest in it.")


# -- scenarios --------------------------------------------------------------------------
def _complete_scenarios(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    try:
        from .catalog import Catalog
        return [click.shell_completion.CompletionItem(n) for n in Catalog().scenarios if n.startswith(incomplete)]
    except Exception:  # completion must never crash the shell  # noqa: BLE001
        return []


@cli.group("scenarios")
def scenarios_group() -> None:
    """Scenarios and their settings."""


@scenarios_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def scenarios_list(as_json: bool) -> None:
    """List installed scenarios."""
    from .catalog import Catalog
    cat = Catalog()
    items = [{"name": p.scenario.name, "summary": p.scenario.summary, "plugin": p.plugin,
              "version": p.scenario.version} for p in cat.scenarios.values()]
    _print_notes(cat.notes)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    from .output import table
    click.echo(table(["NAME", "VERSION", "PLUGIN", "SUMMARY"],
                     [[i["name"], i["version"], i["plugin"], i["summary"]] for i in items]))


def _parse_sets(values: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    out = []
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        out.append((key.strip(), value, f"--set {key.strip()}"))
    return out


@scenarios_group.command("show")
@click.argument("name", shell_complete=_complete_scenarios)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
def scenarios_show(name: str, as_json: bool, fmt: str, config_file: Optional[str], sets: tuple[str, ...]) -> None:
    """Show a scenario's resolved settings: value, source, rationale, reference."""
    from .catalog import Catalog
    from .config import load_config
    from .pipeline import resolve_settings
    cat = Catalog()
    config = load_config(config_file)
    provided, settings = resolve_settings(cat, name, config, _parse_sets(sets))
    _print_notes(cat.notes)
    if as_json:
        from .output import settings_json
        click.echo(json.dumps(settings_json(name, settings), indent=2, default=str))
        return
    from .output import markdown_table, settings_rows, table
    rows = settings_rows(settings, cat.registry)
    sc = provided.scenario
    if fmt == "markdown":
        click.echo(f"## {sc.name} {sc.version}\n\n{sc.summary}\n")
        click.echo(markdown_table(["key", "value", "source", "rationale", "reference"], rows))
        return
    click.echo(f"{sc.name} {sc.version} ({provided.distribution}): {sc.summary}\n")
    click.echo(table(["KEY", "VALUE", "SOURCE", "WHY"], [[r[0], r[1], r[2], f"{r[3]} [{r[4]}]"] for r in rows]))


@scenarios_group.command("compare")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
def scenarios_compare(fmt: str) -> None:
    """One table of every setting across the installed scenarios (no user config applied).

    Values a scenario decides are marked (* in the table, bold in markdown); the
    others are core defaults.
    """
    from .catalog import Catalog
    from .config import UserConfig
    from .pipeline import resolve_settings
    from .settings import display_value
    cat = Catalog()
    names = list(cat.scenarios)
    resolved = {n: resolve_settings(cat, n, UserConfig(), [])[1] for n in names}
    _print_notes(cat.notes)
    rows = []
    for spec in sorted(cat.registry, key=lambda s: s.key):
        cells = []
        for n in names:
            item = resolved[n][spec.key]
            text = display_value(spec, item.value)
            decided = item.source.startswith(("scenario", "plugin"))
            cells.append((f"**{text}**" if fmt == "markdown" else f"{text}*") if decided else text)
        rows.append([spec.key, *cells])
    if fmt == "markdown":
        from .output import markdown_table
        versions = ", ".join(f"{n} {cat.scenarios[n].scenario.version} ({cat.scenarios[n].distribution})"
                             for n in names)
        click.echo("# Scenario settings compared\n")
        click.echo("Generated by `virtscenario scenarios compare --format markdown`; do not edit by hand.")
        click.echo(f"Scenarios: {versions}.\n")
        click.echo("**Bold** values are decided by the scenario (each with a rationale and a reference: "
                   "`virtscenario scenarios show NAME`); the others are core defaults.\n")
        click.echo(markdown_table(["setting", *names], rows))
        return
    from .output import table
    click.echo(table(["SETTING", *[n.upper() for n in names]], rows, wrap_last=False))
    click.echo("\n* decided by the scenario; other values are core defaults.")


# -- create -----------------------------------------------------------------------------
@cli.command("create")
@click.argument("scenario", shell_complete=_complete_scenarios)
@click.option("--name", required=True, help="VM name (libvirt rules; also its store directory).")
@click.option("--vcpus", type=str, help="Number of vCPUs (vm.vcpus).")
@click.option("--memory", type=str, help="Memory, e.g. 4GiB, 4096MiB, 4G; bare numbers are MiB (vm.memory).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
@click.option("--disk", "disks", multiple=True, metavar="SPEC",
              help="size=GiB[,format=,cache=,bus=,io=,discard=] | path=IMAGE[,...] | none (repeatable).")
@click.option("--cdrom", type=click.Path(dir_okay=False), help="Attach an ISO and boot from it first.")
@click.option("--network", "networks", multiple=True, metavar="SPEC",
              help="network=NAME | bridge=NAME | user | none, with [,model=,mac=,queues=] (repeatable).")
@click.option("--output", type=click.Path(file_okay=False), help="Store root (default: /var/lib/virtscenario/vms "
              "as root, $XDG_DATA_HOME/virtscenario/vms otherwise).")
@click.option("--force", is_flag=True, help="Regenerate an existing VM (keeps its uuid, MACs and images).")
@click.option("--print-xml", is_flag=True, help="Print only the domain XML; write and touch nothing.")
@click.option("--dry-run", is_flag=True, help="Print everything create would do, and do nothing.")
@click.option("--connect", metavar="URI", help="Check against this hypervisor's capabilities (and define there).")
@click.option("--virt-type", type=click.Choice(["kvm", "qemu"]), help="Domain type (vm.virt_type).")
@click.option("--define", is_flag=True, help="Define the domain in libvirt (default URI qemu:///system).")
@click.option("--start", is_flag=True, help="Define and start the domain.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True),
              help="Passphrase for encrypted images (default: a random one kept 0600 in the VM's store).")
@click.pass_context
def create(ctx: click.Context, **opts: Any) -> None:
    """Create a VM from SCENARIO: domain XML, images, settings record, host plan."""
    from .create import run_create
    run_create(ctx, opts)


# -- validate ---------------------------------------------------------------------------
@cli.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--connect", metavar="URI", help="Also check against this hypervisor's domain capabilities.")
@click.option("--schema", type=click.Path(dir_okay=False), help="RelaxNG schema (default: libvirt's domain.rng).")
def validate_cmd(file: str, connect: Optional[str], schema: Optional[str]) -> None:
    """Validate a domain XML file against libvirt's schema (and a hypervisor)."""
    from .create import run_validate
    run_validate(file, connect, schema)


# -- settings ---------------------------------------------------------------------------
@cli.command("settings")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
def settings_cmd(as_json: bool, fmt: str) -> None:
    """List every setting key with its type, default and meaning."""
    from .catalog import Catalog
    from .settings import display_value
    cat = Catalog()
    specs = sorted(cat.registry, key=lambda s: s.key)
    if as_json:
        click.echo(json.dumps([{"key": s.key, "type": s.kind, "choices": list(s.choices), "default": s.default,
                                "help": s.help, "owner": cat.registry.owner(s.key)} for s in specs], indent=2))
        return
    rows = [[s.key, "|".join(s.choices) if s.kind == "choice" else s.kind, display_value(s, s.default), s.help,
             cat.registry.owner(s.key)] for s in specs]
    if fmt == "markdown":
        from .output import markdown_table
        click.echo(markdown_table(["key", "type", "default", "meaning", "declared by"], rows))
        return
    from .output import table
    click.echo(table(["KEY", "TYPE", "DEFAULT", "MEANING"], [r[:4] for r in rows]))


def _print_notes(notes: Any) -> None:
    seen = set()
    for note in notes:
        if note.message in seen:
            continue
        seen.add(note.message)
        prefix = "Warning: " if note.level == "warning" else "Note: "
        click.echo(prefix + note.message, err=True)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: one ``Error:`` line and exit 1 on failure; a traceback only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("VIRTSCENARIO_DEBUG") == "1"
    try:
        # standalone_mode=False returns ctx.exit()'s code instead of exiting: pass it on.
        code = cli.main(args=args, prog_name="virtscenario", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VirtscenarioError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, never a traceback by default
        if debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"Error: internal error: {type(exc).__name__}: {text} (run with --debug for a traceback)",
                   err=True)
        sys.exit(1)
