"""``virtscenario plugins list|install|uninstall`` and ``plugin new|check`` (for plugin authors)."""

from __future__ import annotations

import json
from typing import Optional

import click


def print_plugins(as_json: bool, root: Optional[click.Group] = None) -> None:
    """Every plugin with its status. The registration hooks run first (and ``register_commands``
    when ``root`` is given), so a plugin that fails in one is listed as ``error`` with its message."""
    from ...plugin.hooks import Catalog
    from ...plugin.manager import get_plugin_manager, list_plugins
    pm = get_plugin_manager()
    Catalog(pm).register()
    if root is not None:
        from ..app import load_plugin_commands
        load_plugin_commands(root)
    infos = list_plugins(pm)
    if as_json:
        click.echo(json.dumps([i.as_json() for i in infos], indent=2))
        return
    from ..output import table
    rows = [[i.name, i.version or "-", i.distribution or "-", i.status + (f" ({i.error})" if i.error else ""),
             ", ".join(i.hooks) or "-"] for i in infos]
    click.echo(table(["NAME", "VERSION", "DISTRIBUTION", "STATUS", "HOOKS"], rows))


@click.group("plugins")
def plugins_group() -> None:
    """Installed plugins."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List plugins: name, version, distribution, hooks, status (active, error, disabled, incompatible).

    \b
    Examples:
      virtscenario plugins list
      virtscenario plugins list --json
    """
    print_plugins(as_json, ctx.find_root().command)  # type: ignore[arg-type]


@plugins_group.command("install")
@click.argument("names", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade to the newest version.")
@click.option("-e", "--editable", "editables", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Install a local plugin project in development mode (repeatable).")
def plugins_install(names: tuple[str, ...], upgrade: bool, editables: tuple[str, ...]) -> None:
    """Install plugin distributions with pip into the environment virtscenario runs in.

    \b
    Examples:
      virtscenario plugins install virtscenario-softrt
      virtscenario plugins install -e ./virtscenario-lab
    """
    from ...sdk.pipcmd import install
    install(names, upgrade=upgrade, editables=editables)
    click.echo("Done: 'virtscenario plugins list' shows the plugins now available.")


@plugins_group.command("uninstall")
@click.argument("names", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def plugins_uninstall(names: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin distributions with pip from the environment virtscenario runs in.

    \b
    Examples:
      virtscenario plugins uninstall -y virtscenario-softrt
    """
    from ...sdk.pipcmd import uninstall
    uninstall(names, yes=yes)


@click.group("plugin")
def plugin_group() -> None:
    """Tools for plugin authors."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Project directory to create (default: ./virtscenario-NAME).")
def plugin_new(name: str, directory: Optional[str]) -> None:
    """Scaffold a scenario plugin distribution named virtscenario-NAME.

    \b
    Examples:
      virtscenario plugin new lab
      virtscenario plugin new lab --dir ~/src/virtscenario-lab
    """
    from ...sdk.scaffold import scaffold
    path = scaffold(name, directory)
    from ...sdk.scaffold import install_hint
    click.echo(f"Created {path}. Next: {install_hint(path)}")
