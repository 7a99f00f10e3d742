"""Resolution: every key's value from the layers, lowest precedence first.

default (the key's spec) -> scenario (and plugin overrides for it) -> user settings
file -> command line (``--set`` and dedicated flags). Each value records its layer,
its origin, and the rationale and reference of the layer that decided it; a value the
user set says what it replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..records import FrozenRecord, frozen_record
from ..types import Scenario
from .display import display_value
from .types import Choice, ResolvedSetting, Settings

if TYPE_CHECKING:  # pragma: no cover
    from ..plugin.hooks import Catalog, ProvidedScenario
    from .cliargs import FlagValue
    from .registry import SettingRegistry
    from .userfile import UserConfig


def _user_rationale(prev: ResolvedSetting, registry: SettingRegistry) -> str:
    if prev.by_user:
        return prev.rationale
    who = {"default": "default", "scenario": "scenario chose", "plugin": f"plugin {prev.origin} chose",
           "adapted": "adapted to"}.get(prev.layer, prev.layer)
    shown = display_value(registry.find(prev.key), prev.value) if prev.value is not None else "unset"
    return f"set by the user ({who} {shown})"


def device_overrides(specs: Iterable[Any], names: Iterable[str], section: str, plural: str, flag: str,
                     noun: str, registry: SettingRegistry, settings: Settings) -> dict[str, ResolvedSetting]:
    """``PLURAL[i].NAME`` for every option a per-device flag gave (``--disk ...,cache=``), coerced like
    ``SECTION.NAME``, layer ``flag``, with the value it overrides in its rationale."""
    out: dict[str, ResolvedSetting] = {}
    for index, spec in enumerate(specs):
        for name in names:
            raw = getattr(spec, name)
            if raw is None:
                continue
            base = f"{section}.{name}"
            value = registry.coerce(base, raw, f" ({flag} {name}=)")
            prev = settings[base]
            why = (prev.rationale if prev.by_user else
                   f"set by the user for this {noun} ({prev.layer} value: "
                   f"{display_value(registry.find(base), prev.value)})")
            key = f"{plural}[{index}].{name}"
            out[key] = ResolvedSetting(key, value, f"flag {flag}", why, prev.reference, "flag", flag)
    return out


def resolve(registry: SettingRegistry, scenario: Scenario, distribution: str,
            overrides: Iterable[tuple[Choice, str]] = (), file_values: Mapping[str, Any] | None = None,
            file_path: str = "", cli_values: Iterable[FlagValue] = ()) -> Settings:
    """Apply the layers in precedence order and return resolved settings.

    ``overrides`` are plugin choices for this scenario, each with its plugin's name.
    ``cli_values`` are ``(key, raw value, flag)`` in command-line order.
    """
    items: dict[str, ResolvedSetting] = {}
    for spec in registry:
        owner = registry.owner(spec.key)
        source = "core default" if owner == "core" else f"default of plugin {owner}"
        items[spec.key] = ResolvedSetting(spec.key, spec.default, source, spec.rationale, spec.reference,
                                          "default", owner)
    source = f"scenario {scenario.name} ({distribution})"
    for choice in scenario.choices:
        value = registry.coerce(choice.key, choice.value, where=f" (scenario {scenario.name})")
        items[choice.key] = ResolvedSetting(choice.key, value, source, choice.rationale, choice.reference,
                                            "scenario", scenario.name)
    for choice, plugin in overrides:
        value = registry.coerce(choice.key, choice.value, where=f" (from plugin {plugin})")
        items[choice.key] = ResolvedSetting(choice.key, value, f"plugin {plugin}", choice.rationale,
                                            choice.reference, "plugin", plugin)
    for key, raw in (file_values or {}).items():
        value = registry.coerce(key, raw, where=f" in {file_path}")
        prev = items[key]
        items[key] = ResolvedSetting(key, value, f"file {file_path}", _user_rationale(prev, registry), prev.reference,
                                     "file", file_path)
    for key, raw, flag in cli_values:
        value = registry.coerce(key, raw, where=f" ({flag})")
        prev = items[key]
        items[key] = ResolvedSetting(key, value, f"flag {flag}", _user_rationale(prev, registry), prev.reference,
                                     "flag", flag)
    return Settings(items)


def resolve_scenario(catalog: Catalog, scenario: str, config: UserConfig,
                     cli: list[FlagValue]) -> tuple[ProvidedScenario, Settings]:
    """Resolved settings of ``scenario``; cached per catalog, since Settings are immutable."""
    file_values = config.values_for(scenario)
    key = (scenario, config.path, repr(sorted(file_values.items())), repr(cli))
    cached = catalog.resolved.get(key)
    if cached is None:
        provided = catalog.scenario(scenario)
        overrides = catalog.overrides_for(provided.scenario)
        settings = resolve(catalog.registry, provided.scenario, provided.distribution, overrides, file_values,
                           config.path, cli)
        cached = catalog.resolved[key] = (provided, settings)
    return cached


@frozen_record
class ResolvedScenario(FrozenRecord):
    """A scenario and its resolved settings (API 1.2: what ``api.resolve_scenario`` returns)."""

    name: str
    version: str
    plugin: str  # the plugin that provides it
    distribution: str  # and its distribution
    settings: Settings
