"""Every host plan reserves what the VM's XML uses: page size and NUMA nodes, with --vm and without.

A plan without --vm is for the VM ``create`` would build on that host, so it is built the
same way (pinning, NUMA placement, a plugin's page size); a plan with --vm reads what the
build recorded in vm.yaml, which wins over the settings there. Real scenarios (softrt,
computation) on fake host trees (virtscenario.testing's make_fake_host); nothing is applied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import virtscenario_computation
import yaml
from click.testing import CliRunner
from lxml import etree
from virtscenario.sdk.fakehost import make_fake_host

from .support import make_pm, use_pm

# softrt is a third-party-style plugin, not installed by setup (see tests/sdk/conftest.py)
SOFTRT_SRC = str(Path(__file__).resolve().parents[2] / "plugins" / "scenario_softrt" / "src")
if SOFTRT_SRC not in sys.path:
    sys.path.insert(0, SOFTRT_SRC)
import virtscenario_softrt  # noqa: E402

GIB_KIB = 1024 * 1024


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """cli(host, *args) -> click Result; the core, the host tuning plugin, softrt and computation."""
    pm = make_pm()
    pm.register_plugin(virtscenario_softrt, "softrt", "virtscenario-softrt", "0.1.0")
    pm.register_plugin(virtscenario_computation, "computation", "virtscenario-computation", "0.1.0")
    use_pm(monkeypatch, pm)
    from virtscenario.cli.app import cli as app

    def run(host: Any, *args: str) -> Any:
        result = CliRunner().invoke(app, ["--host-root", str(host.root), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result
    return run


def hugepage_rows(cli: Callable[..., Any], host: Any, *args: str) -> dict[str, tuple[str, str]]:
    plan = json.loads(cli(host, "host", "plan", *args, "--json").stdout)
    return {c["knob"]: (c["current"], c["target"]) for c in plan["changes"]
            if c["knob"].startswith(("hugepages", "hugetlbfs", "kernel cmdline (1G"))}


def xml_pages_per_node(xml: bytes) -> dict[int, tuple[int, int]]:
    """{host node: (page size KiB, pages)} the domain XML binds to each node (numatune + guest cells)."""
    root = etree.fromstring(xml)
    size = int(root.find("memoryBacking/hugepages/page").get("size"))
    memory = int(root.findtext("memory"))  # KiB
    numatune = root.find("numatune")
    cells = {int(c.get("id")): int(c.get("memory")) for c in root.findall("cpu/numa/cell")}
    memnodes = numatune.findall("memnode")
    if not memnodes:
        return {int(numatune.find("memory").get("nodeset")): (size, memory // size)}
    return {int(m.get("nodeset")): (size, cells[int(m.get("cellid"))] // size) for m in memnodes}


def create(cli: Callable[..., Any], host: Any, store: Path, scenario: str, name: str) -> bytes:
    cli(host, "create", scenario, "--name", name, "--output", str(store), "--disk", "none")  # no image: not needed
    return (store / name / "domain.xml").read_bytes()


def test_softrt_plans_reserve_the_page_size_its_xml_uses(cli, tmp_path: Path) -> None:
    """1 GiB pages offered, none reserved; 2048 x 2 MiB reserved and mounted on each of 2 nodes."""
    host = make_fake_host(tmp_path / "host", cpus=8, sockets=2, reserved_hugepages={2048: 2048})
    store = tmp_path / "store"
    xml = create(cli, host, store, "softrt", "rt")
    assert xml_pages_per_node(xml) == {0: (2048, 1024)}
    record = yaml.safe_load((store / "rt" / "vm.yaml").read_text())
    # softrt's choice is a setting (adapted, with its reason), not only a change of the model
    [size] = [s for s in record["settings"] if s["key"] == "memory.hugepage_size"]
    assert (size["value"], size["layer"], size["origin"]) == (2 * 1024**2, "adapted", "virtscenario-softrt")
    assert size["rationale"].startswith("2 MiB hugepages, reserved on NUMA node 0; 1 GiB pages are not")
    expected = {"hugepages.2M.node0": ("2048", "2048"), "hugetlbfs.2M": ("mounted", "mounted")}
    assert hugepage_rows(cli, host, "softrt", "--vm", "rt", "--output", str(store)) == expected
    assert hugepage_rows(cli, host, "softrt") == expected  # the VM create would build: the same pages

    # A vm.yaml written before the setting was adapted (settings: 1 GiB; recorded: 2 MiB): the record wins.
    for item in record["settings"]:
        if item["key"] == "memory.hugepage_size":
            item.update(value=GIB_KIB * 1024, layer="scenario", origin="softrt")
    (store / "rt" / "vm.yaml").write_text(yaml.safe_dump(record))
    assert hugepage_rows(cli, host, "softrt", "--vm", "rt", "--output", str(store)) == expected


def test_softrt_without_reserved_pages_plans_2m_pages_on_the_vcpus_node(cli, tmp_path: Path) -> None:
    host = make_fake_host(tmp_path / "host", cpus=8, sockets=2)  # 2M and 1G offered, nothing reserved
    store = tmp_path / "store"
    xml = create(cli, host, store, "softrt", "rt")
    assert xml_pages_per_node(xml) == {0: (2048, 1024)}
    want = {"hugepages.2M.node0": ("0", "1024"), "hugetlbfs.2M": ("not mounted", "mounted (default size)")}
    assert hugepage_rows(cli, host, "softrt") == want
    assert hugepage_rows(cli, host, "softrt", "--vm", "rt", "--output", str(store)) == want


@pytest.mark.parametrize("cpus", [16, 8])  # 16: the vCPUs fit on node 0; 8: they span both nodes
def test_computation_plan_without_a_vm_reserves_pages_where_the_vm_binds_its_memory(cli, tmp_path: Path,
                                                                                   cpus: int) -> None:
    host = make_fake_host(tmp_path / "host", cpus=cpus, sockets=2, memory="64GiB")
    store = tmp_path / "store"
    xml = create(cli, host, store, "computation", "c1")
    per_node = xml_pages_per_node(xml)
    assert sum(pages for _size, pages in per_node.values()) == 4096 and len(per_node) == (1 if cpus == 16 else 2)
    want = {f"hugepages.2M.node{node}": ("0", str(pages)) for node, (_size, pages) in per_node.items()}
    want["hugetlbfs.2M"] = ("not mounted", "mounted (default size)")
    assert hugepage_rows(cli, host, "computation") == want  # not one global hugepages.2M 0 -> 4096
    assert hugepage_rows(cli, host, "computation", "--vm", "c1", "--output", str(store)) == want


def test_a_new_vm_without_hugepages_reserves_none(catalog, make_host) -> None:
    """host.hugepages on, but the built model backs no memory with hugepages: nothing is reserved for it."""
    from virtscenario_host_tuning.inputs import gather
    from virtscenario_host_tuning.plan import build_plan

    from . import fakehost
    host = make_host(fakehost.amd_sev(nodes=2))
    reqs = gather("tcomp", sets=("memory.hugepages=off",), host=host).requirements
    assert [(r.key, r.value, r.vm) for r in reqs if r.key.startswith("memory.")] == [("memory.hugepages", False, None)]
    rows = {a.change.knob: a for a in build_plan(reqs, host).actions if a.change.knob.startswith("hugepages")}
    assert list(rows) == ["hugepages"] and rows["hugepages"].op == "advice"
    assert "no VM in this plan backs its memory with static hugepages" in rows["hugepages"].change.reason
