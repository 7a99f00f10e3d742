"""The terminal's width, and wrapping text to it, for the CLI and the fleet reports.

Kept apart from the table code (:mod:`virtscenario.cli.output`, which uses textwrap) so
that paths which only print a few notes, such as ``create --print-xml``, stay cheap.
"""

from __future__ import annotations

import os

#: Width when stdout is not a terminal (and COLUMNS is unset): what a pager or a log shows.
DEFAULT_WIDTH = 80


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


def wrap_words(text: str, width: int, indent: str = "  ") -> list[str]:
    """Greedy wrap at spaces, continuation lines indented, a word never broken (a path stays
    whole)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = indent + word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines
