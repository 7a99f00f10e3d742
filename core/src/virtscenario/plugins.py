"""Plugin manager: safe entry-point loading, listing, attributed hook calls."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Iterable, Optional

import pluggy

from . import PROJECT_NAME, hookspecs
from .errors import PluginError, VirtscenarioError
from .records import FrozenRecord, frozen_record

ENTRY_POINT_GROUP = "virtscenario"
#: Distributions that ship in this repository; their plugins are "builtin".
BUILTIN_DISTRIBUTIONS = frozenset({
    "virtscenario", "virtscenario-desktop", "virtscenario-computation",
    "virtscenario-securevm", "virtscenario-host-tuning",
})


@frozen_record
class PluginInfo(FrozenRecord):
    """One row of ``virtscenario plugins list``."""

    name: str
    version: str
    distribution: str
    hooks: tuple[str, ...]
    builtin: bool
    status: str  # active|error|disabled|incompatible
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "hooks": list(self.hooks), "builtin": self.builtin, "status": self.status,
                "error": self.error or None}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


class VirtscenarioPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers where each plugin came from and what failed."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._dist: dict[str, tuple[str, str]] = {}

    # -- loading -----------------------------------------------------------------
    def load_entrypoints(self, strict: bool = False, disabled: Iterable[str] = (),
                         entry_points: Optional[Iterable[Any]] = None,
                         report: Any = None) -> None:
        """Load every ``virtscenario`` entry point; a broken one is reported, not fatal."""
        blocked = {_norm(n) for n in disabled if n.strip()}
        from .entrypoints import entry_points as scan
        eps = list(entry_points if entry_points is not None else scan(ENTRY_POINT_GROUP))
        # Register in descending name order: pluggy calls last-registered first, so
        # hooks then run in ascending plugin-name order inside each tier.
        for ep in sorted(eps, key=lambda e: e.name, reverse=True):
            dist_name, version = _dist_of(ep)
            builtin = _norm(dist_name) in BUILTIN_DISTRIBUTIONS
            if ep.name in self.infos:
                continue
            if _norm(ep.name) in blocked or (dist_name and _norm(dist_name) in blocked):
                self.infos[ep.name] = PluginInfo(ep.name, version, dist_name, (), builtin, "disabled")
                continue
            try:
                plugin = ep.load()
                self._check_compatible(plugin, ep.name)
                self.register(plugin, name=ep.name)
                self._dist[ep.name] = (dist_name, version)
                self.check_pending_for(ep.name, plugin)
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
                if self.get_plugin(ep.name) is not None:
                    self.unregister(name=ep.name)
                status = "incompatible" if isinstance(exc, IncompatiblePlugin) else "error"
                # pluggy's messages span lines (hookimpl, argnames...): keep them on one.
                message = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
                self.infos[ep.name] = PluginInfo(ep.name, version, dist_name, (), builtin, status, message)
                if strict:
                    raise PluginError(f"plugin {ep.name!r} failed to load: {message}") from exc
                if report is not None:
                    report(f"Warning: plugin {ep.name!r} ({dist_name or 'unknown distribution'}) "
                           f"not loaded: {message}")
                continue
            self.infos[ep.name] = PluginInfo(ep.name, version, dist_name, self._hook_names(plugin),
                                             builtin, "active")

    def register_plugin(self, plugin: object, name: str, distribution: str = "", version: str = "",
                        builtin: bool = False) -> None:
        """Register an in-process plugin object (tests, the testing fixtures)."""
        self._check_compatible(plugin, name)
        self.register(plugin, name=name)
        self.check_pending_for(name, plugin)
        self._dist[name] = (distribution, version)
        self.infos[name] = PluginInfo(name, version, distribution, self._hook_names(plugin), builtin, "active")

    def check_pending_for(self, name: str, plugin: object) -> None:
        """Like ``check_pending`` but for one plugin, so a typo blames the right plugin."""
        for hook_name in dir(self.hook):
            caller = getattr(self.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.opts.get("optionalhook"):
                    raise pluggy.PluginValidationError(
                        plugin, f"unknown hook {hook_name!r} in plugin {name!r}"
                                f"{_suggest(hook_name, self._spec_names())}")

    def _spec_names(self) -> list[str]:
        return [n for n in dir(self.hook) if isinstance(getattr(self.hook, n), pluggy.HookCaller)
                and getattr(self.hook, n).spec is not None]

    @staticmethod
    def _check_compatible(plugin: object, name: str) -> None:
        wanted = getattr(plugin, "VIRTSCENARIO_API", None)
        if wanted is None:
            return
        from . import API_VERSION
        major = wanted[0] if isinstance(wanted, tuple) else int(str(wanted).split(".")[0])
        minor = wanted[1] if isinstance(wanted, tuple) and len(wanted) > 1 else 0
        if major != API_VERSION[0] or minor > API_VERSION[1]:
            raise IncompatiblePlugin(
                f"needs plugin API {major}.{minor}, this virtscenario provides "
                f"{API_VERSION[0]}.{API_VERSION[1]}")

    def _hook_names(self, plugin: object) -> tuple[str, ...]:
        callers = self.get_hookcallers(plugin) or []
        return tuple(sorted(c.name for c in callers))

    def distribution_of(self, name: str) -> str:
        dist, version = self._dist.get(name, ("", ""))
        return f"{dist} {version}".strip() or name

    # -- calling -------------------------------------------------------------------
    def call_attributed(self, hook_name: str, *, _first: bool = False, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook implementation by implementation, returning (plugin name, result).

        Order: tryfirst, normal, trylast; ascending plugin name inside a tier
        (the same order pluggy uses for entry-point plugins, which are registered
        sorted). Generators are consumed so results can be attributed.
        """
        caller = getattr(self.hook, hook_name)
        out: list[tuple[str, Any]] = []
        for impl in sorted(caller.get_hookimpls(), key=_call_order):
            if impl.wrapper or impl.hookwrapper:
                raise PluginError(f"plugin {impl.plugin_name!r}: {hook_name} collects contributions and "
                                  "does not accept wrappers")
            args = {k: kwargs[k] for k in impl.argnames}
            try:
                result = impl.function(**args)
                if result is None:
                    continue
                if not isinstance(result, (str, bytes)) and hasattr(result, "__iter__"):
                    result = list(result)
            except VirtscenarioError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            out.append((impl.plugin_name, result))
            if _first:
                break
        return out


    def call_all(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook through pluggy (wrappers honoured); a failure names the plugin."""
        caller = getattr(self.hook, hook_name)
        try:
            return caller(**kwargs)
        except VirtscenarioError:
            raise
        except Exception as exc:
            culprit = _blame(exc, caller.get_hookimpls())
            raise PluginError(f"plugin {culprit!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def _blame(exc: BaseException, impls: list[Any]) -> str:
    """The plugin whose hook function is deepest in the traceback."""
    codes = {impl.function.__code__: impl.plugin_name for impl in impls if hasattr(impl.function, "__code__")}
    culprit = "unknown"
    tb = exc.__traceback__
    while tb is not None:
        culprit = codes.get(tb.tb_frame.f_code, culprit)
        tb = tb.tb_next
    return culprit


def _dist_of(ep: Any) -> tuple[str, str]:
    """(name, version) of an entry point's distribution: ours, or an importlib.metadata one."""
    if hasattr(ep, "dist_name"):
        return ep.dist_name, ep.dist_version
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"], dist.version) if dist is not None else ("", "")


def _call_order(impl: Any) -> tuple[int, str]:
    """tryfirst, normal, trylast; then plugin name: independent of registration order."""
    tier = 0 if impl.tryfirst else 2 if impl.trylast else 1
    return tier, impl.plugin_name


class IncompatiblePlugin(Exception):
    """The plugin declares a plugin API this core does not provide."""


def _suggest(name: str, names: list[str]) -> str:
    import difflib
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _env_list(var: str) -> list[str]:
    return [p.strip() for p in os.environ.get(var, "").split(",") if p.strip()]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> VirtscenarioPluginManager:
    """The process-wide plugin manager, loaded once, lazily."""
    pm = VirtscenarioPluginManager()
    strict = os.environ.get("VIRTSCENARIO_STRICT_PLUGINS", "") not in ("", "0")
    pm.load_entrypoints(strict=strict, disabled=_env_list("VIRTSCENARIO_DISABLE_PLUGINS"), report=_stderr)
    if os.environ.get("VIRTSCENARIO_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def list_plugins(pm: VirtscenarioPluginManager) -> list[PluginInfo]:
    return sorted(pm.infos.values(), key=lambda i: i.name)
