"""Tables for humans, JSON and markdown for tools and docs."""

from __future__ import annotations

import shutil
import textwrap
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..settings.display import display_value

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.registry import SettingRegistry
    from ..settings.types import Settings
    from ..types import Scenario


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: bool = True) -> str:
    if not rows:
        return "  ".join(headers)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    term = shutil.get_terminal_size((160, 24)).columns
    if wrap_last:
        used = sum(widths[:-1]) + 2 * (len(widths) - 1)
        widths[-1] = max(20, min(widths[-1], term - used)) if term > used + 20 else widths[-1]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        last = textwrap.wrap(row[-1], widths[-1]) or [""] if wrap_last else [row[-1]]
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + ("  " if len(row) > 1 else "")
                     + last[0])
        pad = sum(widths[:-1]) + 2 * (len(widths) - 1)
        lines.extend(" " * pad + extra for extra in last[1:])
    return "\n".join(line.rstrip() for line in lines)


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def settings_rows(settings: Settings, registry: SettingRegistry, scenario: Optional[Scenario] = None,
                  plugin: str = "", show_all: bool = False) -> tuple[list[list[str]], dict[str, int]]:
    """(rows, hidden) of a scenario's settings: key, value, source, rationale, reference.

    Without ``show_all`` a row is left out when it takes no part in ``scenario``
    (:mod:`virtscenario.settings.scope`); ``hidden`` counts them by reason.
    """
    from ..settings.scope import why_hidden
    rows = []
    hidden: dict[str, int] = {}
    for key in sorted(settings):
        item = settings[key]
        spec = registry.find(key)
        if not show_all and scenario is not None:
            owner = registry.owner(key) if spec is not None else "core"
            why = why_hidden(item, spec, owner, scenario, plugin, settings, registry)
            if why:
                hidden[why] = hidden.get(why, 0) + 1
                continue
        rows.append([key, display_value(spec, item.value), item.source, item.rationale, item.reference])
    return rows, hidden


def hidden_footer(hidden: dict[str, int]) -> str:
    """One line saying which rows were left out and how to see them."""
    if not hidden:
        return ""
    parts = {"unset": "unset defaults (the element is left out)", "not applicable": "not applicable here",
             "another plugin's": "other plugins' settings"}
    text = ", ".join(f"{n} {parts.get(why, why)}" for why, n in sorted(hidden.items()))
    return f"{sum(hidden.values())} more keys not shown: {text}; --all lists every key"


def settings_json(scenario: str, settings: Settings, shown: Optional[set[str]] = None) -> dict[str, Any]:
    """Every key; ``shown`` says whether the table shows it (None: all are)."""
    return {"scenario": scenario,
            "settings": [{"key": k, "value": settings[k].value, "layer": settings[k].layer,
                          "origin": settings[k].origin, "source": settings[k].source,
                          "rationale": settings[k].rationale, "reference": settings[k].reference,
                          "shown": shown is None or k in shown}
                         for k in sorted(settings)]}
