"""Tables for humans (fitted to the terminal), JSON and markdown for tools and docs."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..settings.display import display_value

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.registry import SettingRegistry
    from ..settings.types import Settings
    from ..types import Scenario

#: Width when stdout is not a terminal (and COLUMNS is unset): what a pager or a log shows.
DEFAULT_WIDTH = 80
SEPARATOR = "  "


def terminal_width(default: int = DEFAULT_WIDTH) -> int:
    """COLUMNS, else the terminal's width, else ``default`` (not a terminal)."""
    try:
        return max(20, int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(1).columns
    except OSError:
        return default


def fit_widths(natural: list[int], headers: Sequence[str], width: int) -> list[int]:
    """Column widths whose sum (with separators) fits ``width``: the widest columns give way first."""
    avail = width - len(SEPARATOR) * (len(natural) - 1)
    widths = list(natural)
    if sum(widths) <= avail:
        return widths
    floors = [min(w, max(len(h), 8)) for w, h in zip(natural, headers)]
    excess = sum(widths) - avail
    while excess > 0:
        # Shrink the column with the most room above its floor; once all are at their floors,
        # narrower floors (3) so that no line is ever wider than the terminal.
        room = [w - f for w, f in zip(widths, floors)]
        i = max(range(len(widths)), key=lambda k: (room[k], widths[k]))
        if room[i] <= 0:
            if all(f <= 3 for f in floors):
                break
            floors = [min(f, 3) for f in floors]
            continue
        step = min(room[i], excess)
        widths[i] -= step
        excess -= step
    return widths


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: Optional[int] = None,
          wrap_last: bool = True) -> str:
    """A plain-text table no wider than ``width`` (default: the terminal's): cells wrap in their column.

    ``wrap_last`` is kept for callers of API 1.x; every column wraps when the table must shrink.
    """
    del wrap_last
    if not rows:
        return SEPARATOR.join(headers)
    width = width or terminal_width()
    natural = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    widths = fit_widths(natural, headers, width)
    lines = [SEPARATOR.join(h[:w].ljust(w) for h, w in zip(headers, widths)).rstrip(),
             SEPARATOR.join("-" * w for w in widths)]
    for row in rows:
        cells = [wrap_cell(str(c), w) for c, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            lines.append(SEPARATOR.join((c[k] if k < len(c) else "").ljust(w)
                                        for c, w in zip(cells, widths)).rstrip())
    return "\n".join(lines)


def wrapped(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` wrapped to ``width``, words never broken (paths and commands stay whole on a line
    when they fit), continuation lines indented two more spaces."""
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False) or [indent]


def wrap_cell(text: str, width: int) -> list[str]:
    """Wrap at spaces; a word longer than the column (a URL) starts its own line and is cut there."""
    out: list[str] = []
    for line in textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]:
        out += [line[i:i + width] for i in range(0, len(line), width)] if len(line) > width else [line]
    return out


def one_line(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters (cut with an ellipsis)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


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


def setting_json(key: str, item: Any) -> dict[str, Any]:
    return {"key": key, "value": item.value, "layer": item.layer, "origin": item.origin, "source": item.source,
            "rationale": item.rationale, "reference": item.reference}


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
            "settings": [{**setting_json(k, settings[k]), "shown": shown is None or k in shown}
                         for k in sorted(settings)]}
