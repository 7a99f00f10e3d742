"""The public plugin API: the one module a plugin imports from (tests may also use
:mod:`virtscenario.testing`).

Everything here is covered by ``API_VERSION`` (major: incompatible change, minor:
additions). A plugin declares ``VIRTSCENARIO_API = (1, 2)`` at module level; a plugin
needing a newer minor or another major is reported as ``incompatible`` instead of being
loaded, and one that declares nothing is assumed to target 1.0 (with a warning).

Importing this module is cheap: the value types are imported at once, everything that
needs lxml, the model or the store is imported on first use (``api.model``,
``api.resolve_scenario``...).

API 1.2 adds what a host-side plugin needs without reaching into the core:
:func:`resolve_scenario`, the VM store (:func:`store_root`, :func:`stored_vms`,
:func:`read_vm`, :class:`StoredVm`), :func:`atomic_write`, :func:`host_root`,
:func:`parse_sets`, :func:`complete_scenarios`, :func:`format_table`,
:func:`run_host_checks`, :func:`collect_host_plan`, :func:`command_group`,
:attr:`ResolvedSetting.layer` / :attr:`ResolvedSetting.origin` (provenance as data), and
:attr:`SettingSpec.scenarios` / :attr:`SettingSpec.applies_when` (which scenarios show a
plugin's setting, and when a default takes part).
API 1.3 adds the host devices facts: :func:`read_host_devices` (:class:`HostDevices`) and
:func:`pci_problems` (why a PCI device cannot be passed through), :func:`resolve_host_uris`
(libvirt URIs of the host inventory's names), :meth:`BuildContext.adapt_setting` (a hook says which
setting it changed in the model) and :func:`new_vm_requirements` (the host needs of a VM ``create``
would build for a host).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from . import API_VERSION, __version__, hookimpl
from .errors import ConfigError, PluginError, VirtscenarioError
from .settings.types import LAYERS, Choice, Layer, ResolvedSetting, Settings, SettingSpec
from .types import CheckResult, DomainRule, GuestCheck, HostChange, HostCheck, HostRequirement, Note, Scenario
from .units import format_size, parse_size

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import click

    from .domain import model
    from .domain.context import BuildContext
    from .domain.model import Domain
    from .domain.sections.cpu import housekeeping_split
    from .host.devices import HostDevices, pci_problems
    from .host.devices import read_devices as read_host_devices
    from .host.facts import HostCpu, HostInfo, format_cpulist, parse_cpuinfo, parse_cpulist, read_host
    from .host.hypervisor import DomainCaps, SevCaps
    from .host.root import HostRoot
    from .plugin.hooks import CheckOutcome
    from .settings.resolve import ResolvedScenario
    from .vm.store import StoredVm, atomic_write

__all__ = [
    "__version__", "API_VERSION", "atomic_write", "BuildContext", "CheckOutcome", "CheckResult", "Choice",
    "collect_host_plan", "command_group", "complete_scenarios", "ConfigError", "Domain", "DomainCaps",
    "DomainRule", "format_cpulist", "format_size", "format_table", "GuestCheck", "hookimpl", "host_root",
    "HostChange", "HostCheck", "HostCpu", "HostDevices", "HostInfo", "HostRequirement", "HostRoot",
    "housekeeping_split", "Layer", "LAYERS", "model", "new_vm_requirements", "Note", "parse_cpuinfo",
    "parse_cpulist", "parse_sets",
    "parse_size", "pci_problems", "PluginError", "read_host", "read_host_devices", "read_vm", "resolve_host_uris",
    "resolve_scenario", "ResolvedScenario", "ResolvedSetting", "run_host_checks", "Scenario", "Settings",
    "SettingSpec", "SevCaps", "store_root", "stored_vms", "StoredVm", "VirtscenarioError",
]

#: Names imported on first use: (module, attribute; "" for the module itself).
_LAZY = {
    "BuildContext": ("virtscenario.domain.context", "BuildContext"),
    "CheckOutcome": ("virtscenario.plugin.hooks", "CheckOutcome"),
    "Domain": ("virtscenario.domain.model", "Domain"),
    "DomainCaps": ("virtscenario.host.hypervisor", "DomainCaps"),
    "HostCpu": ("virtscenario.host.facts", "HostCpu"),
    "HostDevices": ("virtscenario.host.devices", "HostDevices"),
    "HostInfo": ("virtscenario.host.facts", "HostInfo"),
    "HostRoot": ("virtscenario.host.root", "HostRoot"),
    "ResolvedScenario": ("virtscenario.settings.resolve", "ResolvedScenario"),
    "SevCaps": ("virtscenario.host.hypervisor", "SevCaps"),
    "StoredVm": ("virtscenario.vm.store", "StoredVm"),
    "atomic_write": ("virtscenario.vm.store", "atomic_write"),
    "format_cpulist": ("virtscenario.host.facts", "format_cpulist"),
    "housekeeping_split": ("virtscenario.domain.sections.cpu", "housekeeping_split"),
    "model": ("virtscenario.domain.model", ""),
    "parse_cpulist": ("virtscenario.host.facts", "parse_cpulist"),
    "parse_cpuinfo": ("virtscenario.host.facts", "parse_cpuinfo"),
    "read_host": ("virtscenario.host.facts", "read_host"),
    # 1.3: host devices (PCI passthrough checks)
    "pci_problems": ("virtscenario.host.devices", "pci_problems"),
    "read_host_devices": ("virtscenario.host.devices", "read_devices"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'virtscenario.api' has no attribute {name!r}")
    import importlib
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if not attr else getattr(module, attr)
    globals()[name] = value
    return value


def resolve_scenario(name: str, *, config_file: Optional[str] = None, sets: Iterable[str] = (),
                     catalog: Any = None) -> ResolvedScenario:
    """A scenario's settings resolved as ``create`` would (settings file, ``--set`` items), without a VM.

    :raises VirtscenarioError: unknown scenario, bad setting (one line).
    """
    from .plugin.hooks import Catalog
    from .settings.cliargs import parse_sets as parse
    from .settings.resolve import ResolvedScenario
    from .settings.resolve import resolve_scenario as resolve
    from .settings.userfile import load_config
    provided, settings = resolve(catalog or Catalog(), name, load_config(config_file), parse(sets))
    sc = provided.scenario
    return ResolvedScenario(sc.name, sc.version, provided.plugin, provided.distribution, settings)


def new_vm_requirements(scenario: str, host: Optional[HostRoot] = None, *, config_file: Optional[str] = None,
                        sets: Iterable[str] = (), catalog: Any = None) -> list[HostRequirement]:
    """The host requirements of the VM ``create SCENARIO`` would build for ``host`` (None: offline), built
    the same way (pinning, NUMA placement, the hooks' choices) and never written: what a host plan without a
    stored VM plans for. ``vm`` is None in each; ``memory.hugepages`` and ``memory.hugepage_size`` say what
    the model uses. New in API 1.3.

    :raises VirtscenarioError: the VM cannot be built (unknown scenario, bad setting, too small a host): one line.
    """
    from .domain.prospective import new_vm_requirements as build
    return build(scenario, host, config_file=config_file, sets=sets, catalog=catalog)


def resolve_host_uris(names_or_uris: Sequence[str], inventory_file: Optional[str] = None) -> list[str]:
    """Libvirt URIs of host inventory names (docs/fleet.md); an item holding ``://`` is a URI and is only checked.

    The inventory is ``inventory_file``, else ``$XDG_CONFIG_HOME/virtscenario/hosts.yaml``, else
    ``/etc/virtscenario/hosts.yaml``; it is read only when a name needs it. New in API 1.3.

    :raises ConfigError: no inventory, a name it does not list (with a "did you mean"), a bad URI: one line.
    """
    from .fleet.inventory import resolve_uris
    return resolve_uris(list(names_or_uris), inventory_file)


def store_root(output: Optional[str] = None, config_file: Optional[str] = None) -> Path:
    """The VM store: ``output`` if given, else the settings file's ``store``, else the default."""
    from .settings.userfile import load_config
    from .vm.store import store_root as root
    return root(output, load_config(config_file).store if output is None else None)


def stored_vms(root: Path) -> list[StoredVm]:
    """Every VM of the store at ``root`` (see :func:`store_root`)."""
    from .vm.store import stored_vms as vms
    return vms(root)


def read_vm(root: Path, name: str) -> Optional[StoredVm]:
    """One VM of the store, or None when there is no such VM."""
    from .vm.store import read_vm as read
    from .vm.store import vm_dir
    return read(vm_dir(root, name))


def host_root(ctx: click.Context) -> HostRoot:
    """The host this command works on (``--host-root`` / ``VIRTSCENARIO_HOST_ROOT``, else ``/``)."""
    from .cli.common import host_root_of
    return host_root_of(ctx)  # type: ignore[no-any-return]


def parse_sets(values: Iterable[str]) -> list[tuple[str, Any, str]]:
    """``--set KEY=VALUE`` items as ``(key, raw value, flag)``; a malformed one is a one-line error."""
    from .settings.cliargs import parse_sets as parse
    return parse(values)


def complete_scenarios(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """A click ``shell_complete`` callback for scenario names."""
    from .cli.common import complete_scenarios as complete
    return complete(ctx, param, incomplete)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table whose last column wraps to the terminal, as the core's commands print them."""
    from .cli.output import table
    return table(headers, rows)


def run_host_checks(host: HostRoot) -> list[CheckOutcome]:
    """Every installed plugin's host checks on ``host`` (a failing check is a FAIL, never a crash)."""
    from .plugin.hooks import Catalog
    return Catalog().run_host_checks(host)


def collect_host_plan(requirements: Sequence[HostRequirement], host: HostRoot) -> list[tuple[str, HostChange]]:
    """Every installed plugin's ``host_plan`` answer, as ``(plugin, HostChange)`` pairs."""
    from .plugin.hooks import Catalog
    return Catalog().host_plan(requirements, host)


def command_group(cli: click.Group, name: str) -> click.Group:
    """A built-in command group a plugin adds subcommands to, e.g. ``command_group(cli, "host")``."""
    getter = getattr(cli, "builtin", None)
    group = getter(name) if getter is not None else cli.commands.get(name)
    import click
    if not isinstance(group, click.Group):
        raise PluginError(f"virtscenario has no command group {name!r}")
    return group
