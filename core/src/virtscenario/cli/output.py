"""Tables for humans, JSON and markdown for tools and docs."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING, Any, Sequence

from ..settings.display import display_value

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.registry import SettingRegistry
    from ..settings.types import Settings


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: bool = True) -> str:
    if not rows:
        return "  ".join(headers)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    term = terminal_width(160)
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


def settings_rows(settings: Settings, registry: SettingRegistry, only_decided: bool = False) -> list[list[str]]:
    rows = []
    for key in sorted(settings):
        item = settings[key]
        if only_decided and item.layer == "default" and item.value is None:
            continue
        spec = registry.find(key)
        rows.append([key, display_value(spec, item.value), item.source, item.rationale, item.reference])
    return rows


def settings_json(scenario: str, settings: Settings) -> dict[str, Any]:
    return {"scenario": scenario,
            "settings": [{"key": k, "value": settings[k].value, "layer": settings[k].layer,
                          "origin": settings[k].origin, "source": settings[k].source,
                          "rationale": settings[k].rationale, "reference": settings[k].reference}
                         for k in sorted(settings)]}


def terminal_width(default: int = 80) -> int:
    """COLUMNS, else the terminal's width, else ``default`` (not a terminal)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(1).columns
    except OSError:
        return default
