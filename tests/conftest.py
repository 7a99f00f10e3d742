"""Shared fixtures: fresh plugin managers, CLI runs against them, isolated user dirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from virtscenario.plugin.hooks import Catalog
from virtscenario.plugin.manager import VirtscenarioPluginManager
from virtscenario.testing import make_plugin_manager


def make_pm(*plugins: Any, defaults: bool = True) -> VirtscenarioPluginManager:
    """A plugin manager holding the core's essential plugins (optionally) and exactly ``plugins``
    (objects, modules, or ``(name, object)`` pairs): the SDK's own factory, so tests and plugin
    authors build plugin managers the same way."""
    return make_plugin_manager(plugins, core=defaults)


@pytest.fixture
def pm_factory() -> Callable[..., VirtscenarioPluginManager]:
    return make_pm


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's real config or store during tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    # Messages are checked as whole lines; the tests of the 80-column layout set COLUMNS themselves.
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("VIRTSCENARIO_HOST_ROOT", raising=False)
    monkeypatch.delenv("VIRTSCENARIO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("VIRTSCENARIO_DISABLE_PLUGINS", raising=False)


def patch_plugin_manager(monkeypatch: pytest.MonkeyPatch, pm: VirtscenarioPluginManager) -> None:
    """Make the CLI (and Catalog()) use ``pm``; commands plugins add do not leak into other tests."""
    import virtscenario.cli.app
    import virtscenario.cli.commands.host
    import virtscenario.plugin.manager

    monkeypatch.setattr(virtscenario.plugin.manager, "get_plugin_manager", lambda: pm)
    # The root group and the built-in host group (which plugins extend) on copies of their tables.
    monkeypatch.setattr(virtscenario.cli.app.cli, "commands", dict(virtscenario.cli.app.cli.commands))
    monkeypatch.setattr(virtscenario.cli.app.cli, "_plugins_loaded", False, raising=False)
    host = virtscenario.cli.commands.host.host_group
    monkeypatch.setattr(host, "commands", dict(host.commands))


@pytest.fixture
def use_pm(monkeypatch: pytest.MonkeyPatch) -> Callable[[VirtscenarioPluginManager], None]:
    """Make the CLI (and Catalog()) use the given plugin manager."""
    return lambda pm: patch_plugin_manager(monkeypatch, pm)


@pytest.fixture
def catalog_of() -> Callable[..., Catalog]:
    return lambda *plugins: Catalog(make_pm(*plugins))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    return path


@pytest.fixture
def run_cli(use_pm: Callable[[VirtscenarioPluginManager], None], capsys: pytest.CaptureFixture[str]) -> Callable:
    """``run_cli(pm)`` gives ``invoke(*args) -> (exit code, stdout, stderr)`` running the real
    ``virtscenario`` entry point (``cli.main``) in-process with the plugin manager ``pm``."""
    from virtscenario.cli.app import main

    def bind(pm: VirtscenarioPluginManager) -> Callable[..., tuple[int, str, str]]:
        use_pm(pm)

        def invoke(*args: str) -> tuple[int, str, str]:
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            out, err = capsys.readouterr()
            return code, out, err
        return invoke
    return bind
