"""Plugin managers, generated VMs, host checks and host plans for tests and `virtscenario plugin check`:
the real pipeline, no installed entry point loaded, no pytest needed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from lxml import etree

    from ..domain.generate import Generated
    from ..domain.model import Domain
    from ..host.facts import HostInfo
    from ..host.hypervisor import DomainCaps
    from ..host.root import HostRoot
    from ..plugin.manager import PluginInfo, VirtscenarioPluginManager
    from ..settings.types import Settings
    from ..types import HostChange, HostRequirement, Note

PluginSpec = Any  # a module, an object, a module name, or a (name, plugin) pair


# -- plugin managers ------------------------------------------------------------------
def _named(plugin: PluginSpec) -> tuple[str, object]:
    if isinstance(plugin, tuple):
        return plugin[0], plugin[1]
    if isinstance(plugin, str):
        plugin = importlib.import_module(plugin)
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    # A module virtscenario_lab is registered as "lab", the name its entry point uses.
    short = name.rsplit(".", 1)[-1]
    return (short[len("virtscenario_"):] if short.startswith("virtscenario_") else short), plugin


def make_plugin_manager(plugins: Iterable[PluginSpec] = (), core: bool = True) -> VirtscenarioPluginManager:
    """A plugin manager holding exactly ``plugins`` (modules, objects, module names or
    ``(name, plugin)`` pairs), plus the core's default plugins when ``core`` is true.

    Plugins are registered like the entry-point loader does (descending name, so
    hooks run in ascending plugin-name order) and checked the same way: a
    misspelled hook raises ``pluggy.PluginValidationError`` and a plugin needing
    another API version raises ``IncompatiblePlugin``.
    """
    from ..plugin.manager import ESSENTIAL_PLUGINS, VirtscenarioPluginManager
    entries: dict[str, tuple[object, bool]] = {}
    if core:
        for name, module in ESSENTIAL_PLUGINS.items():
            entries[name] = (importlib.import_module(module), True)
    for spec in plugins:
        name, plugin = _named(spec)
        if name in entries:
            raise ValueError(f"two plugins are named {name!r}; pass (name, plugin) pairs to tell them apart")
        entries[name] = (plugin, False)
    pm = VirtscenarioPluginManager()
    for name in sorted(entries, reverse=True):
        plugin, builtin = entries[name]
        dist, version = _distribution(plugin) if not builtin else ("virtscenario", "")
        pm.register_plugin(plugin, name, distribution=dist or name, version=version, builtin=builtin)
    return pm


def _distribution(plugin: object) -> tuple[str, str]:
    """The installed distribution of a plugin module (so provenance reads as on the CLI), if any."""
    import types
    if not isinstance(plugin, types.ModuleType):
        return "", ""
    from importlib import metadata
    try:
        names = metadata.packages_distributions().get(plugin.__name__.split(".")[0], [])
        return (names[0], metadata.version(names[0])) if names else ("", "")
    except Exception:  # noqa: BLE001 - provenance text only; never fail a test over it
        return "", ""


def installed_plugins() -> dict[str, PluginInfo]:
    """Load the installed entry points into a fresh plugin manager and run the registration hooks,
    as ``virtscenario plugins list`` does: name -> PluginInfo (``status`` is active, error, disabled
    or incompatible; a plugin that raised in a registration hook is ``error``). Nothing is printed."""
    from ..plugin.hooks import Catalog
    from ..plugin.manager import VirtscenarioPluginManager
    pm = VirtscenarioPluginManager()
    pm.load_entrypoints()
    Catalog(pm).register()
    return dict(pm.infos)


class MissingSchemaError(AssertionError):
    """The test asked for schema validation and libvirt's schemas are not installed."""


def host_checks(host: HostRoot, plugins: Iterable[PluginSpec] = (), *, core: bool = True,
                pm: Optional[VirtscenarioPluginManager] = None) -> list[Any]:
    """Run the host checks of ``plugins`` on ``host``: ``CheckOutcome`` items (plugin, check, result)."""
    from ..plugin.hooks import Catalog
    return Catalog(pm if pm is not None else make_plugin_manager(plugins, core=core)).run_host_checks(host)


def host_plan(scenario: str, host: HostRoot, plugins: Iterable[PluginSpec] = (), *, core: bool = True,
              pm: Optional[VirtscenarioPluginManager] = None, **render: Any) -> list[tuple[str, HostChange]]:
    """The host plan the plugins make for one VM of ``scenario`` on ``host``: ``(plugin, HostChange)``.

    ``render`` takes :func:`render_scenario`'s options (``settings``, ``vcpus``, ``memory``...).
    """
    from ..plugin.hooks import Catalog
    pm = pm if pm is not None else make_plugin_manager(plugins, core=core)
    result = render_scenario(scenario, pm=pm, host=host, **render)
    return Catalog(pm).host_plan(list(result.host_requirements), host)


# -- rendering ------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderResult:
    """A generated VM: the XML bytes, the parsed tree and everything the pipeline decided."""

    xml: bytes
    tree: etree._Element
    settings: Settings
    domain: Domain
    notes: tuple[Note, ...]
    host_requirements: tuple[HostRequirement, ...]
    validated: bool
    generated: Generated

    def value(self, key: str) -> Any:
        return self.settings.value(key)

    def note_texts(self) -> list[str]:
        return [n.message for n in self.notes]


def render_scenario(name: str, plugins: Iterable[PluginSpec] = (), *, core: bool = True,
                    pm: Optional[VirtscenarioPluginManager] = None, vm_name: str = "vs-test",
                    settings: Optional[Mapping[str, Any]] = None, vcpus: Optional[int] = None,
                    memory: Optional[str] = None, host: Union[HostInfo, HostRoot, None] = None,
                    caps: Optional[DomainCaps] = None, libvirt_version: Optional[int] = None,
                    disks: Optional[Sequence[str]] = None, networks: Optional[Sequence[str]] = None,
                    store_root: Union[str, Path, None] = None, schema: Optional[str] = None,
                    require_schema: bool = True) -> RenderResult:
    """Generate scenario ``name`` through the real pipeline (settings, hooks, rules, RelaxNG).

    Without libvirt's RelaxNG schemas (package libvirt0 / libvirt-libs) this fails:
    a test that passes without validation proves nothing about the XML. Pass
    ``require_schema=False`` to opt out explicitly.

    ``settings`` are applied like ``--set KEY=VALUE`` flags; ``disks`` and
    ``networks`` take ``--disk``/``--network`` specs (``["size=10"]``,
    ``["user"]``); ``host`` is a HostInfo or a HostRoot (read like
    ``--host-root``). Nothing is written: ``store_root`` only names image paths.
    Errors propagate (``VirtscenarioError``: use ``pytest.raises``).
    """
    from lxml import etree

    from ..domain.generate import Request, device_specs, generate
    from ..host.root import HostRoot
    from ..plugin.hooks import Catalog

    if pm is None:
        pm = make_plugin_manager(plugins, core=core)
    cli: list[tuple[str, Any, str]] = []
    if vcpus is not None:
        cli.append(("vm.vcpus", vcpus, "--vcpus"))
    if memory is not None:
        cli.append(("vm.memory", memory, "--memory"))
    for key, value in (settings or {}).items():
        cli.append((key, value, f"--set {key}"))
    if isinstance(host, HostRoot):
        from ..host.facts import read_host
        host = read_host(host)
    disk_specs, net_specs = device_specs(tuple(disks or ()), tuple(networks or ()))
    root = Path(store_root) if store_root is not None else Path("/nonexistent/virtscenario-test-store")
    req = Request(scenario=name, name=vm_name, cli_settings=cli, disks=disk_specs, networks=net_specs,
                  store_root=root, caps=caps, host=host, libvirt_version=libvirt_version, schema=schema,
                  inspect_images=False)
    gen = generate(req, Catalog(pm))
    if require_schema and not gen.validated:
        from ..domain.validate import schema_path
        raise MissingSchemaError(f"libvirt's RelaxNG schema {schema_path(schema)} is not installed, so the XML of "
                                 f"{name!r} was not validated (install libvirt0 / libvirt-libs, or pass "
                                 "require_schema=False)")
    tree = etree.fromstring(gen.xml)
    return RenderResult(gen.xml, tree, gen.settings, gen.domain, tuple(gen.notes), tuple(gen.host_requirements),
                        gen.validated, gen)


