"""Shared fixtures: fresh plugin managers, CLI runs against them, isolated user dirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from virtscenario.catalog import Catalog
from virtscenario.default_plugins import choices, rules
from virtscenario.plugins import VirtscenarioPluginManager


def make_pm(*plugins: Any, defaults: bool = True) -> VirtscenarioPluginManager:
    """A plugin manager holding the core defaults (optionally) and exactly ``plugins``.

    Each plugin is an object or module, or a ``(name, object)`` pair.
    """
    pm = VirtscenarioPluginManager()
    if defaults:
        pm.register_plugin(rules, "core_rules", "virtscenario", builtin=True)
        pm.register_plugin(choices, "core_choices", "virtscenario", builtin=True)
    for i, plugin in enumerate(plugins):
        name, obj = plugin if isinstance(plugin, tuple) else (getattr(plugin, "__name__", f"plugin{i}"), plugin)
        pm.register_plugin(obj, name)
    return pm


@pytest.fixture
def pm_factory() -> Callable[..., VirtscenarioPluginManager]:
    return make_pm


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's real config or store during tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("VIRTSCENARIO_HOST_ROOT", raising=False)
    monkeypatch.delenv("VIRTSCENARIO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("VIRTSCENARIO_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def use_pm(monkeypatch: pytest.MonkeyPatch) -> Callable[[VirtscenarioPluginManager], None]:
    """Make the CLI (and Catalog()) use the given plugin manager."""
    import virtscenario.catalog
    import virtscenario.cli
    import virtscenario.plugins

    def apply(pm: VirtscenarioPluginManager) -> None:
        monkeypatch.setattr(virtscenario.plugins, "get_plugin_manager", lambda: pm)
        # Commands added by register_commands must not leak into other tests.
        monkeypatch.setattr(virtscenario.cli.cli, "commands", dict(virtscenario.cli.cli.commands))
        monkeypatch.setattr(virtscenario.cli.cli, "_plugins_loaded", False, raising=False)

    return apply


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
    from virtscenario.cli import main

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
