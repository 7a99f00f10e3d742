"""``virtscenario settings``: every setting key with its type, default and meaning."""

from __future__ import annotations

import json

import click


@click.command("settings")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
def settings_cmd(as_json: bool, fmt: str) -> None:
    """List every setting key with its type, default and meaning.

    \b
    Examples:
      virtscenario settings
      virtscenario settings --json
    """
    from ...plugin.hooks import Catalog
    from ...settings.display import display_value
    cat = Catalog()
    specs = sorted(cat.registry, key=lambda s: s.key)
    if as_json:
        click.echo(json.dumps([{"key": s.key, "type": s.kind, "choices": list(s.choices), "default": s.default,
                                "help": s.help, "owner": cat.registry.owner(s.key), "rationale": s.rationale,
                                "reference": s.reference, "applies_when": list(s.applies_when),
                                "scenarios": list(s.scenarios)} for s in specs], indent=2))
        return
    rows = [[s.key, "|".join(s.choices) if s.kind == "choice" else s.kind, display_value(s, s.default),
             s.help + (f" (applies when {' and '.join(s.applies_when)})" if s.applies_when else ""),
             cat.registry.owner(s.key)] for s in specs]
    if fmt == "markdown":
        from ..output import markdown_table
        click.echo(markdown_table(["key", "type", "default", "meaning", "declared by"], rows))
        return
    from ..output import table
    click.echo(table(["KEY", "TYPE", "DEFAULT", "MEANING"], [r[:4] for r in rows]))
