"""pytest helpers for plugin authors (registered as the ``pytest11`` plugin ``virtscenario``).

pytest loads this module in every run where virtscenario is installed, so it
imports nothing heavy at import time (lxml, libvirt and the pipeline are imported
inside the helpers) and every fixture name starts with ``virtscenario_``.

Fixtures:

``virtscenario_plugins``
    Override it to list your plugin modules; ``virtscenario_pm`` and
    ``virtscenario_render`` use it. Default: no plugin besides the core's.
``virtscenario_pm`` / ``virtscenario_make_pm``
    A plugin manager holding exactly the given plugins (plus the core's default
    plugins unless ``core=False``); no installed entry point is loaded.
``virtscenario_render``
    ``virtscenario_render(name, plugins=None, **opts)`` generates a scenario's VM
    through the real pipeline and returns a :class:`RenderResult` (``.xml``,
    ``.tree``, ``.settings``, ``.domain``, ``.notes``, ``.host_requirements``).
``virtscenario_host_root`` / ``virtscenario_make_host_root``
    A fake host (:class:`virtscenario.api.HostRoot` over a temporary directory)
    with ``/proc`` and ``/sys`` files: cpuinfo, meminfo, cmdline, CPU topology,
    NUMA node, hugepage pools and the usual tunables. Any other file goes in with
    ``virtscenario_make_host_root(files={"/etc/fstab": "..."})``.
``virtscenario_host_checks`` / ``virtscenario_host_plan``
    ``virtscenario_host_checks(host)`` runs the host checks of ``virtscenario_plugins``
    (``CheckOutcome`` items: ``.plugin``, ``.check``, ``.result``);
    ``virtscenario_host_plan(scenario, host, **render_opts)`` returns the
    ``(plugin, HostChange)`` pairs the plugins plan for one VM of the scenario.
``virtscenario_libvirt_conn`` / ``virtscenario_make_libvirt_conn``
    A private libvirt test-driver connection (``test:///<tmp>/node.xml``: its own
    state, unlike the shared ``test:///default``), closed at teardown.

The plain functions (:func:`make_plugin_manager`, :func:`render_scenario`,
:func:`make_fake_host`, :func:`installed_plugins`, :func:`host_checks`,
:func:`host_plan`) work outside pytest too; they live in :mod:`virtscenario.sdk.harness`
and :mod:`virtscenario.sdk.fakehost`, which ``virtscenario plugin check`` uses without pytest.
``virtscenario_render`` fails when libvirt's RelaxNG schemas are missing (``require_schema=False``
opts out).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

import pytest

from ..sdk.fakehost import make_fake_host
from ..sdk.harness import (
    MissingSchemaError,
    PluginSpec,
    RenderResult,
    host_checks,
    host_plan,
    installed_plugins,
    make_plugin_manager,
    render_scenario,
)
from .libvirt import libvirt_node_xml, open_test_connection

if TYPE_CHECKING:  # pragma: no cover
    from ..host.root import HostRoot
    from ..plugin.manager import VirtscenarioPluginManager



def __getattr__(name: str) -> Any:
    if name == "CORE_PLUGINS":  # the core's essential plugins; imported lazily (pluggy) like the rest
        from ..plugin.manager import ESSENTIAL_PLUGINS
        return ESSENTIAL_PLUGINS
    raise AttributeError(f"module 'virtscenario.testing' has no attribute {name!r}")


__all__ = ["CORE_PLUGINS", "MissingSchemaError", "RenderResult", "host_checks", "host_plan", "installed_plugins",
           "libvirt_node_xml", "make_fake_host", "make_plugin_manager", "open_test_connection", "render_scenario"]


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def virtscenario_plugins() -> Sequence[PluginSpec]:
    """Override in your tests: the plugin modules virtscenario_pm and virtscenario_render use."""
    return ()


@pytest.fixture
def virtscenario_make_pm() -> Callable[..., VirtscenarioPluginManager]:
    """Factory: ``virtscenario_make_pm(*plugins, core=True)``."""
    def make(*plugins: PluginSpec, core: bool = True) -> VirtscenarioPluginManager:
        return make_plugin_manager(plugins, core=core)
    return make


@pytest.fixture
def virtscenario_pm(virtscenario_plugins: Sequence[PluginSpec]) -> VirtscenarioPluginManager:
    """A plugin manager with the core's default plugins and ``virtscenario_plugins``."""
    return make_plugin_manager(virtscenario_plugins)


@pytest.fixture
def virtscenario_render(virtscenario_plugins: Sequence[PluginSpec], tmp_path: Path) -> Callable[..., RenderResult]:
    """``virtscenario_render(name, plugins=None, **opts)``: see :func:`render_scenario`.

    ``plugins=None`` uses the ``virtscenario_plugins`` fixture.
    """
    def render(name: str, plugins: Optional[Iterable[PluginSpec]] = None, **opts: Any) -> RenderResult:
        opts.setdefault("store_root", tmp_path / "store")
        return render_scenario(name, virtscenario_plugins if plugins is None else plugins, **opts)
    return render


@pytest.fixture
def virtscenario_make_host_root(tmp_path: Path) -> Callable[..., HostRoot]:
    """Factory: ``virtscenario_make_host_root(cpus=16, threads_per_core=2, ...)``: see :func:`make_fake_host`."""
    count = iter(range(1_000_000))

    def make(**shape: Any) -> HostRoot:
        return make_fake_host(tmp_path / f"host{next(count)}", **shape)
    return make


@pytest.fixture
def virtscenario_host_root(virtscenario_make_host_root: Callable[..., HostRoot]) -> HostRoot:
    """A fake 8-CPU, 1-socket, 16 GiB Intel host offering 2 MiB and 1 GiB hugepages."""
    return virtscenario_make_host_root()


@pytest.fixture
def virtscenario_make_libvirt_conn(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``virtscenario_make_libvirt_conn(cpus=8, sockets=1, threads_per_core=1, domains=[...])``."""
    conns = []
    count = iter(range(1_000_000))

    def make(**node: Any) -> Any:
        directory = tmp_path / f"libvirt{next(count)}"
        directory.mkdir()
        conn = open_test_connection(directory, **node)
        conns.append(conn)
        return conn
    yield make
    for conn in conns:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a connection the test closed itself
            pass


@pytest.fixture
def virtscenario_libvirt_conn(virtscenario_make_libvirt_conn: Callable[..., Any]) -> Any:
    """A private test-driver connection: 8 CPUs, 16 GiB, no domain."""
    return virtscenario_make_libvirt_conn()


@pytest.fixture
def virtscenario_host_checks(virtscenario_plugins: Sequence[PluginSpec]) -> Callable[..., list[Any]]:
    """``virtscenario_host_checks(host, plugins=None)``: see :func:`host_checks`."""
    def run(host: HostRoot, plugins: Optional[Iterable[PluginSpec]] = None) -> list[Any]:
        return host_checks(host, virtscenario_plugins if plugins is None else plugins)
    return run


@pytest.fixture
def virtscenario_host_plan(virtscenario_plugins: Sequence[PluginSpec], tmp_path: Path) -> Callable[..., list[Any]]:
    """``virtscenario_host_plan(scenario, host, plugins=None, **render_opts)``: see :func:`host_plan`."""
    def plan(scenario: str, host: HostRoot, plugins: Optional[Iterable[PluginSpec]] = None,
             **opts: Any) -> list[Any]:
        opts.setdefault("store_root", tmp_path / "store")
        return host_plan(scenario, host, virtscenario_plugins if plugins is None else plugins, **opts)
    return plan
