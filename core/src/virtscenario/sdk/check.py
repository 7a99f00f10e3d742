"""``virtscenario plugin check [NAME|PATH]``: one plugin, alone with the core's essential plugins, through
everything the core does with it, and every problem found in one list.

Steps: load it (an installed entry point, a project directory, a package directory or a module file);
lint it (hooks without ``@hookimpl``, no ``VIRTSCENARIO_API``, imports of core internals, heavy imports at
module level); call each registration hook on its own, so one failure does not hide the next; check what
they return (types, setting specs and their defaults, scenario names, command names); then render each of
its scenarios offline and on a fake host (settings, hooks, rules, RelaxNG validation: a missing schema is
a problem), plan the host for it and run its host checks on the fake host. Every other hook it implements
runs too, on VMs of other scenarios (the core's defaults and each installed built-in scenario): its per-VM
hooks and rules (do they fail, or change those VMs?), ``host_plan`` with each one's host requirements, and
``verify_checks`` against a fake guest shaped like each VM. When its registration fails (the core would
disable it), its per-VM hooks still run there, without its registration hooks, so one run lists every problem.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import tempfile
import types
from dataclasses import field
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import ConfigError, ValidationError, VirtscenarioError
from ..records import FrozenRecord, Record, frozen_record, record

#: Registration hooks, called one by one (what each must yield).
REGISTRATION = (("register_settings", "SettingSpec"), ("register_scenarios", "Scenario"),
                ("domain_rules", "DomainRule"), ("host_checks", "HostCheck"))
#: Hooks that run for every VM, whatever its scenario.
PER_VM_HOOKS = ("scenario_overrides", "customize_model", "postprocess_xml", "select_machine",
                "select_launch_security")
#: What the check runs on other scenarios' VMs (rules too are checked on every VM).
OTHER_VM_HOOKS = (*PER_VM_HOOKS, "domain_rules")
#: Modules a plugin should import inside its hooks, not at module level (every command imports plugins).
HEAVY_MODULES = ("lxml", "libvirt", "yaml", "requests")
#: The scenario the check renders to see what the plugin does to other scenarios' VMs.
PROBE_SCENARIO = "plugin-check-probe"
PROBE_PLUGIN = "plugin_check_probe"
VM_NAME = "plugin-check"


@frozen_record
class Problem(FrozenRecord):
    """One thing wrong with the plugin: where (hook or step, scenario) and what."""

    hook: str
    message: str
    scenario: str = ""

    def as_json(self) -> dict[str, str]:
        return {"hook": self.hook, "scenario": self.scenario, "message": self.message}

    def text(self, plugin: str) -> str:
        where = f", scenario{'s' if ', ' in self.scenario else ''} {self.scenario}" if self.scenario else ""
        return f"{plugin} ({self.hook}{where}): {self.message}"


@record
class Report(Record):
    """What ``plugin check`` found: the plugin, what was done (``done``), and the problems."""

    plugin: str
    source: str
    hooks: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    done: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, hook: str, message: str, scenario: str = "") -> None:
        """Record a problem; the same one in another scenario only adds that scenario to its list."""
        for index, seen in enumerate(self.problems):
            if (seen.hook, seen.message) == (hook, message):
                if scenario and scenario not in seen.scenario.split(", "):
                    both = f"{seen.scenario}, {scenario}" if seen.scenario else scenario
                    self.problems[index] = Problem(hook, message, both)
                return
        self.problems.append(Problem(hook, message, scenario))

    def as_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "source": self.source, "hooks": list(self.hooks),
                "scenarios": list(self.scenarios), "done": list(self.done), "ok": not self.problems,
                "problems": [p.as_json() for p in self.problems]}


@frozen_record
class Target(FrozenRecord):
    """The plugin to check, once found: its name (as its entry point names it), where it comes from,
    and how to import it."""

    name: str
    distribution: str
    version: str
    source: str
    files: tuple[Path, ...]  # its source files, for the import lint (empty: not known)
    load: Any  # () -> plugin object


# -- finding and loading ---------------------------------------------------------------
def find_target(target: str) -> Target:
    """NAME (a module of the plugins directory, an installed entry point or distribution) or PATH
    (project dir, package dir, ``.py`` file)."""
    path = Path(target).expanduser()
    if os.sep in target or target.endswith(".py") or target in (".", "..") or path.exists():
        if not path.exists():
            raise ConfigError(f"{target}: no such file or directory")
        return _from_path(path.absolute())
    directory = os.environ.get("VIRTSCENARIO_PLUGINS_DIR", "")
    if directory:
        found = _from_plugins_dir(target, Path(directory))
        if found is not None:
            return found
    return _from_entry_point(target, directory)


def _dir_plugins(directory: Path) -> list[str]:
    """The plugins ``--plugins-dir`` loads from ``directory``: every ``*.py`` not starting with ``_``
    (as :meth:`VirtscenarioPluginManager.load_directory` finds them)."""
    try:
        return sorted(n[:-3] for n in os.listdir(directory) if n.endswith(".py") and not n.startswith("_"))
    except OSError:
        return []


def _from_plugins_dir(name: str, directory: Path) -> Optional[Target]:
    """Plugin NAME of the plugins directory, named and imported as the CLI loads it (the directory's
    plugins come before installed ones of the same name there too)."""
    if name not in _dir_plugins(directory):
        return None
    path = (directory / f"{name}.py").absolute()
    return Target(name, "", "", f"{path}, from the plugins directory", (path,),
                  lambda: _import_file(f"virtscenario_plugins_dir.{name}", path))


def _from_entry_point(name: str, directory: str = "") -> Target:
    from ..plugin.discovery import entry_points
    from ..plugin.manager import ENTRY_POINT_GROUP, ESSENTIAL_PLUGINS, norm
    eps = entry_points(ENTRY_POINT_GROUP)
    found = [ep for ep in eps if ep.name == name] or [ep for ep in eps if norm(ep.dist_name) == norm(name)]
    if not found:
        names = ", ".join(sorted(ep.name for ep in eps if ep.name not in ESSENTIAL_PLUGINS)) or "none"
        hint = "give a plugin project directory or a module file to check one that is not installed"
        if directory:
            local = ", ".join(_dir_plugins(Path(directory))) or "none"
            raise ConfigError(f"no plugin {name[:60]!r} in the plugins directory or installed (plugins directory "
                              f"{directory}: {local}; installed: {names}); {hint}")
        raise ConfigError(f"no installed plugin {name[:60]!r} (installed: {names}); {hint}")
    if len(found) > 1:
        raise ConfigError(f"distribution {name!r} has several plugins ({', '.join(e.name for e in found)}): "
                          "check one by its entry-point name")
    ep = found[0]
    module = ep.value.partition(":")[0].strip()
    spec = importlib.util.find_spec(module.split(".")[0])
    files = _source_files(Path(spec.origin)) if spec is not None and spec.origin else ()
    return Target(ep.name, ep.dist_name, ep.dist_version, f"entry point {ep.name} = {ep.value}", files, ep.load)


def _from_path(path: Path) -> Target:
    if path.is_file():
        if path.suffix != ".py":
            raise ConfigError(f"{path}: a plugin file must be a .py module")
        stem = path.stem
        return Target(_short(stem), "", "", str(path), (path,), lambda: _import_file(stem, path))
    if (path / "pyproject.toml").is_file():
        return _from_project(path)
    if (path / "__init__.py").is_file():
        return Target(_short(path.name), "", "", str(path), _source_files(path / "__init__.py"),
                      lambda: _import_file(path.name, path / "__init__.py", package=True))
    raise ConfigError(f"{path} is neither a plugin project (pyproject.toml), a package (__init__.py) nor a .py file")


def _from_project(project: Path) -> Target:
    meta = _pyproject(project / "pyproject.toml")
    eps = meta["entry_points"]
    if not eps:
        raise ConfigError(f"{project / 'pyproject.toml'} declares no [project.entry-points.virtscenario] entry "
                          "point, so virtscenario would never load this plugin (see docs/writing-plugins.md)")
    if len(eps) > 1:
        raise ConfigError(f"{project} declares several plugins ({', '.join(eps)}): check each module file")
    [(name, value)] = eps.items()
    module = value.partition(":")[0].strip()
    root = project / "src" if (project / "src").is_dir() else project

    def load() -> Any:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        obj: Any = importlib.import_module(module)
        for attr in filter(None, value.partition(":")[2].strip().split(".")):
            obj = getattr(obj, attr)
        return obj

    top = root / module.split(".")[0]
    origin = top / "__init__.py" if top.is_dir() else top.with_suffix(".py")
    files = _source_files(origin) if origin.exists() else ()
    return Target(name, meta["name"], meta["version"], f"{project} (entry point {name} = {value})", files, load)


def _pyproject(path: Path) -> dict[str, Any]:
    """name, version and the virtscenario entry points of a pyproject.toml."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the few lines we need, read like entry_points.txt
        from ..plugin.discovery import _parse

        def table(name: str) -> dict[str, str]:
            return {k: v.strip().strip("\"'") for k, v in _parse(text, name)}
        project = table("project")
        return {"name": project.get("name", ""), "version": project.get("version", ""),
                "entry_points": table("project.entry-points.virtscenario")}
    try:
        data = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return {"name": data.get("name", ""), "version": str(data.get("version", "")),
            "entry_points": dict(data.get("entry-points", {}).get("virtscenario", {}))}


def _short(name: str) -> str:
    return name[len("virtscenario_"):] if name.startswith("virtscenario_") else name


def _import_file(name: str, path: Path, package: bool = False) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _source_files(origin: Path) -> tuple[Path, ...]:
    if origin.name == "__init__.py":
        return tuple(sorted(origin.parent.rglob("*.py")))
    return (origin,) if origin.suffix == ".py" else ()


# -- the check ------------------------------------------------------------------------------
def check_plugin(target: str, schema: Optional[str] = None,
                 builtin_commands: Optional[Mapping[str, Any]] = None) -> Report:
    """Check the plugin ``target`` names; see the module docstring.

    ``schema`` overrides libvirt's RelaxNG schema; ``builtin_commands`` (name -> click command, from the
    CLI) lets the check see a plugin command that reuses a built-in name.
    """
    found = find_target(target)
    dist = " ".join(p for p in (found.distribution, found.version) if p)
    report = Report(found.name, f"{dist}, {found.source}" if dist else found.source)
    heavy_before = {m for m in HEAVY_MODULES if m in sys.modules}
    try:
        plugin = found.load()
    except Exception as exc:  # noqa: BLE001 - a plugin that does not import is the first problem
        report.problem("import", _one_line(exc))
        return report
    for module in HEAVY_MODULES:
        if module not in heavy_before and module in sys.modules:
            report.problem("lint", f"importing the plugin imports {module} at module level: every virtscenario "
                                   "command pays for it; import it inside the hook that needs it")
    _lint_imports(report, found.files)
    pm = _manager(report, found, plugin)
    if pm is None:
        return report
    report.hooks = pm.infos[found.name].hooks
    registered = _registration(report, pm, found.name, builtin_commands or {})
    _pipeline(report, pm, found.name, registered, schema)
    return report


def _one_line(exc: BaseException) -> str:
    from ..plugin.manager import one_line
    return str(exc) if isinstance(exc, VirtscenarioError) else one_line(exc)


def _lint_imports(report: Report, files: tuple[Path, ...]) -> None:
    """Plugins import only ``virtscenario.api`` (and ``virtscenario.testing`` in tests): the rest may change."""
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                if name.startswith("virtscenario.") and name not in ("virtscenario.api", "virtscenario.testing") \
                        or name == "virtscenario" and isinstance(node, ast.ImportFrom):
                    line = getattr(node, "lineno", 0)
                    report.problem("lint", f"{path.name}:{line} imports {name}: plugins import only "
                                           "virtscenario.api (its API_VERSION covers it; the rest may change)")


def _manager(report: Report, found: Target, plugin: object) -> Any:
    """A plugin manager with the core's essential plugins and this one; load problems and lint warnings."""
    from ..plugin.manager import ESSENTIAL_PLUGINS, VirtscenarioPluginManager
    pm = VirtscenarioPluginManager()
    for name, module in ESSENTIAL_PLUGINS.items():
        pm.register_plugin(importlib.import_module(module), name, "virtscenario", "", builtin=True)
    if found.name in ESSENTIAL_PLUGINS:
        report.problem("load", f"the name {found.name!r} is one of the core's essential plugins")
        return None
    try:
        pm.register_plugin(plugin, found.name, found.distribution, found.version, builtin=_builtin(found))
    except Exception as exc:  # noqa: BLE001 - typo'd hooks, wrong arguments, another API version
        report.problem("load", _one_line(exc))
        return None
    for warning in pm.infos[found.name].warnings:
        report.problem("lint", warning)
    if not pm.infos[found.name].hooks:
        report.problem("lint", "implements no hook, so it contributes nothing")
    return pm


def _builtin(found: Target) -> bool:
    from ..plugin.manager import BUILTIN_DISTRIBUTIONS, norm
    return norm(found.distribution) in BUILTIN_DISTRIBUTIONS


def _impl(pm: Any, hook: str, plugin: str) -> Any:
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name == plugin and not (impl.wrapper or impl.hookwrapper):
            return impl
    return None


def _call(report: Report, pm: Any, hook: str, plugin: str, at: str = "", **kwargs: Any) -> Optional[list[Any]]:
    """Call ``plugin``'s own implementation of ``hook``; a failure is a problem (in scenario ``at``), None."""
    impl = _impl(pm, hook, plugin)
    if impl is None:
        return []
    try:
        result = impl.function(**{name: kwargs[name] for name in impl.argnames})
        if result is None:
            return []
        return list(result) if isinstance(result, (list, tuple, set, types.GeneratorType)) else [result]
    except Exception as exc:  # noqa: BLE001 - reported, and the next hook is still checked
        report.problem(hook, f"raised {_one_line(exc)}", at)
        return None


@record
class _Registered(Record):
    scenarios: list[Any]
    checks: list[Any]
    #: The core would disable the plugin (a hook raised, a wrong type, a redeclared key): nothing to render.
    disabled: bool
    specs: list[Any] = field(default_factory=list)  # the setting specs accepted
    rules: list[Any] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # registration hooks that raised or yielded a wrong type


def _registration(report: Report, pm: Any, plugin: str, builtin_commands: Mapping[str, Any]) -> _Registered:
    from .. import types as vtypes
    from ..settings.registry import SettingRegistry
    from ..settings.types import SettingSpec
    kinds = {"SettingSpec": SettingSpec, "Scenario": vtypes.Scenario, "DomainRule": vtypes.DomainRule,
             "HostCheck": vtypes.HostCheck}
    disabled = False
    failed: set[str] = set()
    results: dict[str, list[Any]] = {}
    for hook, kind in REGISTRATION:
        items = _call(report, pm, hook, plugin)
        wrong = sorted({type(i).__name__ for i in items or () if not isinstance(i, kinds[kind])})
        if wrong:
            report.problem(hook, f"must yield {kind} items, got {', '.join(wrong)}")
        if items is None or wrong:
            # What create registers together: a failure there disables the plugin for every VM.
            disabled = disabled or hook != "host_checks"
            failed.add(hook)
            continue
        results[hook] = items
    registry = SettingRegistry()
    keys, specs = [], []
    for spec in results.get("register_settings", []):
        if spec.key in registry:
            owner = registry.owner(spec.key)
            report.problem("register_settings", f"setting {spec.key!r} is already declared by "
                                                f"{'the core' if owner == 'core' else 'this plugin'}")
            disabled = True
            continue
        registry.add(spec, plugin)
        keys.append(spec.key)
        specs.append(spec)
        if spec.default is not None:
            try:
                registry.coerce(spec.key, spec.default)
            except VirtscenarioError as exc:
                report.problem("register_settings", f"the default of {spec.key!r} is not valid: {exc}")
    from .scaffold import BUILTIN_SCENARIOS
    names = []
    for scenario in results.get("register_scenarios", []):
        if scenario.name in names:
            report.problem("register_scenarios", f"scenario {scenario.name!r} is registered twice")
        elif scenario.name in BUILTIN_SCENARIOS and not pm.infos[plugin].builtin:
            report.problem("register_scenarios", f"scenario {scenario.name!r} is a built-in scenario's name: "
                                                 "where both are installed, only one of them is used")
        if not scenario.summary.strip():
            report.problem("register_scenarios", "scenario has no summary ('scenarios list' shows it)",
                           scenario.name)
        names.append(scenario.name)
    for rule in results.get("domain_rules", []):
        if not (rule.explanation.strip() and rule.reference.strip()):
            report.problem("domain_rules", f"rule {rule.name!r} needs an explanation and a reference (printed "
                                           "with every problem it finds)")
        if rule.severity not in ("error", "warning"):
            report.problem("domain_rules", f"rule {rule.name!r}: severity {rule.severity!r} is not error or warning")
    _check_commands(report, pm, plugin, builtin_commands)
    report.scenarios = tuple(names)
    report.done.append(f"registration: {len(keys)} setting(s), {len(names)} scenario(s), "
                       f"{len(results.get('domain_rules', []))} rule(s), "
                       f"{len(results.get('host_checks', []))} host check(s)")
    return _Registered(results.get("register_scenarios", []), results.get("host_checks", []), disabled, specs,
                       results.get("domain_rules", []), failed)


def _check_commands(report: Report, pm: Any, plugin: str, builtin_commands: Mapping[str, Any]) -> None:
    """register_commands on a private root group (nothing global changes): it must not fail, nor
    reuse the name of a built-in command or of a built-in group's subcommand (the built-in wins)."""
    import click
    if _impl(pm, "register_commands", plugin) is None:
        return
    placeholders: dict[str, click.Group] = {}

    class ProbeRoot(click.Group):
        """Like the real root: the built-in groups exist (empty copies) for plugins to extend."""

        def builtin(self, name: str) -> Optional[click.Command]:
            if isinstance(builtin_commands.get(name), click.Group) and name not in placeholders:
                placeholders[name] = click.Group(name)
                self.add_command(placeholders[name])
            return self.commands.get(name)

    root = ProbeRoot("virtscenario")
    if _call(report, pm, "register_commands", plugin, cli=root) is None:
        return
    added = []
    for name, command in sorted(root.commands.items()):
        if name in placeholders and command is placeholders[name]:
            real = builtin_commands[name]
            for sub in sorted(command.commands):
                added.append(f"{name} {sub}")
                if sub in real.commands:
                    report.problem("register_commands", f"command '{name} {sub}' is a built-in command's name: "
                                                        "the built-in wins, so this one never runs")
            continue
        added.append(name)
        if name in builtin_commands:
            report.problem("register_commands", f"command {name!r} is a built-in command's name: the built-in "
                                                "wins, so this one never runs (to add to a built-in group, "
                                                "use virtscenario.api.command_group)")
    report.done.append(f"register_commands: {', '.join(added) or 'no command'}")


def _pipeline(report: Report, pm: Any, plugin: str, registered: _Registered, schema: Optional[str]) -> None:
    from .fakehost import make_fake_host
    pm.strict = True  # from here on a failure raises, naming the plugin and the hook
    with tempfile.TemporaryDirectory(prefix="virtscenario-plugin-check-") as tmp:
        store = Path(tmp) / "store"
        host = make_fake_host(Path(tmp) / "host")
        _host_checks(report, registered.checks, host)
        vms: list[tuple[str, Any]] = []  # (scenario, Generated on the fake host): verify_checks' VMs
        if registered.disabled:
            report.done.append("its own scenarios were not rendered: the core disables a plugin whose registration "
                               "fails, so fix those problems first")
        else:
            vms += _own_scenarios(report, pm, plugin, registered.scenarios, host, store, schema)
        if not any(_impl(pm, h, plugin) is not None for h in OTHER_VM_HOOKS + ("host_plan", "verify_checks")):
            return
        references = _references(report, plugin, host, store, schema)
        _other_scenarios(report, pm, plugin, registered, references, host, store, schema)
        _plan_references(report, pm, plugin, references, host)
        _verify_checks(report, pm, plugin, vms + references.vms, Path(tmp) / "guests")


def _own_scenarios(report: Report, pm: Any, plugin: str, scenarios: list[Any], host: Any, store: Path,
                   schema: Optional[str]) -> list[tuple[str, Any]]:
    """Each of the plugin's scenarios rendered offline and on the fake host, and the host planned for it."""
    from .harness import MissingSchemaError, render_scenario
    vms = []
    for scenario in scenarios:
        name = scenario.name
        results = []
        for label, where in (("offline", None), ("on a fake 8-CPU host", host)):
            try:
                result = render_scenario(name, pm=pm, host=where, store_root=store, schema=schema, vm_name=VM_NAME)
            except MissingSchemaError as exc:
                report.problem("schema", str(exc), name)
                break
            except Exception as exc:  # noqa: BLE001 - every failure is one problem naming its hook
                report.problem(_hook_of(exc), _one_line(exc), name)
                break
            results.append(label)
            for note in result.notes:
                if note.level == "warning" and note.source == plugin:
                    report.done.append(f"scenario {name}: warning from {plugin}: {note.message}")
        if len(results) < 2:
            continue
        vms.append((name, result.generated))
        planned = _plan(report, pm, plugin, result.host_requirements, host, name)
        if planned is None:
            continue
        report.done.append(f"scenario {name}: valid XML {' and '.join(results)}; "
                           f"{len(result.host_requirements)} host requirement(s), {planned} host plan "
                           f"change(s) from this plugin")
    return vms


def _hook_of(exc: BaseException, default: str = "render") -> str:
    """The hook a pipeline failure comes from, as far as the error says."""
    from ..plugin.manager import PluginHookError
    if isinstance(exc, PluginHookError):
        return exc.hook
    text = str(exc)
    if text.startswith("rule ") and " of plugin " in text:
        return "domain_rules"  # a rule's check raised
    if isinstance(exc, ValidationError):
        return "postprocess_xml" if "(postprocess_xml)" in text else "domain_rules" if "[rule " in text else "render"
    if isinstance(exc, ConfigError) and "(scenario " in text:
        return "register_scenarios"  # a choice of the scenario: unknown key, invalid value
    return default


def _host_checks(report: Report, checks: list[Any], host: Any) -> None:
    from ..types import CheckResult
    for check in checks:
        try:
            result = check.run(host)
        except Exception as exc:  # noqa: BLE001 - the core turns this into a FAIL row; the author must know
            report.problem("host_checks", f"check {check.name!r} raised {_one_line(exc)} on a fake host")
            continue
        if not isinstance(result, CheckResult):
            report.problem("host_checks", f"check {check.name!r} returned {type(result).__name__}, not CheckResult")
        elif result.status not in ("PASS", "WARN", "FAIL"):
            report.problem("host_checks", f"check {check.name!r}: status {result.status!r} is not PASS, WARN or FAIL")
        else:
            report.done.append(f"host check {check.name}: {result.status} on the fake host ({result.message})")


def _probe() -> object:
    """A plugin with a scenario of nobody's, with the core's defaults: another scenario's VM whatever is installed."""
    from .. import hookimpl
    from ..types import Scenario

    class Probe:
        @hookimpl
        def register_scenarios(self) -> list[Scenario]:
            return [Scenario(PROBE_SCENARIO, "a scenario of nobody's, with the core's defaults", "0")]
    return Probe()


@record
class _References(Record):
    """Other scenarios' VMs on the fake host, generated without the plugin: the probe's and those of the
    built-in scenario plugins that are installed (the plugins, to generate them again with the plugin)."""

    plugins: list[tuple[str, object]]
    vms: list[tuple[str, Any]]  # (scenario, Generated)


def _reference_plugins(plugin: str) -> list[tuple[str, object]]:
    """The probe, and each installed built-in scenario plugin (desktop, computation, securevm) but the one checked."""
    from ..plugin.discovery import entry_points
    from ..plugin.manager import BUILTIN_DISTRIBUTIONS, ENTRY_POINT_GROUP, norm
    from .scaffold import BUILTIN_SCENARIOS
    out: list[tuple[str, object]] = [(PROBE_PLUGIN, _probe())]
    for ep in sorted(entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in BUILTIN_SCENARIOS and ep.name != plugin and norm(ep.dist_name) in BUILTIN_DISTRIBUTIONS:
            try:
                out.append((ep.name, ep.load()))
            except Exception:  # noqa: BLE001 - a broken built-in is not this plugin's problem
                continue
    return out


def _reference_pm(references: list[tuple[str, object]], subject: Optional[tuple[str, object]] = None) -> Any:
    """A strict plugin manager: the core's essential plugins, the reference plugins and ``subject`` (the
    plugin checked, registered like the loader registers it)."""
    from ..plugin.manager import ESSENTIAL_PLUGINS, VirtscenarioPluginManager
    pm = VirtscenarioPluginManager(strict=True)
    entries: list[tuple[str, object, bool]] = [(name, importlib.import_module(module), True)
                                               for name, module in ESSENTIAL_PLUGINS.items()]
    entries += [(name, obj, True) for name, obj in references]
    if subject is not None:
        entries.append((subject[0], subject[1], False))
    for name, obj, builtin in sorted(entries, key=lambda e: e[0], reverse=True):  # hooks in ascending name order
        pm.register_plugin(obj, name, "virtscenario" if builtin else "", "", builtin=builtin)
    return pm


def _generate(catalog: Any, scenario: str, host: Any, store: Path, schema: Optional[str],
              identity: Any = None) -> Any:
    """One VM of ``scenario`` on the fake host. ``identity`` (UUID, MACs, disk secrets' UUIDs): that of
    another VM, so the two compare byte for byte; by default a fixed one."""
    from ..domain.generate import Request, generate
    from ..host.facts import read_host
    from ..vm.identity import Identity
    if identity is None:
        identity = Identity(uuid="00000000-0000-4000-8000-000000000000", macs=["52:54:00:00:00:01"])
    return generate(Request(scenario, VM_NAME, store_root=store, schema=schema, identity=identity, host=read_host(host),
                            inspect_images=False), catalog)


def _references(report: Report, plugin: str, host: Any, store: Path, schema: Optional[str]) -> _References:
    from ..plugin.hooks import Catalog
    plugins = _reference_plugins(plugin)
    catalog = Catalog(_reference_pm(plugins))
    names = [PROBE_SCENARIO] + sorted(n for n, p in catalog.scenarios.items() if p.plugin != PROBE_PLUGIN)
    vms = []
    for name in names:
        try:
            vms.append((name, _generate(catalog, name, host, store, schema)))
        except Exception as exc:  # noqa: BLE001 - not this plugin's problem: the check goes on without it
            report.done.append(f"scenario {name} was left out: it fails without the plugin ({_one_line(exc)})")
    if len(names) == 1:
        report.done.append("no built-in scenario is installed: the plugin's per-VM hooks, host_plan and "
                           f"verify_checks were run on the core's defaults ({PROBE_SCENARIO}) only")
    return _References(plugins, vms)


def _proxy(pm: Any, plugin: str, registered: _Registered) -> object:
    """The plugin's hooks that run for every VM, without its registration hooks (one of them failed), plus
    the settings and rules the check accepted: what a fixed registration would bring to other VMs."""
    from .. import hookimpl
    subject = pm.get_plugin(plugin)
    proxy = types.SimpleNamespace(VIRTSCENARIO_API=getattr(subject, "VIRTSCENARIO_API", None))
    for hook in PER_VM_HOOKS:
        impl = _impl(pm, hook, plugin)
        if impl is not None:
            setattr(proxy, hook, impl.function)  # keeps its @hookimpl options
    specs, rules = list(registered.specs), list(registered.rules)
    if specs:
        proxy.register_settings = hookimpl(lambda: specs)
    if rules:
        proxy.domain_rules = hookimpl(lambda: rules)
    return proxy


def _other_scenarios(report: Report, pm: Any, plugin: str, registered: _Registered, references: _References,
                     host: Any, store: Path, schema: Optional[str]) -> None:
    """The reference VMs generated again with the plugin: per-VM hooks that change them act on every
    scenario's VMs. A problem for a plugin that brings its own scenarios (it forgot to test
    ``context.scenario.name``); what a site-policy plugin (no scenario of its own) is for. When the
    plugin's registration failed, its per-VM hooks still run here (without its registration hooks), so
    one run reports their problems too."""
    from ..plugin.hooks import Catalog
    implemented = [h for h in OTHER_VM_HOOKS if _impl(pm, h, plugin) is not None]
    if not implemented or not references.vms:
        return
    subject = _proxy(pm, plugin, registered) if registered.disabled else pm.get_plugin(plugin)
    try:
        catalog = Catalog(_reference_pm(references.plugins, (plugin, subject)))
    except Exception as exc:  # noqa: BLE001 - e.g. another API version: already reported at load
        report.problem("load", _one_line(exc))
        return
    changed, checked = [], []
    for name, without in references.vms:
        try:
            xml = _generate(catalog, name, host, store, schema, without.identity).xml
        except Exception as exc:  # noqa: BLE001
            report.problem(_hook_of(exc), _one_line(exc), name)
            continue
        checked.append(name)
        if xml != without.xml:
            changed.append(name)
    if not checked:
        return
    hooks = ", ".join(implemented)
    has_scenarios = bool(registered.scenarios) or "register_scenarios" in registered.failed
    if changed and has_scenarios:
        changers = [h for h in implemented if h in PER_VM_HOOKS] or implemented
        report.problem(changers[0] if len(changers) == 1 else "per-VM hooks",
                       f"{', '.join(changers)} changed the VM of another scenario: these hooks run for every VM, so "
                       "return early unless context.scenario.name (or scenario.name) is one of yours",
                       ", ".join(changed))
    elif changed:
        report.done.append(f"{hooks}: change the VMs of other scenarios ({', '.join(changed)}; a site policy: "
                           "intended?)")
    else:
        report.done.append(f"{hooks}: leave the VMs of other scenarios ({', '.join(checked)})")


def _plan(report: Report, pm: Any, plugin: str, requirements: Any, host: Any, scenario: str) -> Optional[int]:
    """The plugin's own host_plan for ``requirements`` on the fake host: how many changes, or None (a problem:
    it raised, yielded something else than HostChange, or wrote to the host)."""
    from ..types import HostChange
    if _impl(pm, "host_plan", plugin) is None:
        return 0
    before = _tree_state(host.path("/"))
    items = _call(report, pm, "host_plan", plugin, at=scenario, requirements=list(requirements), host=host)
    if _tree_state(host.path("/")) != before:
        report.problem("host_plan", "wrote to the host: host_plan only plans (read through host, change nothing; "
                                    "the host apply command of the host tuning plugin applies)", scenario)
        return None
    if items is None:
        return None
    wrong = sorted({type(i).__name__ for i in items if not isinstance(i, HostChange)})
    if wrong:
        report.problem("host_plan", f"must yield HostChange items, got {', '.join(wrong)}", scenario)
        return None
    return len(items)


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in root.rglob("*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out


def _plan_references(report: Report, pm: Any, plugin: str, references: _References, host: Any) -> None:
    """host_plan with the host requirements of each reference VM (a built-in scenario's hugepages, THP,
    KSM... whatever the plugin's own scenarios ask for)."""
    if _impl(pm, "host_plan", plugin) is None or not references.vms:
        return
    planned = []
    for name, generated in references.vms:
        count = _plan(report, pm, plugin, generated.host_requirements, host, name)
        if count is not None:
            planned.append(f"{name}: {len(generated.host_requirements)} requirement(s), {count} change(s)")
    if planned:
        report.done.append(f"host_plan for other scenarios' VMs on the fake host: {'; '.join(planned)}")


class _FakeGuest:
    """What ``verify_checks`` gets, without a VM: a Linux guest whose ``/proc``, ``/sys`` and ``/etc`` are
    files of a fake tree shaped like the VM (its vCPUs, memory and name). ``read`` and ``run(["cat", PATH])``
    read that tree; any other program or agent command fails as a real guest's agent does when it cannot
    run it (:class:`AgentError`)."""

    is_linux = True
    osinfo = {"id": "linux", "name": "Linux", "kernel-release": "6.1.0"}

    def __init__(self, directory: Path, generated: Any) -> None:
        from .fakehost import make_fake_host
        domain = generated.domain
        name = domain.name
        self.root = make_fake_host(directory, cpus=max(1, int(domain.vcpus)),
                                   memory=f"{max(1, domain.memory // 1024**2)}MiB",
                                   files={"/proc/sys/kernel/hostname": f"{name}\n", "/etc/hostname": f"{name}\n",
                                          "/etc/os-release": 'ID=linux\nNAME="Linux"\n'})

    def read(self, path: str) -> str:
        from ..vm.agent import AgentError
        try:
            return self.root.read(path)
        except OSError as exc:
            raise AgentError(f"cat {path} failed in the guest (1): cat: {path}: {exc.strerror}") from None

    def run(self, argv: list[str]) -> Any:
        from ..vm.agent import AgentError, ExecResult
        if len(argv) == 2 and argv[0] in ("cat", "/bin/cat", "/usr/bin/cat"):
            try:
                return ExecResult(0, self.root.read(argv[1]), "")
            except OSError as exc:
                return ExecResult(1, "", f"cat: {argv[1]}: {exc.strerror}\n")
        raise AgentError(f"guest-exec {argv[0] if argv else ''!r}: plugin check's fake guest runs no program but cat")

    def command(self, execute: str, arguments: Optional[dict[str, Any]] = None) -> Any:
        from ..vm.agent import AgentError
        raise AgentError(f"agent command {execute}: plugin check's fake guest answers none")


def _verify_checks(report: Report, pm: Any, plugin: str, vms: list[tuple[str, Any]], guests: Path) -> None:
    """The plugin's verify_checks for each VM generated (its own scenarios' and the reference ones), with a
    fake guest: an exception is a problem, unless it is the fake guest saying what it cannot do."""
    from lxml import etree

    from ..types import GuestCheck
    from ..vm.agent import AgentError
    from ..vm.store import vm_record
    from ..vm.verify import verified_vm
    impl = _impl(pm, "verify_checks", plugin)
    if impl is None or not vms:
        return
    rows, limits = [], []
    for index, (name, generated) in enumerate(vms):
        vm = verified_vm(vm_record(generated), generated.vm_dir, etree.fromstring(generated.xml))
        args = {"vm": vm, "guest": _FakeGuest(guests / str(index), generated)}
        try:
            answer = impl.function(**{k: args[k] for k in impl.argnames})
            items = list(answer or ())
        except AgentError as exc:
            limits.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - verify shows it as a MISMATCH row naming the plugin
            report.problem("verify_checks", f"raised {_one_line(exc)}", name)
            continue
        wrong = sorted({type(i).__name__ for i in items if not isinstance(i, GuestCheck)})
        if wrong:
            report.problem("verify_checks", f"must yield GuestCheck items, got {', '.join(wrong)}", name)
            continue
        rows.append(f"{name}: {len(items)}")
    if rows:
        report.done.append(f"verify_checks on a fake guest: row(s) per VM: {', '.join(rows)}")
    if limits:
        report.done.append(f"verify_checks needed more than the fake guest offers ({'; '.join(limits)})")
