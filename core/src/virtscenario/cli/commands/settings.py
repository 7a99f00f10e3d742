"""``virtscenario settings``: every setting key with its type, default and meaning."""

from __future__ import annotations

import json
from typing import Any

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
                                "scenarios": list(s.scenarios), "minimum": s.minimum, "maximum": s.maximum}
                               for s in specs], indent=2))
        return
    rows = [[s.key, kind_text(s), display_value(s, s.default),
             s.help + (f" (applies when {' and '.join(s.applies_when)})" if s.applies_when else ""),
             cat.registry.owner(s.key)] for s in specs]
    if fmt == "markdown":
        from ..output import markdown_table
        click.echo(markdown_table(["key", "type", "default", "meaning", "declared by"], rows))
        return
    from ..output import table
    click.echo(table(["KEY", "TYPE", "DEFAULT", "MEANING"], [r[:4] for r in rows]))


def kind_text(spec: Any) -> str:
    """The type as the table shows it, with the bounds of a number or size (``size 64MiB..4PiB``)."""
    if spec.kind == "choice":
        return "|".join(spec.choices)
    if spec.kind not in ("int", "size") or (spec.minimum is None and spec.maximum is None):
        return str(spec.kind)
    from ...units import format_size
    shown = format_size if spec.kind == "size" else str
    low = "" if spec.minimum is None else shown(spec.minimum)
    high = "" if spec.maximum is None else shown(spec.maximum)
    return f"{spec.kind} {low}..{high}"
