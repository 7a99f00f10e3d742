"""The plugin manager: safe loading, listing, and pluggy's own hook loop with per-plugin attribution.

Every hook call goes through pluggy (so tracing, ``wrapper=True`` hook wrappers and
``tryfirst``/``trylast`` work as pluggy documents them). :meth:`_hookexec` wraps each
implementation so that

* its result is attributed to its plugin (generators are consumed into lists);
* a failure names the plugin and the hook;
* a failure in a *registration* hook (:data:`ISOLATED_HOOKS`) disables that plugin for
  the run instead of taking every command down (``VIRTSCENARIO_STRICT_PLUGINS=1``
  makes it fatal), as conda and llm isolate plugins.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from typing import Any, Callable, Iterable, Optional

import pluggy

from .. import API_VERSION, PROJECT_NAME
from ..errors import PluginError, VirtscenarioError
from ..records import FrozenRecord, frozen_record
from . import hookspecs

ENTRY_POINT_GROUP = "virtscenario"
#: Distributions that ship in this repository; their plugins are "builtin".
BUILTIN_DISTRIBUTIONS = frozenset({
    "virtscenario", "virtscenario-desktop", "virtscenario-computation", "virtscenario-securevm",
    "virtscenario-host-tuning", "virtscenario-testing-scenario",
})
#: The core's own plugins. Like pytest's essential plugins they cannot be disabled: without
#: them no machine type or launch security is chosen and no rule guards the VM.
ESSENTIAL_PLUGINS = {"core_rules": "virtscenario.plugin.builtin.rules",
                     "core_choices": "virtscenario.plugin.builtin.choices"}
#: Hooks that register things (called once per run): a failure disables only that plugin.
ISOLATED_HOOKS = frozenset({"register_scenarios", "register_settings", "domain_rules", "register_commands",
                            "host_checks"})
DISABLE_HINT = "VIRTSCENARIO_DISABLE_PLUGINS={name} skips it"


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
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "hooks": list(self.hooks), "builtin": self.builtin, "status": self.status,
                "error": self.error or None, "warnings": list(self.warnings)}


def norm(name: str) -> str:
    return name.lower().replace("_", "-")


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (pluggy's messages span lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "..."


class PluginHookError(PluginError):
    """A plugin's hook implementation raised; the message names the plugin, the hook and how to
    switch the plugin off."""

    def __init__(self, plugin: str, hook: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else one_line(exc)
        hint = "" if plugin in ESSENTIAL_PLUGINS else f" ({DISABLE_HINT.format(name=plugin)})"
        super().__init__(f"plugin {plugin!r} failed in {hook}: {text}{hint}")
        self.plugin, self.hook = plugin, hook


class IncompatiblePlugin(Exception):
    """The plugin declares a plugin API this core does not provide."""


class VirtscenarioPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers where each plugin came from, what failed, and who returned what."""

    def __init__(self, strict: bool = False, report: Optional[Callable[[str], None]] = None) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.strict = strict
        self.report = report
        self._dist: dict[str, tuple[str, str]] = {}
        self._wrapped: dict[int, tuple[Any, Any]] = {}  # id(impl) -> (impl, wrapped impl)
        self._records: list[list[tuple[str, Any]]] = []  # one list per collect() in progress
        self._failed: dict[str, str] = {}  # plugin -> message, unregistered after the hook call
        #: Plugins a registration failure disabled in this process.
        self.disabled_in_run: set[str] = set()
        #: hook -> snapshot(): taken before each plugin's call, its undo() run when that call fails.
        self._undo: dict[str, Callable[[], Callable[[], None]]] = {}

    # -- loading -----------------------------------------------------------------------
    def load_entrypoints(self, disabled: Iterable[str] = (), entry_points: Optional[Iterable[Any]] = None) -> None:
        """Load every ``virtscenario`` entry point; a broken one is reported, not fatal."""
        blocked = {norm(n) for n in disabled if n.strip()}
        essential = sorted(n for n in ESSENTIAL_PLUGINS if norm(n) in blocked)
        if essential or "virtscenario" in blocked:
            names = ", ".join(essential) or "the core distribution 'virtscenario'"
            raise PluginError(f"VIRTSCENARIO_DISABLE_PLUGINS: {names} cannot be disabled: the core's essential "
                              f"plugins ({', '.join(ESSENTIAL_PLUGINS)}) choose the machine and launch security and "
                              "hold the core's rules")
        from .discovery import entry_points as scan
        eps = list(entry_points if entry_points is not None else scan(ENTRY_POINT_GROUP))
        # Register in descending name order: pluggy calls last-registered first, so hooks
        # then run in ascending plugin-name order inside each tier.
        for ep in sorted(eps, key=lambda e: e.name, reverse=True):
            dist_name, version = _dist_of(ep)
            builtin = norm(dist_name) in BUILTIN_DISTRIBUTIONS
            if ep.name in self.infos:
                continue
            if norm(ep.name) in blocked or (dist_name and norm(dist_name) in blocked):
                self.infos[ep.name] = PluginInfo(ep.name, version, dist_name, (), builtin, "disabled")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
                self._load_failed(ep.name, dist_name, version, builtin, exc)
                continue
            self._add(plugin, ep.name, dist_name, version, builtin)

    def load_directory(self, directory: str) -> None:
        """Load every ``*.py`` module of ``directory`` as a plugin named after the file (development:
        ``VIRTSCENARIO_PLUGINS_DIR`` / ``--plugins-dir``, like datasette's ``--plugins-dir``)."""
        import importlib.util
        try:
            names = sorted((n for n in os.listdir(directory) if n.endswith(".py") and not n.startswith("_")),
                           reverse=True)
        except OSError as exc:
            raise PluginError(f"plugins directory {directory}: {exc.strerror}") from None
        for filename in names:
            name = filename[:-3]
            if name in self.infos:
                continue
            try:
                spec = importlib.util.spec_from_file_location(f"virtscenario_plugins_dir.{name}",
                                                              os.path.join(directory, filename))
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - reported like a broken entry point
                self._load_failed(name, f"plugins-dir {directory}", "", False, exc)
                continue
            self._add(module, name, f"plugins-dir {directory}", "", False)

    def register_plugin(self, plugin: object, name: str, distribution: str = "", version: str = "",
                        builtin: bool = False) -> None:
        """Register an in-process plugin object (tests, the testing fixtures); errors propagate."""
        self._check_compatible(plugin, name)
        self.register(plugin, name=name)
        self.check_pending_for(name, plugin)
        self._dist[name] = (distribution, version)
        self.infos[name] = PluginInfo(name, version, distribution, self._hook_names(plugin), builtin, "active",
                                      warnings=self._lint(plugin, name, builtin))

    def _add(self, plugin: object, name: str, dist_name: str, version: str, builtin: bool) -> None:
        try:
            self.register_plugin(plugin, name, dist_name, version, builtin)
        except Exception as exc:  # noqa: BLE001 - bad hook names, bad args, wrong API: reported
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            self._load_failed(name, dist_name, version, builtin, exc)
            return
        for warning in self.infos[name].warnings:
            self._say(f"Warning: plugin {name!r}: {warning}")

    def _load_failed(self, name: str, dist_name: str, version: str, builtin: bool, exc: BaseException) -> None:
        status = "incompatible" if isinstance(exc, IncompatiblePlugin) else "error"
        message = one_line(exc)
        self.infos[name] = PluginInfo(name, version, dist_name, (), builtin, status, message)
        if self.strict or name in ESSENTIAL_PLUGINS:
            raise PluginError(f"plugin {name!r} failed to load: {message}") from exc
        self._say(f"Warning: plugin {name!r} ({dist_name or 'unknown distribution'}) not loaded: {message}; "
                  + DISABLE_HINT.format(name=name))

    def _say(self, message: str) -> None:
        if self.report is not None:
            self.report(message)

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
                                f"{_suggest(hook_name, self.spec_names())}")

    def spec_names(self) -> list[str]:
        return sorted(n for n in dir(self.hook) if isinstance(getattr(self.hook, n), pluggy.HookCaller)
                      and getattr(self.hook, n).spec is not None)

    def _lint(self, plugin: object, name: str, builtin: bool) -> tuple[str, ...]:
        """What a plugin author most likely got wrong without an error: a missing @hookimpl, a
        missing VIRTSCENARIO_API."""
        warnings = []
        if isinstance(plugin, types.ModuleType):
            marker = f"{PROJECT_NAME}_impl"
            for spec_name in self.spec_names():
                fn = getattr(plugin, spec_name, None)
                if (isinstance(fn, types.FunctionType) and fn.__module__ == plugin.__name__
                        and not hasattr(fn, marker)):
                    warnings.append(f"{spec_name}() is not decorated with @hookimpl, so virtscenario never calls "
                                    "it (from virtscenario.api import hookimpl)")
        if getattr(plugin, "VIRTSCENARIO_API", None) is None and not builtin:
            warnings.append(f"declares no VIRTSCENARIO_API; assuming it was written for plugin API "
                            f"{API_VERSION[0]}.0 (add VIRTSCENARIO_API = ({API_VERSION[0]}, {API_VERSION[1]}))")
        return tuple(warnings)

    @staticmethod
    def _check_compatible(plugin: object, name: str) -> None:
        wanted = getattr(plugin, "VIRTSCENARIO_API", None)
        if wanted is None:
            return
        try:
            major = wanted[0] if isinstance(wanted, tuple) else int(str(wanted).split(".")[0])
            minor = wanted[1] if isinstance(wanted, tuple) and len(wanted) > 1 else 0
        except (ValueError, IndexError, TypeError):
            raise IncompatiblePlugin(f"VIRTSCENARIO_API = {wanted!r} is not (major, minor)") from None
        if major != API_VERSION[0] or minor > API_VERSION[1]:
            raise IncompatiblePlugin(f"needs plugin API {major}.{minor}, this virtscenario provides "
                                     f"{API_VERSION[0]}.{API_VERSION[1]}")

    def _hook_names(self, plugin: object) -> tuple[str, ...]:
        callers = self.get_hookcallers(plugin) or []
        return tuple(sorted(c.name for c in callers))

    def distribution_of(self, name: str) -> str:
        dist, version = self._dist.get(name, ("", ""))
        return f"{dist} {version}".strip() or name

    # -- calling: pluggy's loop, attributed -------------------------------------------------
    def _hookexec(self, hook_name: str, methods: Any, kwargs: Any, firstresult: bool) -> Any:
        wrapped = [self._wrap(hook_name, impl) for impl in _call_order(methods)]
        try:
            # _inner_hookexec is what enable_tracing/add_hookcall_monitoring wrap: every call is traced.
            return self._inner_hookexec(hook_name, wrapped, kwargs, firstresult)
        finally:
            self._disable_failed()

    def _wrap(self, hook_name: str, impl: Any) -> Any:
        if impl.wrapper or impl.hookwrapper:
            return impl  # wrappers see and may change the other results; they are the plugin's business
        cached = self._wrapped.get(id(impl))
        if cached is not None and cached[0] is impl:
            return cached[1]
        fn, plugin = impl.function, impl.plugin_name
        isolated = hook_name in ISOLATED_HOOKS and plugin not in ESSENTIAL_PLUGINS

        @functools.wraps(fn)
        def call(*args: Any, **kw: Any) -> Any:
            snapshot = self._undo.get(hook_name) if isolated else None
            undo = snapshot() if snapshot is not None else None
            try:
                result = fn(*args, **kw)
                if isinstance(result, types.GeneratorType):
                    result = list(result)
            except Exception as exc:
                if not isolated:
                    if isinstance(exc, VirtscenarioError):
                        raise
                    raise PluginHookError(plugin, hook_name, exc) from exc
                if undo is not None:
                    undo()  # what the hook changed before it failed goes with the plugin
                self.isolate(plugin, hook_name, str(exc) if isinstance(exc, VirtscenarioError) else one_line(exc))
                return None
            if result is not None and self._records:
                self._records[-1].append((plugin, result))
            return result

        new = pluggy.HookImpl(impl.plugin, plugin, call, impl.opts)
        self._wrapped[id(impl)] = (impl, new)
        return new

    def collect_undoable(self, hook_name: str, snapshot: Callable[[], Callable[[], None]],
                         **kwargs: Any) -> list[tuple[str, Any]]:
        """:meth:`collect` for a registration hook that changes its arguments in place
        (``register_commands``): ``snapshot()`` runs before each plugin's implementation and returns an
        ``undo()`` that is run if that implementation fails, so a disabled plugin leaves nothing behind."""
        self._undo[hook_name] = snapshot
        try:
            return self.collect(hook_name, **kwargs)
        finally:
            del self._undo[hook_name]

    def isolate(self, plugin: str, hook_name: str, message: str) -> None:
        """A registration hook of ``plugin`` failed (raised, or returned something unusable): disable
        the plugin for this run, after the current hook call (strict mode: raise instead)."""
        if self.strict or plugin in ESSENTIAL_PLUGINS:
            raise PluginHookError(plugin, hook_name, message)
        if plugin in self._failed or plugin in self.disabled_in_run:
            return
        self._failed[plugin] = f"failed in {hook_name}: {message}"
        self._say(f"Warning: plugin {plugin!r} failed in {hook_name} ({message}) and is disabled for this run; "
                  + DISABLE_HINT.format(name=plugin))

    def disable_failed(self) -> None:
        """Unregister the plugins :meth:`isolate` marked (done after each hook call)."""
        self._disable_failed()

    def _disable_failed(self) -> None:
        while self._failed:
            plugin, message = self._failed.popitem()
            if self.get_plugin(plugin) is not None:
                self.unregister(name=plugin)
            info = self.infos.get(plugin)
            if info is not None:
                self.infos[plugin] = PluginInfo(info.name, info.version, info.distribution, info.hooks,
                                                info.builtin, "error", message, info.warnings)
            self.disabled_in_run.add(plugin)

    def collect(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook through pluggy; return ``(plugin, result)`` pairs in call order.

        A result a hook wrapper replaced is attributed to ``"?"``.
        """
        self._records.append([])
        try:
            results = getattr(self.hook, hook_name)(**kwargs)
        finally:
            record = self._records.pop()
        if getattr(self.hook, hook_name).spec.opts.get("firstresult"):
            results = [] if results is None else [results]
        by_id = {id(result): plugin for plugin, result in record}
        return [(by_id.get(id(result), "?"), result) for result in results]


def _call_order(methods: list[Any]) -> list[Any]:
    """Order implementations so pluggy (which calls the list from its end) runs tryfirst, then
    normal, then trylast, and inside each tier ascending plugin names, whatever the registration
    order. Wrappers keep pluggy's placement at the end (they run around everything)."""
    plain = [m for m in methods if not (m.wrapper or m.hookwrapper)]
    wrappers = [m for m in methods if m.wrapper or m.hookwrapper]
    plain.sort(key=lambda m: m.plugin_name, reverse=True)
    plain.sort(key=lambda m: 0 if m.trylast else 2 if m.tryfirst else 1)
    return plain + wrappers


def _dist_of(ep: Any) -> tuple[str, str]:
    """(name, version) of an entry point's distribution: ours, or an importlib.metadata one."""
    if hasattr(ep, "dist_name"):
        return ep.dist_name, ep.dist_version
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"], dist.version) if dist is not None else ("", "")


def _suggest(name: str, names: list[str]) -> str:
    import difflib
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def env_list(var: str) -> list[str]:
    return [p.strip() for p in os.environ.get(var, "").split(",") if p.strip()]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> VirtscenarioPluginManager:
    """The process-wide plugin manager, loaded once, lazily."""
    strict = os.environ.get("VIRTSCENARIO_STRICT_PLUGINS", "") not in ("", "0")
    pm = VirtscenarioPluginManager(strict=strict, report=_stderr)
    directory = os.environ.get("VIRTSCENARIO_PLUGINS_DIR")
    if directory:
        pm.load_directory(directory)
    pm.load_entrypoints(disabled=env_list("VIRTSCENARIO_DISABLE_PLUGINS"))
    if os.environ.get("VIRTSCENARIO_TRACE_PLUGINS", "") not in ("", "0"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def list_plugins(pm: VirtscenarioPluginManager) -> list[PluginInfo]:
    return sorted(pm.infos.values(), key=lambda i: i.name)
