"""BuildContext.adapt_setting: a customize_model hook that changes what a setting decides says so.

The setting becomes layer ``adapted`` (origin: the plugin) with the hook's rationale, in the
settings later hooks and vm.yaml see; the value is checked like a ``--set`` value.
"""

from __future__ import annotations

from typing import Any

import pytest
from virtscenario.api import Choice, ConfigError, Scenario, VirtscenarioError, hookimpl

REF = "https://docs.kernel.org/admin-guide/mm/hugetlbpage.html"


class Smaller:
    """A plugin whose scenario asks for 1 GiB pages and whose hook falls back to 2 MiB in the model."""

    def __init__(self, key: str = "memory.hugepage_size", value: Any = "2M") -> None:
        self.key, self.value = key, value
        self.seen: Any = None

    @hookimpl
    def register_scenarios(self) -> list[Scenario]:
        return [Scenario("pages", "hugepage test scenario", "1.0", settings=(
            Choice("memory.hugepages", True, "static hugepages", REF),
            Choice("memory.hugepage_size", "1G", "1 GiB pages", REF)))]

    @hookimpl
    def customize_model(self, domain: Any, settings: Any, context: Any) -> None:
        domain.memory_backing.hugepages[0].size_kib = 2048
        context.adapt_setting(self.key, self.value, "no 1 GiB page is reserved on this host", REF, "pages-plugin")

    @hookimpl
    def postprocess_xml(self, root: Any, settings: Any, context: Any) -> None:
        self.seen = settings["memory.hugepage_size"]


def test_the_adapted_setting_says_what_the_model_uses(virtscenario_render) -> None:
    plugin = Smaller()
    result = virtscenario_render("pages", plugins=[plugin])
    assert result.tree.find("memoryBacking/hugepages/page").get("size") == "2048"
    item = result.settings["memory.hugepage_size"]
    assert (item.value, item.layer, item.origin, item.source) == (2 * 1024**2, "adapted", "pages-plugin",
                                                                  "adapted by pages-plugin")
    assert (item.rationale, item.reference) == ("no 1 GiB page is reserved on this host", REF)
    assert plugin.seen == item  # later hooks see it too
    assert {r.key: r.value for r in result.host_requirements}["memory.hugepage_size"] == 2 * 1024**2


@pytest.mark.parametrize("key, value, error, message", [
    ("memory.hugepage_size", "two", ConfigError, "setting 'memory.hugepage_size' (adapted by pages-plugin): "
                                                 "'two' is not a size"),
    ("memory.nonsense", 1, VirtscenarioError, "pages-plugin: adapt_setting('memory.nonsense'): no such setting"),
])
def test_a_bad_adaptation_is_one_line(virtscenario_render, key: str, value: Any, error: type,
                                      message: str) -> None:
    with pytest.raises(error) as caught:
        virtscenario_render("pages", plugins=[Smaller(key, value)])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_host_keys_go_through_require_host(virtscenario_render) -> None:
    with pytest.raises(VirtscenarioError, match="failed in customize_model: ValueError: 'host.ksm' is a host "
                                                "requirement: use require_host"):
        virtscenario_render("pages", plugins=[Smaller("host.ksm", "off")])
