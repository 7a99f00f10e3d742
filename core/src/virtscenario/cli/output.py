"""Tables for humans (fitted to the terminal), JSON and markdown for tools and docs."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..settings.display import display_value
from ..terminal import terminal_width

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.registry import SettingRegistry
    from ..settings.types import Settings
    from ..types import Scenario

SEPARATOR = "  "


#: A column keeps room for its longest word up to this width, so names are not cut mid-word.
WORD_FLOOR = 30


def fit_widths(natural: list[int], headers: Sequence[str], width: int,
               longest_words: Optional[Sequence[int]] = None) -> list[int]:
    """Column widths whose sum (with separators) fits ``width``: the widest columns give way first,
    each down to its floor (its header, its longest word up to :data:`WORD_FLOOR`, at least 8)."""
    avail = width - len(SEPARATOR) * (len(natural) - 1)
    widths = list(natural)
    if sum(widths) <= avail:
        return widths
    words = longest_words or [0] * len(natural)
    floors = [min(w, max(len(h), 8, min(word, WORD_FLOOR))) for w, h, word in zip(natural, headers, words)]
    if sum(floors) > avail:  # the words do not fit side by side: only the first column (the name) keeps its
        headed = [min(w, max(len(h), 8)) for w, h in zip(natural, headers)]
        floors = floors[:1] + headed[1:] if floors[0] + sum(headed[1:]) <= avail else headed
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

    When the last column (free text: a reason, a result) would be squeezed below
    :data:`STACK_BELOW` characters, each row is printed as its other columns on one line and
    that text wrapped under them, across the whole width. ``wrap_last`` is kept for callers
    of API 1.x.
    """
    del wrap_last
    if not rows:
        return SEPARATOR.join(headers)
    width = width or terminal_width()
    widths = _widths(headers, rows, width)
    last = _natural(headers, rows)[-1]
    if len(headers) >= 3 and last >= FREE_TEXT and widths[-1] < STACK_BELOW:
        widths = _widths(headers[:-1], [r[:-1] for r in rows], width)
        lines = [_line(headers[:-1], widths), f"{STACK_INDENT}{headers[-1]}", _rule(widths)]
        for row in rows:
            lines += _row(row[:-1], widths)
            lines += [f"{STACK_INDENT}{t}" for t in wrap_cell(str(row[-1]), width - len(STACK_INDENT))]
        return "\n".join(lines)
    lines = [_line(headers, widths), _rule(widths)]
    for row in rows:
        lines += _row(row, widths)
    return "\n".join(lines)


#: A last column this wide (a reason, a result) is free text: rather than squeezing it below
#: STACK_BELOW characters, the table prints it under each row.
FREE_TEXT = 40
STACK_BELOW = 20
STACK_INDENT = "    "


def _natural(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    words = [max((len(w) for r in rows for w in str(r[i]).split()), default=0) for i in range(len(headers))]
    return fit_widths(_natural(headers, rows), headers, width, words)


def _line(headers: Sequence[str], widths: Sequence[int]) -> str:
    return SEPARATOR.join(h[:w].ljust(w) for h, w in zip(headers, widths)).rstrip()


def _rule(widths: Sequence[int]) -> str:
    return SEPARATOR.join("-" * w for w in widths)


def _row(row: Sequence[str], widths: Sequence[int]) -> list[str]:
    cells = [wrap_cell(str(c), w) for c, w in zip(row, widths)]
    return [SEPARATOR.join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths)).rstrip()
            for k in range(max(len(c) for c in cells))]


def wrapped(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` wrapped to ``width``, words never broken (paths and commands stay whole on a line
    when they fit), continuation lines indented two more spaces."""
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False) or [indent]


def wrap_cell(text: str, width: int) -> list[str]:
    """Wrap at spaces; a word longer than the column (a URL) starts its own line and is cut there."""
    if width < 1:  # a column whose header and cells are all empty (the shell's mark column)
        return [text]
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
