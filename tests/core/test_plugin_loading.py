"""Loading through real entry points: a test distribution installed into a temporary site dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VIRTSCENARIO = [sys.executable, "-m", "virtscenario"]

MODULES = {
    "vs_ok_plugin.py": '''
from virtscenario.api import Choice, Scenario, hookimpl
VIRTSCENARIO_API = (1, 0)

@hookimpl
def register_scenarios():
    yield Scenario("okscen", "From an installed test distribution", "3.1",
                   settings=(Choice("vm.vcpus", 3, "three", "https://libvirt.org/formatdomain.html"),))
''',
    "vs_zz_dup.py": '''
from virtscenario.api import Choice, Scenario, hookimpl
VIRTSCENARIO_API = (1, 0)

@hookimpl
def register_scenarios():
    yield Scenario("okscen", "A second plugin with the same scenario name", "9.9")
''',
    "vs_broken_import.py": "import this_module_does_not_exist\n",
    "vs_bad_hook.py": '''
from virtscenario.api import hookimpl

@hookimpl
def register_scenario():   # misspelled: register_scenarios
    return []
''',
    "vs_bad_args.py": '''
from virtscenario.api import hookimpl

@hookimpl
def customize_model(domain, settings, context, nonsense):
    pass
''',
    "vs_raises.py": '''
raise RuntimeError("boom while registering")
''',
    "vs_bad_wrapper.py": '''
from virtscenario.api import hookimpl

@hookimpl(wrapper=True)
def postprocess_xml(root, settings, context):   # a wrapper must be a generator
    return None
''',
    "vs_future.py": '''
from virtscenario.api import hookimpl
VIRTSCENARIO_API = (2, 0)

@hookimpl
def register_scenarios():
    return []
''',
}
ENTRY_POINTS = {
    "ok": "vs_ok_plugin", "zz_dup": "vs_zz_dup", "broken_import": "vs_broken_import", "bad_hook": "vs_bad_hook",
    "bad_args": "vs_bad_args", "raises": "vs_raises", "bad_wrapper": "vs_bad_wrapper", "future": "vs_future",
}
BROKEN = {"broken_import", "bad_hook", "bad_args", "raises", "bad_wrapper"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding an installed distribution 'vs-testplugins' (dist-info + modules)."""
    site = tmp_path_factory.mktemp("site")
    for name, code in MODULES.items():
        (site / name).write_text(code)
    info = site / "vs_testplugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vs-testplugins\nVersion: 1.0\n")
    lines = ["[virtscenario]"] + [f"{k} = {v}" for k, v in ENTRY_POINTS.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def run(site: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    return subprocess.run([*VIRTSCENARIO, *args], capture_output=True, text=True, env=full_env, check=False)


def test_broken_plugins_are_reported_once_and_the_cli_keeps_working(site):
    result = run(site, "plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    assert infos["ok"]["status"] == "active"
    assert infos["ok"]["distribution"] == "vs-testplugins" and infos["ok"]["version"] == "1.0"
    assert infos["ok"]["hooks"] == ["register_scenarios"] and infos["ok"]["builtin"] is False
    assert infos["core_rules"]["builtin"] is True and infos["core_rules"]["status"] == "active"
    for name in BROKEN:
        assert infos[name]["status"] == "error", name
        assert infos[name]["error"], name
    assert "ModuleNotFoundError" in infos["broken_import"]["error"]
    assert "register_scenario" in infos["bad_hook"]["error"] and "register_scenarios" in infos["bad_hook"]["error"]
    assert "nonsense" in infos["bad_args"]["error"]
    assert "boom while registering" in infos["raises"]["error"]
    assert "generator" in infos["bad_wrapper"]["error"]
    assert infos["future"]["status"] == "incompatible" and "2.0" in infos["future"]["error"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: plugin")]
    assert len(warnings) == len(BROKEN) + 1  # +1: the incompatible one
    assert all(line.count("\n") == 0 for line in warnings)
    assert "Traceback" not in result.stderr


def test_scenarios_from_entry_points_and_name_conflict(site):
    result = run(site, "scenarios", "list", "--json")
    assert result.returncode == 0, result.stderr
    [ok] = [s for s in json.loads(result.stdout) if s["name"] == "okscen"]
    # 'ok' sorts before 'zz_dup': it wins, and the conflict names both plugins.
    assert ok == {"name": "okscen", "summary": "From an installed test distribution", "plugin": "ok",
                  "version": "3.1"}
    assert "scenario 'okscen' is provided by plugins 'ok' and 'zz_dup'; using 'ok'" in result.stderr


def test_strict_mode_makes_a_broken_plugin_fatal(site):
    result = run(site, "scenarios", "list", env={"VIRTSCENARIO_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: plugin '")
    assert len(result.stderr.strip().splitlines()) == 1


def test_disabled_plugins_are_skipped(site):
    result = run(site, "plugins", "list", "--json",
                 env={"VIRTSCENARIO_DISABLE_PLUGINS": "broken_import,bad_hook,bad_args,raises,bad_wrapper,future"})
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    assert result.stderr == ""
    assert {infos[n]["status"] for n in BROKEN | {"future"}} == {"disabled"}
    assert infos["ok"]["status"] == "active"


def test_list_plugins_flag_table(site):
    result = run(site, "--list-plugins", env={"VIRTSCENARIO_DISABLE_PLUGINS": "raises"})
    assert result.returncode == 0
    header = result.stdout.splitlines()[0].split()
    assert header == ["NAME", "VERSION", "DISTRIBUTION", "STATUS", "HOOKS"]
    assert any(line.startswith("ok ") and "active" in line for line in result.stdout.splitlines())
    assert any(line.startswith("raises ") and "disabled" in line for line in result.stdout.splitlines())


def test_version_does_not_import_plugins_lxml_or_pluggy(site):
    code = ("import sys; from virtscenario.cli.app import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules\n"
            "             if m.startswith(('vs_', 'lxml', 'libvirt', 'yaml', 'prompt_toolkit', 'pluggy'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(site)}, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_print_xml_imports_only_what_it_uses(tmp_path):
    """create --print-xml is the start-up path docs/performance.md measures: no store writers,
    tables, progress, secrets, libvirt, fleet, or stdlib modules only other commands need."""
    code = ("import sys; from virtscenario.cli.app import main\n"
            "try:\n    main(['create', 'desktop', '--name', 'b', '--print-xml', '--output', sys.argv[1]])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, check=True)
    assert "<domain" in result.stdout, result.stderr
    assert "Warning: " in result.stderr  # notes are printed (and wrapped) on this path
    loaded = set(eval(result.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own repr of a list
    unwanted = {"virtscenario.cli.output", "virtscenario.cli.progress", "virtscenario.cli.summary",
                "virtscenario.vm.store", "virtscenario.fleet", "libvirt", "textwrap", "secrets", "difflib",
                "unicodedata", "subprocess", "tempfile", "json", "prompt_toolkit"}
    assert loaded & unwanted == set()
