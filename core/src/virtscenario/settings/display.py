"""Setting values worded for people (tables, notes, docs)."""

from __future__ import annotations

from typing import Any, Optional

from .types import SettingSpec

#: Keys whose integers read best in hex (policies are bit fields).
HEX_KEYS = frozenset({"launch_security.policy"})


def display_value(spec: Optional[SettingSpec], value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if spec is not None and spec.kind == "size" and isinstance(value, int):
        from ..units import format_size
        return format_size(value)
    if spec is not None and spec.key in HEX_KEYS and isinstance(value, int):
        return hex(value)
    return str(value)
