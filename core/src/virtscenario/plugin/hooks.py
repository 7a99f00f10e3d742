"""The typed facade over the plugin manager: the only module that calls hooks.

It flattens contributions, checks their types, stamps each with the plugin that made
it, applies the conflict rule (first in call order wins) and records conflicts as
notes. Registration (scenarios, settings, rules) happens once, together, so that a
plugin disabled by a failure in any registration hook contributes nothing at all.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..errors import PluginError
from ..records import FrozenRecord, frozen_record
from ..settings.types import Choice, SettingSpec
from ..types import CheckResult, DomainRule, HostChange, HostCheck, HostRequirement, Note, Scenario
from . import manager
from .manager import VirtscenarioPluginManager

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.registry import SettingRegistry

CONFLICT_RULE = ("tryfirst before normal before trylast, then ascending plugin name; "
                 "disable one with VIRTSCENARIO_DISABLE_PLUGINS")


@frozen_record
class ProvidedScenario(FrozenRecord):
    scenario: Scenario
    plugin: str
    distribution: str


@frozen_record
class CheckOutcome(FrozenRecord):
    """One host check as run: who contributed it, what it checks, what it found."""

    plugin: str
    check: HostCheck
    result: CheckResult


@frozen_record
class _Registration(FrozenRecord):
    scenarios: dict[str, ProvidedScenario]
    registry: SettingRegistry
    rules: tuple[tuple[str, DomainRule], ...]


class Catalog:
    def __init__(self, pm: Optional[VirtscenarioPluginManager] = None) -> None:
        self.pm = pm if pm is not None else manager.get_plugin_manager()
        self.notes: list[Note] = []
        #: resolve_scenario() results, keyed by scenario, user values and flags.
        self.resolved: dict[tuple[str, ...], Any] = {}

    # -- registration ------------------------------------------------------------------
    @functools.cached_property
    def _registration(self) -> _Registration:
        from ..settings.registry import SettingRegistry
        settings = self._collect("register_settings", SettingSpec)
        scenarios = [(p, s) for p, items in self._collect("register_scenarios", Scenario) for s in items]
        rules = tuple((p, r) for p, items in self._collect("domain_rules", DomainRule) for r in items)
        dropped = self.pm.disabled_in_run
        registry = SettingRegistry()
        for plugin, specs in settings:
            if plugin in dropped:
                continue
            # A key someone already declared: the later plugin (in call order) is disabled, whole.
            keys = [spec.key for spec in specs]
            clash = next((k for k in keys if k in registry), None) or \
                next((k for i, k in enumerate(keys) if k in keys[:i]), None)
            if clash is not None:
                owner = registry.owner(clash) if clash in registry else plugin
                who = "the core" if owner == "core" else f"plugin {owner!r}"
                self.pm.isolate(plugin, "register_settings", f"setting {clash!r} is already declared by {who}")
                continue
            for spec in specs:
                registry.add(spec, plugin)
        self.pm.disable_failed()
        found: dict[str, ProvidedScenario] = {}
        for plugin, scenario in scenarios:
            if plugin in dropped:
                continue
            if scenario.name in found:
                winner = found[scenario.name].plugin
                self.notes.append(Note("warning", f"scenario {scenario.name!r} is provided by plugins {winner!r} "
                                       f"and {plugin!r}; using {winner!r} ({CONFLICT_RULE})", "plugins"))
                continue
            found[scenario.name] = ProvidedScenario(scenario, plugin, self.pm.distribution_of(plugin))
        return _Registration(dict(sorted(found.items())), registry,
                             tuple((p, r) for p, r in rules if p not in dropped))

    def register(self) -> None:
        """Run every registration hook once (scenarios, settings, rules, host checks), so each
        plugin a registration failure disables is known (``plugins list`` shows it as ``error``)."""
        self._registration  # noqa: B018 - the cached property runs the hooks
        self.host_checks()

    @property
    def scenarios(self) -> dict[str, ProvidedScenario]:
        return self._registration.scenarios

    @property
    def registry(self) -> SettingRegistry:
        return self._registration.registry

    @property
    def rules(self) -> tuple[tuple[str, DomainRule], ...]:
        return self._registration.rules

    def scenario(self, name: str) -> ProvidedScenario:
        try:
            return self.scenarios[name]
        except KeyError:
            import difflib

            from ..errors import VirtscenarioError
            close = difflib.get_close_matches(name, list(self.scenarios), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            available = ", ".join(self.scenarios) or "none installed"
            raise VirtscenarioError(f"unknown scenario {name[:60]!r}{hint} (available: {available})") from None

    def overrides_for(self, scenario: Scenario) -> list[tuple[Choice, str]]:
        """Plugin overrides for ``scenario``: winner per key (with its plugin), conflicts noted."""
        chosen: dict[str, tuple[Choice, str]] = {}
        for plugin, choices in self._collect("scenario_overrides", Choice, scenario=scenario):
            for choice in choices:
                if choice.key in chosen:
                    winner = chosen[choice.key][1]
                    self.notes.append(Note("warning", f"setting {choice.key!r} for scenario {scenario.name!r} is "
                                           f"set by plugin {winner} and plugin {plugin}; using {winner} "
                                           f"({CONFLICT_RULE})", "plugins"))
                    continue
                chosen[choice.key] = (choice, plugin)
        return list(chosen.values())

    # -- single answers and actions ----------------------------------------------------
    def first(self, hook_name: str, **kwargs: Any) -> Optional[tuple[str, Any]]:
        """firstresult hook: (plugin, answer) of the first non-None answer."""
        results = self.pm.collect(hook_name, **kwargs)
        return results[0] if results else None

    def call(self, hook_name: str, **kwargs: Any) -> None:
        """Hooks that act rather than contribute (customize_model, postprocess_xml)."""
        self.pm.collect(hook_name, **kwargs)

    def register_commands(self, cli: Any, snapshot: Callable[[], Callable[[], None]]) -> None:
        """``register_commands(cli)``; ``snapshot()`` (taken before each plugin's call) returns the
        undo that removes what a plugin added before its call failed."""
        self.pm.collect_undoable("register_commands", snapshot, cli=cli)

    # -- host ----------------------------------------------------------------------------
    def host_checks(self) -> list[tuple[str, HostCheck]]:
        out: list[tuple[str, HostCheck]] = []
        for plugin, checks in self._collect("host_checks", HostCheck):
            out.extend((plugin, c) for c in checks)
        return out

    def run_host_checks(self, host: Any) -> list[CheckOutcome]:
        """Every plugin's checks; a check that raises is a FAIL naming its plugin, never a crash."""
        out = []
        for plugin, check in self.host_checks():
            try:
                result = check.run(host)
                if not isinstance(result, CheckResult):
                    raise TypeError(f"returned {type(result).__name__}, not CheckResult")
            except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
                text = str(exc).splitlines()[0] if str(exc) else ""
                result = CheckResult(check.name, "FAIL", f"check {check.name!r} of plugin {plugin!r} failed: "
                                     f"{type(exc).__name__}: {text[:200]}", "report it to the plugin's authors")
            out.append(CheckOutcome(plugin, check, result))
        for plugin in sorted(self.pm.disabled_in_run):
            info = self.pm.infos.get(plugin)
            if info is not None and "host_checks" in info.error:
                out.append(CheckOutcome(plugin, HostCheck(f"plugin:{plugin}", "the plugin's host checks",
                                                          lambda host: CheckResult("", "FAIL", "")),
                                        CheckResult(f"plugin:{plugin}", "FAIL", f"plugin {plugin!r} {info.error}",
                                                    f"report it to the plugin's authors; VIRTSCENARIO_DISABLE_"
                                                    f"PLUGINS={plugin} skips it")))
        return out

    def host_plan(self, requirements: Sequence[HostRequirement], host: Any) -> list[tuple[str, HostChange]]:
        return [(plugin, change) for plugin, items in self._collect("host_plan", HostChange,
                                                                     requirements=requirements, host=host)
                for change in items]

    # -- verify --------------------------------------------------------------------------
    def verify_checks(self, vm: Any, guest: Any) -> list[Any]:
        """Every plugin's ``verify_checks`` rows; a plugin that raises gets one MISMATCH row naming it."""
        from ..types import GuestCheck
        out: list[Any] = []
        for impl in reversed(self.pm.hook.verify_checks.get_hookimpls()):
            plugin = impl.plugin_name
            try:
                args = {"vm": vm, "guest": guest}
                answer: Any = impl.function(**{k: args[k] for k in impl.argnames})
                rows = list(answer or ())
                bad = [r for r in rows if not isinstance(r, GuestCheck)]
                if bad:
                    raise TypeError(f"yielded {type(bad[0]).__name__}, not GuestCheck")
            except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
                text = str(exc).splitlines()[0][:200] if str(exc) else ""
                rows = [GuestCheck(f"plugin {plugin}", "its checks run", f"failed: {type(exc).__name__}: {text}",
                                   False)]
            out.extend(rows)
        return out

    # -- helpers -------------------------------------------------------------------------
    def _collect(self, hook_name: str, kind: type, **kwargs: Any) -> list[tuple[str, list[Any]]]:
        """``(plugin, items)`` per implementation; an item of the wrong type disables its plugin
        in a registration hook and is an error naming the plugin in any other."""
        out = []
        for plugin, result in self.pm.collect(hook_name, **kwargs):
            items = list(result) if isinstance(result, (list, tuple)) else [result]
            wrong = next((item for item in items if not isinstance(item, kind)), None)
            if wrong is not None:
                message = f"{hook_name} must yield {kind.__name__}, got {type(wrong).__name__}"
                if hook_name in manager.ISOLATED_HOOKS and plugin != "?":
                    self.pm.isolate(plugin, hook_name, message)
                    continue
                raise PluginError(f"plugin {plugin!r}: {message}")
            out.append((plugin, items))
        self.pm.disable_failed()
        return out
