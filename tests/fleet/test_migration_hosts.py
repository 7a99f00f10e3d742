"""The migration scenario's ``migration.hosts`` by inventory names: the CPU baseline is computed by the real
daemon over both of its transports (``virConnectBaselineHypervisorCPU`` with the migratable flag)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from .conftest import ROOT

_SRC = ROOT / "plugins" / "scenario_migration" / "src"  # a third-party plugin: not installed by the default setup
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import virtscenario_migration  # noqa: E402


@pytest.fixture
def virtscenario_plugins() -> list[Any]:
    return [virtscenario_migration]


@pytest.mark.libvirtd
def test_inventory_names_give_the_baseline_over_those_hosts(
        tcp_uri: str, ssh_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        write_inventory: Callable[..., Path], virtscenario_render: Callable[..., Any]) -> None:
    inv = write_inventory({"local": tcp_uri, "remote": ssh_uri})
    (tmp_path / "virtscenario").mkdir()
    inv.rename(tmp_path / "virtscenario" / "hosts.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = virtscenario_render("migration", settings={"migration.hosts": "local,remote", "vm.virt_type": "qemu"})
    cpu = result.tree.find("cpu")
    assert (cpu.get("mode"), cpu.get("check")) == ("custom", "full")
    assert cpu.find("model").get("fallback") == "forbid" and cpu.find("model").text
    assert result.tree.find("os/type").get("machine").startswith("pc-q35-")
    assert any(f"the migratable baseline of local ({tcp_uri}), remote ({ssh_uri})" in n for n in result.note_texts())
    from virtscenario.api import VirtscenarioError
    with pytest.raises(VirtscenarioError, match="^migration.hosts: no host 'remot' in .*; did you mean 'remote'"):
        virtscenario_render("migration", settings={"migration.hosts": "local,remot", "vm.virt_type": "qemu"})
