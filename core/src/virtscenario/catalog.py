"""Typed facade over the plugin manager: the only module that calls hooks.

It flattens contributions, stamps each with the plugin that made it, applies the
conflict rule (first in call order wins) and records conflicts as notes.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Optional, Sequence

from . import plugins
from .errors import PluginError, VirtscenarioError
from .plugins import VirtscenarioPluginManager
from .records import FrozenRecord, frozen_record
from .settings import SettingRegistry
from .types import Choice, DomainRule, HostChange, HostCheck, HostRequirement, Note, Scenario, SettingSpec

CONFLICT_RULE = ("tryfirst before normal before trylast, then ascending plugin name; "
                 "disable one with VIRTSCENARIO_DISABLE_PLUGINS")


@frozen_record
class ProvidedScenario(FrozenRecord):
    scenario: Scenario
    plugin: str
    distribution: str


class Catalog:
    def __init__(self, pm: Optional[VirtscenarioPluginManager] = None) -> None:
        self.pm = pm if pm is not None else plugins.get_plugin_manager()
        self.notes: list[Note] = []
        #: resolve_settings() results, keyed by scenario, user values and flags.
        self.resolved: dict[tuple[str, ...], Any] = {}

    # -- scenarios -------------------------------------------------------------------
    @functools.cached_property
    def scenarios(self) -> dict[str, ProvidedScenario]:
        found: dict[str, ProvidedScenario] = {}
        for plugin, results in self._collect("register_scenarios"):
            for scenario in results:
                if not isinstance(scenario, Scenario):
                    raise PluginError(f"plugin {plugin!r}: register_scenarios must yield Scenario, "
                                      f"got {type(scenario).__name__}")
                if scenario.name in found:
                    winner = found[scenario.name].plugin
                    self.notes.append(Note("warning", f"scenario {scenario.name!r} is provided by plugins "
                                           f"{winner!r} and {plugin!r}; using {winner!r} ({CONFLICT_RULE})",
                                           "plugins"))
                    continue
                found[scenario.name] = ProvidedScenario(scenario, plugin, self.pm.distribution_of(plugin))
        return dict(sorted(found.items()))

    def scenario(self, name: str) -> ProvidedScenario:
        try:
            return self.scenarios[name]
        except KeyError:
            import difflib
            close = difflib.get_close_matches(name, list(self.scenarios), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            available = ", ".join(self.scenarios) or "none installed"
            raise VirtscenarioError(f"unknown scenario {name!r}{hint} (available: {available})") from None

    # -- settings --------------------------------------------------------------------
    @functools.cached_property
    def registry(self) -> SettingRegistry:
        registry = SettingRegistry()
        for plugin, specs in self._collect("register_settings"):
            for spec in specs:
                if not isinstance(spec, SettingSpec):
                    raise PluginError(f"plugin {plugin!r}: register_settings must yield SettingSpec")
                registry.add(spec, f"plugin {plugin!r}")
        return registry

    def overrides_for(self, scenario: Scenario) -> list[tuple[Choice, str]]:
        """Plugin overrides for ``scenario``: winner per key, conflicts noted."""
        chosen: dict[str, tuple[Choice, str]] = {}
        for plugin, choices in self._collect("scenario_overrides", scenario=scenario):
            for choice in choices:
                if not isinstance(choice, Choice):
                    raise PluginError(f"plugin {plugin!r}: scenario_overrides must yield Choice")
                source = f"plugin {plugin}"
                if choice.key in chosen:
                    winner = chosen[choice.key][1]
                    self.notes.append(Note("warning", f"setting {choice.key!r} for scenario {scenario.name!r} is "
                                           f"set by {winner} and {source}; using {winner} ({CONFLICT_RULE})",
                                           "plugins"))
                    continue
                chosen[choice.key] = (choice, source)
        return list(chosen.values())

    # -- rules and choices -----------------------------------------------------------
    @functools.cached_property
    def rules(self) -> list[tuple[str, DomainRule]]:
        out: list[tuple[str, DomainRule]] = []
        for plugin, rules in self._collect("domain_rules"):
            for rule in rules:
                if not isinstance(rule, DomainRule):
                    raise PluginError(f"plugin {plugin!r}: domain_rules must yield DomainRule")
                out.append((plugin, rule))
        return out

    def first(self, hook_name: str, **kwargs: Any) -> tuple[str, Any] | None:
        """firstresult hook: (plugin, answer) of the first non-None answer."""
        results = self.pm.call_attributed(hook_name, _first=True, **kwargs)
        return results[0] if results else None

    def call(self, hook_name: str, **kwargs: Any) -> None:
        """Hooks that act rather than contribute (customize_model, postprocess_xml, register_commands)."""
        self.pm.call_all(hook_name, **kwargs)

    # -- host ------------------------------------------------------------------------
    def host_checks(self) -> list[tuple[str, HostCheck]]:
        out: list[tuple[str, HostCheck]] = []
        for plugin, checks in self._collect("host_checks"):
            out.extend((plugin, c) for c in checks)
        return out

    def host_plan(self, requirements: Sequence[HostRequirement], host: Any) -> list[HostChange]:
        changes: list[HostChange] = []
        for _plugin, items in self._collect("host_plan", requirements=requirements, host=host):
            changes.extend(items)
        return changes

    # -- helpers ---------------------------------------------------------------------
    def _collect(self, hook_name: str, **kwargs: Any) -> Iterable[tuple[str, list[Any]]]:
        return [(p, r if isinstance(r, list) else [r]) for p, r in self.pm.call_attributed(hook_name, **kwargs)]
