"""Which settings rows a scenario shows: the keys that take part in it.

Every key is resolved for every scenario (so ``--set`` works everywhere), but a table
of 100 rows where a third say "unset" or belong to another plugin hides the decisions.
A row is shown when someone (scenario, plugin, file, flag) set the value, or when its
default is in effect *and* it has an effect here: not unset (an unset default leaves
the element out of the XML), its ``applies_when`` conditions hold, and, for a plugin's
setting, the scenario uses it (see :attr:`SettingSpec.scenarios`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .display import display_value

if TYPE_CHECKING:  # pragma: no cover
    from ..types import Scenario
    from .registry import SettingRegistry
    from .types import ResolvedSetting, Settings, SettingSpec


def condition_holds(condition: str, settings: Settings, registry: SettingRegistry) -> bool:
    key, negated, values = _parse(condition)
    shown = display_value(registry.find(key), settings.value(key))
    return (shown in values) != negated


def _parse(condition: str) -> tuple[str, bool, tuple[str, ...]]:
    if "!=" in condition:
        key, values = condition.split("!=", 1)
        return key, True, tuple(values.split("|"))
    key, values = condition.split("=", 1)
    return key, False, tuple(values.split("|"))


def used_by(spec: SettingSpec, owner: str, scenario: Scenario, scenario_plugin: str) -> bool:
    """A plugin's setting belongs to its plugin's scenarios, the scenarios that set it and those it names."""
    if owner == "core" or owner == scenario_plugin or "*" in spec.scenarios or scenario.name in spec.scenarios:
        return True
    return any(choice.key == spec.key for choice in scenario.choices)


def why_hidden(item: ResolvedSetting, spec: Optional[SettingSpec], owner: str, scenario: Scenario,
               scenario_plugin: str, settings: Settings, registry: SettingRegistry) -> str:
    """'' when the row is shown, else why not (for the footer of ``scenarios show``)."""
    if item.layer != "default" or spec is None:
        return ""
    if not used_by(spec, owner, scenario, scenario_plugin):
        return "another plugin's"
    if item.value is None:
        return "unset"
    if not all(condition_holds(c, settings, registry) for c in spec.applies_when):
        return "not applicable"
    return ""
