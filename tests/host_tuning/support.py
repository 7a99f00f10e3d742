"""Test scenarios and a private plugin manager for the host tuning tests.

The tests never depend on the scenario plugins shipped in this repository: they
register their own scenarios (desktop-like, securevm-like, computation-like...)
on a fresh plugin manager together with the host tuning plugin.
"""

from __future__ import annotations

from typing import Any

import pytest
import virtscenario_host_tuning
from virtscenario import hookimpl
from virtscenario.api import Choice, Scenario
from virtscenario.plugin.manager import VirtscenarioPluginManager

REF = "https://docs.kernel.org/admin-guide/mm/"


def host_choices(**values: Any) -> tuple[Choice, ...]:
    return tuple(Choice(f"host.{k}", v, f"test rationale for {k}", REF) for k, v in values.items())


def choices(**values: Any) -> tuple[Choice, ...]:
    return tuple(Choice(k.replace("__", "."), v, f"test rationale for {k}", REF) for k, v in values.items())


SCENARIOS = {
    "tdesk": Scenario("tdesk", "desktop-like test scenario", "1.0",
                      host=host_choices(thp="always", thp_defrag="madvise", ksm="on", ksm_merge_across_nodes=True,
                                        swappiness=35, io_scheduler="bfq")),
    "tsec": Scenario("tsec", "securevm-like test scenario", "1.0",
                     host=host_choices(thp="madvise", ksm="off", swappiness=10, io_scheduler="mq-deadline", sev=True)),
    "tcomp": Scenario("tcomp", "computation-like test scenario", "1.0",
                      settings=choices(memory__hugepages=True, memory__hugepage_size="2M", vm__memory="8GiB"),
                      host=host_choices(thp="always", ksm="off", ksm_merge_across_nodes=False, swappiness=10,
                                        io_scheduler="mq-deadline", hugepages=True)),
    "tcomp1g": Scenario("tcomp1g", "computation with 1G pages", "1.0",
                        settings=choices(memory__hugepages=True, memory__hugepage_size="1G", vm__memory="4GiB"),
                        host=host_choices(hugepages=True)),
    "tnuma": Scenario("tnuma", "hugepages spread over NUMA nodes", "1.0",
                      settings=choices(memory__hugepages=True, vm__memory="6GiB"),
                      host=host_choices(hugepages=True, hugepages_nodes="all")),
    "tpin": Scenario("tpin", "pinned vCPUs on hugepages (computation-like)", "1.0",
                     settings=choices(cpu__pinning="auto", memory__hugepages=True, vm__vcpus=2, vm__memory="2GiB"),
                     host=host_choices(hugepages=True)),
    "trt": Scenario("trt", "real-time test scenario", "1.0",
                    host=host_choices(isolated_cpus="2-3", thp="never", ksm="off")),
    "tplain": Scenario("tplain", "no host requirement", "1.0"),
}


class ScenarioPlugin:
    def __init__(self, scenarios: list[Scenario]) -> None:
        self._scenarios = scenarios

    @hookimpl
    def register_scenarios(self) -> list[Scenario]:
        return list(self._scenarios)


def make_pm(*extra: Scenario, with_core: bool = True) -> VirtscenarioPluginManager:
    pm = VirtscenarioPluginManager()
    if with_core:
        from virtscenario.plugin.builtin import choices as core_choices
        from virtscenario.plugin.builtin import rules as core_rules
        pm.register_plugin(core_rules, "core_rules", "virtscenario", "0.1.0", builtin=True)
        pm.register_plugin(core_choices, "core_choices", "virtscenario", "0.1.0", builtin=True)
    pm.register_plugin(virtscenario_host_tuning, "host_tuning", "virtscenario-host-tuning", "0.1.0", builtin=True)
    pm.register_plugin(ScenarioPlugin([*SCENARIOS.values(), *extra]), "testscenarios", "test-scenarios", "1.0")
    return pm


def use_pm(monkeypatch: pytest.MonkeyPatch, manager: VirtscenarioPluginManager) -> None:
    from tests.conftest import patch_plugin_manager
    patch_plugin_manager(monkeypatch, manager)
