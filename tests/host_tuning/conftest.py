"""Fixtures: fake host trees, the private plugin manager, a CLI runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from click.testing import CliRunner
from virtscenario.api import HostRoot
from virtscenario.plugin.hooks import Catalog
from virtscenario.plugin.manager import VirtscenarioPluginManager

from . import fakehost
from .support import make_pm, use_pm


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> VirtscenarioPluginManager:
    """A private plugin manager used by the CLI (get_plugin_manager is patched where it is looked up)."""
    manager = make_pm()
    use_pm(monkeypatch, manager)
    return manager


@pytest.fixture
def catalog(pm: VirtscenarioPluginManager) -> Catalog:
    return Catalog(pm)


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[..., HostRoot]:
    """make_host(spec) -> HostRoot over a freshly generated fake tree."""
    counter = {"n": 0}

    def make(spec: Optional[fakehost.HostSpec] = None) -> HostRoot:
        counter["n"] += 1
        root = fakehost.build(tmp_path / f"host{counter['n']}", spec or fakehost.amd_sev())
        return HostRoot(root)
    return make


@pytest.fixture
def run_cli(pm: VirtscenarioPluginManager) -> Callable[..., Any]:
    """run_cli(args, input=None) -> click Result, on virtscenario.cli.app.cli with the private plugins."""
    from virtscenario.cli.app import cli

    def run(args: list[str], input: Optional[str] = None) -> Any:
        return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)
    return run
