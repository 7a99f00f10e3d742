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
    """Installed plugins.

    \b
    Examples:
      virtscenario plugins list
      virtscenario plugins install virtscenario-softrt
    """


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
      virtscenario plugins uninstall virtscenario-softrt
      virtscenario plugins uninstall -y virtscenario-softrt virtscenario-migration
    """
    from ...sdk.pipcmd import uninstall
    uninstall(names, yes=yes)


@click.group("plugin")
def plugin_group() -> None:
    """Tools for plugin authors.

    \b
    Examples:
      virtscenario plugin new lab
      virtscenario plugin check ./virtscenario-lab
    """


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Project directory to create (default: ./virtscenario-NAME).")
@click.option("--core-source", envvar="VIRTSCENARIO_SOURCE", metavar="SPEC",
              help="Where the generated CI installs virtscenario from: a pip requirement such as "
                   "'virtscenario @ git+https://HOST/virtscenario.git#subdirectory=core' or a path "
                   "(default: VIRTSCENARIO_SOURCE, else the VCS URL this virtscenario was installed from).")
def plugin_new(name: str, directory: Optional[str], core_source: Optional[str]) -> None:
    """Scaffold a scenario plugin distribution named virtscenario-NAME.

    NAME is the scenario, the entry point and the module virtscenario_NAME: it may not be a
    name an installed distribution or virtscenario itself uses.

    \b
    Examples:
      virtscenario plugin new lab
      virtscenario plugin new lab --dir ~/src/virtscenario-lab
    """
    from ...sdk.scaffold import install_hint, scaffold
    path = scaffold(name, directory, core_source)
    click.echo(f"Created {path}. Next: {install_hint(path)}")
    workflow = path / ".github" / "workflows" / "test.yml"
    if "|| ''" in workflow.read_text(encoding="utf-8"):
        click.echo(f"Note: set VIRTSCENARIO_SOURCE in {workflow} to where CI installs virtscenario from "
                   "(virtscenario is not on PyPI; see the comment there)", err=True)


@plugin_group.command("check")
@click.argument("target", default=".", metavar="[NAME|PATH]")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def plugin_check(ctx: click.Context, target: str, as_json: bool) -> None:
    """Check one plugin, alone with the core's essential plugins: every problem in one list.

    NAME is a module NAME.py of --plugins-dir (VIRTSCENARIO_PLUGINS_DIR) or an installed plugin
    (entry-point or distribution name); PATH is a plugin project directory (default: the
    current directory), a package directory or a module file. The
    check lints the plugin, calls each registration hook, renders each of its scenarios
    offline and on a fake host, validates the XML against libvirt's RelaxNG schema (a missing
    schema is a problem), plans the host, runs its host checks on the fake host, and calls
    every other hook it implements on the VMs of other scenarios (the core's defaults and
    the installed built-in ones): do its per-VM hooks and rules fail on them or change them,
    does host_plan take their host requirements, does verify_checks run on a fake guest.
    Exit status 1 on any problem.

    \b
    Examples:
      virtscenario plugin check
      virtscenario plugin check ./virtscenario-lab
      virtscenario plugin check softrt --json
    """
    from ...sdk.check import check_plugin
    from ..app import BUILTIN_COMMANDS, LazyGroup
    root = ctx.find_root().command
    builtins = {name: root.builtin(name) for name in BUILTIN_COMMANDS} if isinstance(root, LazyGroup) else {}
    report = check_plugin(target, builtin_commands=builtins)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        click.echo(f"Plugin {report.plugin} ({report.source})")
        click.echo(f"  hooks: {', '.join(report.hooks) or '-'}")
        for line in report.done:
            click.echo(f"  {line}")
        if report.problems:
            click.echo(f"{len(report.problems)} problem{'s' if len(report.problems) > 1 else ''}:")
            for problem in report.problems:
                click.echo(f"  - {problem.text(report.plugin)}")
        else:
            click.echo("No problems found.")
    if report.problems:
        raise SystemExit(1)
