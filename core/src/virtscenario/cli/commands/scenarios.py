"""``virtscenario scenarios list|show|compare``."""

from __future__ import annotations

import json
from typing import Optional

import click

from ..common import complete_scenarios, complete_settings, print_notes


@click.group("scenarios")
def scenarios_group() -> None:
    """Scenarios and their settings.

    \b
    Examples:
      virtscenario scenarios list
      virtscenario scenarios show desktop
      virtscenario scenarios compare
    """


@scenarios_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def scenarios_list(as_json: bool) -> None:
    """List installed scenarios.

    \b
    Examples:
      virtscenario scenarios list
      virtscenario scenarios list --json
    """
    from ...plugin.hooks import Catalog
    cat = Catalog()
    items = [{"name": p.scenario.name, "summary": p.scenario.summary, "plugin": p.plugin,
              "version": p.scenario.version} for p in cat.scenarios.values()]
    print_notes(cat.notes)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    from ..output import table
    click.echo(table(["NAME", "VERSION", "PLUGIN", "SUMMARY"],
                     [[i["name"], i["version"], i["plugin"], i["summary"]] for i in items]))


@scenarios_group.command("show")
@click.argument("name", shell_complete=complete_scenarios)
@click.option("--json", "as_json", is_flag=True, help="JSON output (every key, each with \"shown\").")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
@click.option("--all", "show_all", is_flag=True,
              help="Also list unset defaults, keys that do not apply here and other plugins' settings.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", shell_complete=complete_settings,
              help="Override a setting (repeatable).")
def scenarios_show(name: str, as_json: bool, fmt: str, show_all: bool, config_file: Optional[str],
                   sets: tuple[str, ...]) -> None:
    """Show a scenario's resolved settings: value, source, rationale, reference.

    Rows of keys that take no part in the scenario are left out (an unset default, a key
    whose condition does not hold, such as watchdog.action without a watchdog, another
    plugin's setting); a line at the end counts them, and --all lists every key.

    \b
    Examples:
      virtscenario scenarios show desktop
      virtscenario scenarios show computation --set vm.vcpus=16 --json
      virtscenario scenarios show securevm --format markdown
    """
    from ...plugin.hooks import Catalog
    from ...settings.cliargs import parse_sets
    from ...settings.resolve import resolve_scenario
    from ...settings.userfile import load_config
    cat = Catalog()
    config = load_config(config_file)
    provided, settings = resolve_scenario(cat, name, config, parse_sets(sets))
    print_notes(cat.notes)
    from ..output import hidden_footer, markdown_table, settings_rows, table
    rows, hidden = settings_rows(settings, cat.registry, provided.scenario, provided.plugin, show_all)
    if as_json:
        from ..output import settings_json
        click.echo(json.dumps(settings_json(name, settings, {r[0] for r in rows}), indent=2, default=str))
        return
    sc = provided.scenario
    footer = hidden_footer(hidden)
    if fmt == "markdown":
        click.echo(f"## {sc.name} {sc.version}\n\n{sc.summary}\n")
        click.echo(markdown_table(["key", "value", "source", "rationale", "reference"], rows))
        if footer:
            click.echo(f"\n{footer}.")
        return
    from ..output import terminal_width, wrapped
    width = terminal_width()
    click.echo("\n".join(wrapped(f"{sc.name} {sc.version} ({provided.distribution}): {sc.summary}", width)) + "\n")
    click.echo(table(["KEY", "VALUE", "SOURCE", "WHY"], [[r[0], r[1], r[2], f"{r[3]} [{r[4]}]"] for r in rows],
                     width))
    if footer:
        click.echo("\n" + "\n".join(wrapped(f"{footer}.", width)))


@scenarios_group.command("compare")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
def scenarios_compare(fmt: str) -> None:
    """One table of every setting across the installed scenarios (no user config applied).

    Values a scenario decides are marked (* in the table, bold in markdown); the
    others are defaults.

    \b
    Examples:
      virtscenario scenarios compare
      virtscenario scenarios compare --format markdown > docs/scenarios.md
    """
    from ...plugin.hooks import Catalog
    from ...settings.display import display_value
    from ...settings.resolve import resolve_scenario
    from ...settings.userfile import UserConfig
    cat = Catalog()
    names = list(cat.scenarios)
    resolved = {n: resolve_scenario(cat, n, UserConfig(), [])[1] for n in names}
    print_notes(cat.notes)
    from ...settings.scope import used_by
    rows = []
    for spec in sorted(cat.registry, key=lambda s: s.key):
        cells = []
        owner = cat.registry.owner(spec.key)
        for n in names:
            item = resolved[n][spec.key]
            text = display_value(spec, item.value)
            decided = item.layer in ("scenario", "plugin")
            if not decided and not used_by(spec, owner, cat.scenarios[n].scenario, cat.scenarios[n].plugin):
                text = ""  # another plugin's setting: not part of this scenario
            cells.append((f"**{text}**" if fmt == "markdown" else f"{text}*") if decided else text)
        rows.append([spec.key, *cells])
    if fmt == "markdown":
        from ..output import markdown_table
        versions = ", ".join(f"{n} {cat.scenarios[n].scenario.version} ({cat.scenarios[n].distribution})"
                             for n in names)
        click.echo("# Scenario settings compared\n")
        click.echo("Generated by `virtscenario scenarios compare --format markdown`; do not edit by hand.")
        click.echo(f"Scenarios: {versions}.\n")
        click.echo("**Bold** values are decided by the scenario (each with a rationale and a reference: "
                   "`virtscenario scenarios show NAME`); the others are defaults. `-` is unset (the element "
                   "is left out); an empty cell is another plugin's setting that the scenario does not use.\n")
        click.echo(markdown_table(["setting", *names], rows))
        return
    from ..output import table
    click.echo(table(["SETTING", *[n.upper() for n in names]], rows, wrap_last=False))
    click.echo("\n* decided by the scenario; other values are defaults.")
