"""Command-line syntax shared by every command: ``--set KEY=VALUE`` and virt-install style
``key=value,key=value`` option lists (``--disk``, ``--network``)."""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ConfigError, UsageError

#: One command-line value: (setting key, raw value, the flag that gave it).
FlagValue = tuple[str, Any, str]


def parse_sets(values: Iterable[str]) -> list[FlagValue]:
    """``--set KEY=VALUE`` items, in command-line order (a later one wins)."""
    out: list[FlagValue] = []
    for item in values:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"--set {item[:80]!r} is not KEY=VALUE")
        out.append((key, value, f"--set {key}"))
    return out


def option_pairs(text: str, allowed: tuple[str, ...], what: str) -> dict[str, str]:
    """``a=1,b=2`` -> {a: 1, b: 2}; unknown, empty and repeated options are one-line errors."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if key not in allowed:
            import difflib
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise ConfigError(f"{what} {text[:80]!r}: unknown option {key[:40]!r}{hint}")
        if not eq or not value.strip():
            raise ConfigError(f"{what} {text[:80]!r}: option {key!r} needs a value ({key}=...)")
        if key in out:
            raise ConfigError(f"{what} {text[:80]!r}: option {key!r} given twice")
        out[key] = value.strip()
    return out
