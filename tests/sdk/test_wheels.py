"""Third-party plugins as an outside user gets them: wheels installed into a fresh venv.

One venv for the module: the core is built from this repository as a wheel and
installed (not editable), then the wheels of plugins/scenario_softrt,
plugins/scenario_migration and three deliberately bad plugins
(tests/sdk/data/*_plugin). Everything runs that venv's ``virtscenario``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from lxml import etree

from .venvs import DATA, PLUGINS, Venv, make_venv

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
THIRD_PARTY = ("virtscenario-softrt", "virtscenario-migration")
BAD = ("virtscenario-broken", "virtscenario-typo", "virtscenario-future")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("wheels")
    venv = make_venv(root / "venv", extra=())
    wheels = venv.build_wheels([PLUGINS / "scenario_softrt", PLUGINS / "scenario_migration",
                                DATA / "broken_plugin", DATA / "typo_plugin", DATA / "future_plugin"], root)
    venv.wheels = wheels  # type: ignore[attr-defined]
    venv.timings["plugin wheels"] = time.monotonic() - started - sum(venv.timings.values())
    yield venv
    print(f"\nwheel venv timings: {', '.join(f'{k} {v:.1f}s' for k, v in venv.timings.items())}, "
          f"module total {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="module")
def installed(venv: Venv) -> Venv:
    venv.pip("install", "-q", str(venv.wheels["scenario_softrt"]), str(venv.wheels["scenario_migration"]))
    return venv


def relaxng_valid(xml: str) -> etree._Element:
    root = etree.fromstring(xml.encode())
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    assert schema.validate(root), schema.error_log
    return root


def plugins_json(venv: Venv, **env: str) -> dict[str, dict]:
    proc = venv.virtscenario("plugins", "list", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


def test_list_plugins_shows_them(installed: Venv) -> None:
    proc = installed.virtscenario("--list-plugins")
    assert proc.returncode == 0 and proc.stderr == ""
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:]}
    assert rows["softrt"][1:4] == ["0.1.0", "virtscenario-softrt", "active"]
    assert rows["migration"][1:4] == ["0.1.0", "virtscenario-migration", "active"]
    listed = plugins_json(installed)
    assert listed["softrt"]["builtin"] is False and listed["migration"]["builtin"] is False
    assert "host_plan" in listed["softrt"]["hooks"] and "customize_model" in listed["migration"]["hooks"]
    scenarios = json.loads(installed.virtscenario("scenarios", "list", "--json").stdout)
    assert {s["name"]: s["plugin"] for s in scenarios} == {"softrt": "softrt", "migration": "migration"}


def test_scenarios_compare_includes_them(installed: Venv) -> None:
    proc = installed.virtscenario("scenarios", "compare", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| setting"))
    assert "softrt" in header and "migration" in header
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| cpu.scheduler "))
    assert "**fifo**" in row


def test_create_softrt_print_xml(installed: Venv) -> None:
    proc = installed.virtscenario("create", "softrt", "--name", "rt1", "--print-xml")
    assert proc.returncode == 0, proc.stderr
    root = relaxng_valid(proc.stdout)
    assert len(root.findall("cputune/vcpupin")) == 2
    assert root.find("cputune/vcpusched").get("scheduler") == "fifo"
    assert root.find("features/pmu").get("state") == "off"
    assert root.find("devices/memballoon").get("model") == "none"
    assert root.find("memoryBacking/locked") is not None
    assert "for an assumed host of 8 CPUs" in proc.stderr and "not schema-validated" not in proc.stderr
    too_many = installed.virtscenario("create", "softrt", "--name", "rt2", "--print-xml", "--vcpus", "8")
    assert too_many.returncode == 1 and too_many.stdout == ""
    assert too_many.stderr.splitlines()[-1].startswith("Error: softrt: the host has 8 CPUs")
    assert "Traceback" not in too_many.stderr


def test_create_migration_print_xml(installed: Venv) -> None:
    proc = installed.virtscenario("create", "migration", "--name", "m1", "--print-xml")
    assert proc.returncode == 0, proc.stderr
    root = relaxng_valid(proc.stdout)
    assert root.find("cpu").get("mode") == "host-model"
    assert [d.get("cache") for d in root.findall("devices/disk/driver")] == ["none"]


@pytest.mark.parametrize(("sets", "message"), [
    (["filesystem.share=on", "memory.access=shared", "memory.source=memfd"], "virtiofs shares do not migrate"),
    (["filesystem.share=on"], "virtiofs"),
])
def test_settings_that_break_migration_fail(installed: Venv, sets: list[str], message: str) -> None:
    args = [x for s in sets for x in ("--set", s)]
    proc = installed.virtscenario("create", "migration", "--name", "m2", "--print-xml", *args)
    assert proc.returncode == 1 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "[rule " in errors[0]


def test_broken_plugins_are_reported_and_the_cli_keeps_working(installed: Venv) -> None:
    installed.pip("install", "-q", *(str(installed.wheels[d]) for d in ("broken_plugin", "typo_plugin",
                                                                       "future_plugin")))
    try:
        proc = installed.virtscenario("scenarios", "list")
        assert proc.returncode == 0
        warnings = proc.stderr.splitlines()
        assert len(warnings) == 3, proc.stderr  # one line per bad plugin, once
        by_name = {name: [w for w in warnings if f"plugin '{name}'" in w] for name in ("broken", "typo", "future")}
        assert all(len(lines) == 1 for lines in by_name.values()), warnings
        assert "ModuleNotFoundError" in by_name["broken"][0]
        assert "register_scenario" in by_name["typo"][0] and "did you mean 'register_scenarios'" in by_name["typo"][0]
        assert "needs plugin API 2.0" in by_name["future"][0]
        assert "softrt" in proc.stdout and "typo" not in proc.stdout and "future" not in proc.stdout
        listed = plugins_json(installed)
        assert (listed["broken"]["status"], listed["typo"]["status"]) == ("error", "error")
        assert listed["future"]["status"] == "incompatible"
        assert "virtscenario_dependency_that_is_not_installed" in listed["broken"]["error"]
        assert installed.virtscenario("--list-plugins").returncode == 0
        create = installed.virtscenario("create", "softrt", "--name", "rt3", "--print-xml")
        assert create.returncode == 0 and create.stdout.startswith("<domain")

        strict = installed.virtscenario("scenarios", "list", VIRTSCENARIO_STRICT_PLUGINS="1")
        assert strict.returncode == 1 and strict.stdout == ""
        assert strict.stderr.count("\n") == 1 and strict.stderr.startswith("Error: plugin '")
        assert "failed to load" in strict.stderr and "Traceback" not in strict.stderr

        skipped = installed.virtscenario("scenarios", "list", VIRTSCENARIO_DISABLE_PLUGINS="broken,typo")
        assert skipped.returncode == 0
        assert [line for line in skipped.stderr.splitlines()] == [w for w in warnings if "'future'" in w]
        listed = plugins_json(installed, VIRTSCENARIO_DISABLE_PLUGINS="broken,virtscenario-typo,future")
        assert {listed[n]["status"] for n in ("broken", "typo", "future")} == {"disabled"}
    finally:
        installed.pip("uninstall", "-q", "-y", *BAD)
    assert {"broken", "typo", "future"}.isdisjoint(plugins_json(installed))


def test_uninstall_removes_them(installed: Venv) -> None:
    """'virtscenario plugins uninstall' (pip of this venv) removes both; 'plugins install' brings them back."""
    try:
        proc = installed.virtscenario("plugins", "uninstall", "-y", *THIRD_PARTY)
        assert proc.returncode == 0, proc.stderr
        listed = plugins_json(installed)
        assert "softrt" not in listed and "migration" not in listed
        gone = installed.virtscenario("create", "softrt", "--name", "rt4", "--print-xml")
        assert gone.returncode == 1 and "unknown scenario 'softrt'" in gone.stderr
        assert installed.virtscenario("scenarios", "list", "--json").stdout.strip() == "[]"
    finally:
        back = installed.virtscenario("plugins", "install", str(installed.wheels["scenario_softrt"]),
                                      str(installed.wheels["scenario_migration"]))
    assert back.returncode == 0, back.stderr
    assert {"softrt", "migration"} <= set(plugins_json(installed))
