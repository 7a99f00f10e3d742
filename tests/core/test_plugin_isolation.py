"""A plugin's failure stays with that plugin: registration hooks, host checks, commands, lint warnings,
the plugins directory. Run through the real ``virtscenario`` entry point in a subprocess, with the
built-in plugins installed, so "everything else works" is checked against the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from virtscenario import API_VERSION
from virtscenario.api import Choice, Scenario, SettingSpec, hookimpl
from virtscenario.errors import PluginError
from virtscenario.plugin.hooks import Catalog
from virtscenario.testing import make_fake_host

from ..conftest import make_pm

REF = "https://libvirt.org/formatdomain.html"

#: plugin file name -> source. Every plugin also contributes a scenario or a setting, so a test can
#: see that *all* of a disabled plugin's contributions are gone, not only the failing hook's.
PLUGINS = {
    "scen_fail": '''
from virtscenario.api import SettingSpec, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_settings():
    yield SettingSpec("scenfail.knob", "int", 1, "x", rationale="r", reference="ref")

@hookimpl
def register_scenarios():
    raise RuntimeError("boom in scenarios")
''',
    "set_fail": '''
from virtscenario.api import Scenario, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_settings():
    raise KeyError("boom in settings")

@hookimpl
def register_scenarios():
    yield Scenario("setfailscen", "from a plugin whose settings failed", "1.0")
''',
    "cmd_fail": '''
from virtscenario.api import Scenario, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_scenarios():
    yield Scenario("cmdfailscen", "from a plugin whose commands failed", "1.0")

@hookimpl
def register_commands(cli):
    raise RuntimeError("boom in commands")
''',
    "check_fail": '''
from virtscenario.api import hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def host_checks():
    raise RuntimeError("boom in host_checks")
''',
    "check_run_fail": '''
from virtscenario.api import CheckResult, HostCheck, hookimpl
VIRTSCENARIO_API = (1, 2)

def _ok(host):
    return CheckResult("lab-ok", "PASS", "fine")

def _bad(host):
    raise ValueError("check crashed")

@hookimpl
def host_checks():
    yield HostCheck("lab-ok", "passes", _ok)
    yield HostCheck("lab-bad", "crashes", _bad)
''',
    "wrong_type": '''
from virtscenario.api import hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_scenarios():
    return [{"name": "dict-not-scenario"}]
''',
    "dup_key": '''
from virtscenario.api import Scenario, SettingSpec, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_settings():
    yield SettingSpec("disk.cache", "str", "x", "redeclares a core key", rationale="r", reference="ref")

@hookimpl
def register_scenarios():
    yield Scenario("dupscen", "from a plugin that redeclared a core key", "1.0")
''',
    "good": '''
from virtscenario.api import Choice, Scenario, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_scenarios():
    yield Scenario("goodscen", "still works", "1.0",
                   settings=(Choice("vm.vcpus", 3, "three", "https://libvirt.org/formatdomain.html"),))
''',
}
FAILING = {"scen_fail": "register_scenarios", "set_fail": "register_settings", "cmd_fail": "register_commands",
           "check_fail": "host_checks", "wrong_type": "register_scenarios", "dup_key": "register_settings"}


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("plugins")
    for name, code in PLUGINS.items():
        (directory / f"{name}.py").write_text(code)
    return directory


@pytest.fixture(scope="module")
def fake_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("host")
    make_fake_host(root)
    return root


def run(*args: str, directory: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    full.update(env)
    if directory is not None:
        full["VIRTSCENARIO_PLUGINS_DIR"] = str(directory)
    return subprocess.run([sys.executable, "-m", "virtscenario", *args], capture_output=True, text=True,
                          env=full, check=False, timeout=120)


def warnings_about(stderr: str, plugin: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"Warning: plugin {plugin!r}")]


def test_builtin_scenarios_work_despite_failing_registration_hooks(plugins_dir: Path) -> None:
    result = run("create", "desktop", "--name", "iso", "--print-xml", directory=plugins_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('<domain type="kvm">')
    assert "Traceback" not in result.stderr
    for plugin, hook in FAILING.items():
        if hook in ("register_commands", "host_checks"):
            continue  # create neither lists commands nor runs host checks
        [line] = warnings_about(result.stderr, plugin)  # one line per failing plugin, never more
        assert f"failed in {hook}" in line and f"VIRTSCENARIO_DISABLE_PLUGINS={plugin} skips it" in line
    listed = run("scenarios", "list", "--json", directory=plugins_dir)
    assert listed.returncode == 0, listed.stderr
    names = {s["name"] for s in json.loads(listed.stdout)}
    assert {"desktop", "goodscen", "cmdfailscen"} <= names
    # Everything a disabled plugin contributed is gone, not only what the failing hook returned.
    assert not names & {"setfailscen", "dupscen"}
    settings = run("settings", "--json", directory=plugins_dir)
    keys = {s["key"] for s in json.loads(settings.stdout)}
    assert "scenfail.knob" not in keys and "disk.cache" in keys


def test_plugins_list_shows_the_failure(plugins_dir: Path) -> None:
    result = run("plugins", "list", "--json", directory=plugins_dir)
    assert result.returncode == 0, result.stderr
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    for plugin, hook in FAILING.items():
        assert infos[plugin]["status"] == "error", plugin
        assert infos[plugin]["error"].startswith(f"failed in {hook}: "), infos[plugin]
    assert "boom in scenarios" in infos["scen_fail"]["error"]
    assert "KeyError" in infos["set_fail"]["error"]
    assert "must yield Scenario, got dict" in infos["wrong_type"]["error"]
    assert "setting 'disk.cache' is already declared by the core" in infos["dup_key"]["error"]
    assert {infos[n]["status"] for n in ("good", "check_run_fail", "desktop", "host_tuning")} == {"active"}
    assert infos["scen_fail"]["distribution"] == f"plugins-dir {plugins_dir}"
    table = run("plugins", "list", directory=plugins_dir)
    [row] = [line for line in table.stdout.splitlines() if line.startswith("cmd_fail ")]
    assert "error (failed in register_commands: RuntimeError: boom in commands)" in " ".join(row.split())


@pytest.mark.parametrize("plugin", ["scen_fail", "set_fail", "wrong_type", "dup_key"])
def test_strict_mode_makes_a_registration_failure_fatal(plugins_dir: Path, tmp_path: Path, plugin: str) -> None:
    (tmp_path / f"{plugin}.py").write_text(PLUGINS[plugin])
    result = run("create", "desktop", "--name", "x", "--print-xml", directory=tmp_path,
                 VIRTSCENARIO_STRICT_PLUGINS="1")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: plugin {plugin!r} failed in {FAILING[plugin]}: ")
    assert line.endswith(f"(VIRTSCENARIO_DISABLE_PLUGINS={plugin} skips it)")
    # And without strict mode the same plugin only costs a warning.
    assert run("create", "desktop", "--name", "x", "--print-xml", directory=tmp_path).returncode == 0


def test_register_commands_failure_leaves_help_and_host_commands(plugins_dir: Path, fake_host: Path) -> None:
    helped = run("--help", directory=plugins_dir)
    assert helped.returncode == 0, helped.stderr
    assert "create" in helped.stdout and "host" in helped.stdout
    [line] = warnings_about(helped.stderr, "cmd_fail")
    assert "failed in register_commands" in line
    host_help = run("host", "--help", directory=plugins_dir)
    assert host_help.returncode == 0, host_help.stderr
    for sub in ("check", "plan", "apply", "revert"):  # plan/apply/revert come from host tuning's hook
        assert f"  {sub} " in host_help.stdout, sub
    plan = run("--host-root", str(fake_host), "host", "plan", "desktop", directory=plugins_dir)
    assert plan.returncode == 0, plan.stderr
    assert "Host plan for scenario desktop" in plan.stdout
    checked = run("--host-root", str(fake_host), "host", "check", "--json", directory=plugins_dir)
    assert checked.returncode == 1  # FAILs: the crashing checks below, and a fake host without /dev/kvm
    assert "Traceback" not in checked.stderr
    strict = run("--help", directory=plugins_dir, VIRTSCENARIO_STRICT_PLUGINS="1")
    # Registration runs before commands are listed: the first failure in that order is fatal.
    assert strict.returncode == 1 and "failed in register_settings" in strict.stderr


PARTIAL_COMMANDS = {
    # Adds a root command, a subcommand to a built-in group and an option to a built-in command, then fails.
    "cmd_partial": '''
import click
from virtscenario.api import command_group, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_commands(cli):
    @cli.command("partialcmd")
    def partialcmd():
        click.echo("partial ran")

    @command_group(cli, "host").command("partial-sub")
    def partial_sub():
        click.echo("partial sub ran")

    cli.builtin("create").params.append(click.Option(["--partial-flag"], is_flag=True))
    raise RuntimeError("half done")
''',
    # Registered before and after cmd_partial in call order: their commands stay.
    "a_cmd": '''
import click
from virtscenario.api import command_group, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_commands(cli):
    @cli.command("acmd")
    def acmd():
        click.echo("a ran")
''',
    "z_cmd": '''
import click
from virtscenario.api import command_group, hookimpl
VIRTSCENARIO_API = (1, 2)

@hookimpl
def register_commands(cli):
    @command_group(cli, "host").command("z-sub")
    def z_sub():
        click.echo("z sub ran")
''',
}


def test_a_plugin_disabled_by_its_registration_adds_no_command(tmp_path: Path) -> None:
    """Disabled for the run means all of it: a plugin whose register_scenarios fails has no command
    in --help and none that runs (listing commands used to skip the registration hooks)."""
    (tmp_path / "lab.py").write_text('''
import click
from virtscenario.api import hookimpl
VIRTSCENARIO_API = (1, 3)

@hookimpl
def register_scenarios():
    raise RuntimeError("no scenario today")

@hookimpl
def register_commands(cli):
    @cli.command("lab-clean")
    def lab_clean():
        click.echo("lab ran")
''')
    helped = run("--help", directory=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "lab-clean" not in helped.stdout and "create" in helped.stdout
    [line] = warnings_about(helped.stderr, "lab")
    assert "failed in register_scenarios (RuntimeError: no scenario today)" in line
    ran = run("lab-clean", directory=tmp_path)
    assert ran.returncode == 2 and "lab ran" not in ran.stdout and "No such command 'lab-clean'" in ran.stderr


def test_a_failing_register_commands_leaves_none_of_its_commands(tmp_path: Path) -> None:
    """Disabled "with everything it contributed": what the hook added before it raised is removed,
    and only that: the other plugins' commands (before and after it in call order) stay."""
    for name, code in PARTIAL_COMMANDS.items():
        (tmp_path / f"{name}.py").write_text(code)
    helped = run("--help", directory=tmp_path)
    assert helped.returncode == 0, helped.stderr
    listed = [line.split()[0] for line in helped.stdout.splitlines() if line.startswith("  ") and line.split()]
    assert "acmd" in listed and "create" in listed and "partialcmd" not in listed
    [line] = warnings_about(helped.stderr, "cmd_partial")
    assert "failed in register_commands (RuntimeError: half done)" in line
    host_help = run("host", "--help", directory=tmp_path)
    block = host_help.stdout.partition("Commands:\n")[2].partition("\n\n")[0]
    subs = {line.split()[0] for line in block.splitlines()}
    assert {"check", "plan", "z-sub"} <= subs  # the core's, host tuning's and z_cmd's
    assert "partial-sub" not in host_help.stdout
    assert "--partial-flag" not in run("create", "--help", directory=tmp_path).stdout
    ran = run("partialcmd", directory=tmp_path)
    assert ran.returncode == 2 and "partial ran" not in ran.stdout
    assert "No such command 'partialcmd'" in ran.stderr
    sub = run("host", "partial-sub", directory=tmp_path)
    assert sub.returncode == 2 and "No such command 'partial-sub'" in sub.stderr
    assert run("acmd", directory=tmp_path).stdout == "a ran\n"
    assert run("host", "z-sub", directory=tmp_path).stdout == "z sub ran\n"
    infos = {p["name"]: p for p in json.loads(run("plugins", "list", "--json", directory=tmp_path).stdout)}
    assert infos["cmd_partial"]["status"] == "error" and infos["a_cmd"]["status"] == "active"


def test_host_check_report_survives_failing_plugins(plugins_dir: Path, fake_host: Path) -> None:
    result = run("--host-root", str(fake_host), "host", "check", "--json", directory=plugins_dir)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["lab-ok"]["status"] == "PASS"
    assert rows["lab-bad"]["status"] == "FAIL" and rows["lab-bad"]["plugin"] == "check_run_fail"
    assert "check 'lab-bad' of plugin 'check_run_fail' failed: ValueError: check crashed" in rows["lab-bad"]["message"]
    assert rows["plugin:check_fail"]["status"] == "FAIL"
    assert "boom in host_checks" in rows["plugin:check_fail"]["message"]
    assert "VIRTSCENARIO_DISABLE_PLUGINS=check_fail" in rows["plugin:check_fail"]["advice"]
    # The host tuning plugin's checks are all there.
    assert {"cpu-virt", "kvm-device"} <= set(rows)
    assert {r["plugin"] for r in rows.values()} >= {"host_tuning", "check_run_fail", "check_fail"}


def test_missing_hookimpl_and_api_version_are_warned(tmp_path: Path) -> None:
    (tmp_path / "forgot.py").write_text('''
from virtscenario.api import Scenario

def register_scenarios():            # no @hookimpl: never called
    return [Scenario("forgotten", "x", "1.0")]

def helper():                        # not a hook name: no warning
    return 1
''')
    (tmp_path / "declared.py").write_text("from virtscenario.api import hookimpl\nVIRTSCENARIO_API = (1, 2)\n")
    result = run("plugins", "list", "--json", directory=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = warnings_about(result.stderr, "forgot")
    assert lines == [
        "Warning: plugin 'forgot': register_scenarios() is not decorated with @hookimpl, so virtscenario never "
        "calls it (from virtscenario.api import hookimpl)",
        "Warning: plugin 'forgot': declares no VIRTSCENARIO_API; assuming it was written for plugin API 1.0 "
        f"(add VIRTSCENARIO_API = ({API_VERSION[0]}, {API_VERSION[1]}))",
    ]
    assert warnings_about(result.stderr, "declared") == []
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    assert infos["forgot"]["status"] == "active" and len(infos["forgot"]["warnings"]) == 2
    assert infos["declared"]["warnings"] == []
    assert infos["desktop"]["warnings"] == []  # built-in plugins are not linted for the API marker


def test_essential_plugins_cannot_be_disabled() -> None:
    for name in ("core_rules", "core_choices", "virtscenario"):
        result = run("scenarios", "list", VIRTSCENARIO_DISABLE_PLUGINS=f"desktop,{name}")
        assert result.returncode == 1
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: VIRTSCENARIO_DISABLE_PLUGINS: ") and "cannot be disabled" in line
    assert run("scenarios", "list", VIRTSCENARIO_DISABLE_PLUGINS="desktop").returncode == 0


def test_plugins_dir_option_and_variable(tmp_path: Path) -> None:
    (tmp_path / "devlab.py").write_text(PLUGINS["good"])
    (tmp_path / "_private.py").write_text("raise SystemExit('never imported')\n")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    by_flag = run("--plugins-dir", str(tmp_path), "scenarios", "list", "--json")
    by_env = run("scenarios", "list", "--json", directory=tmp_path)
    for result in (by_flag, by_env):
        assert result.returncode == 0, result.stderr
        assert "goodscen" in {s["name"] for s in json.loads(result.stdout)}
        [line] = warnings_about(result.stderr, "broken")
        assert "not loaded: ModuleNotFoundError" in line and "VIRTSCENARIO_DISABLE_PLUGINS=broken" in line
    missing = run("--plugins-dir", str(tmp_path / "nope"), "scenarios", "list")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    gone = run("scenarios", "list", VIRTSCENARIO_PLUGINS_DIR=str(tmp_path / "nope"))
    assert gone.returncode == 1 and gone.stderr.startswith(f"Error: plugins directory {tmp_path / 'nope'}: ")


# -- in process: the manager and the catalog -----------------------------------------------
class Raises:
    __name__ = "raises"
    VIRTSCENARIO_API = (1, 2)

    @hookimpl
    def register_settings(self):
        raise RuntimeError("nope")


class Keeps:
    __name__ = "keeps"
    VIRTSCENARIO_API = (1, 2)

    @hookimpl
    def register_scenarios(self):
        return [Scenario("kept", "kept", "1.0", settings=(Choice("vm.vcpus", 2, "two", REF),))]

    @hookimpl
    def register_settings(self):
        return [SettingSpec("keeps.knob", "int", 1, "x", rationale="r", reference="ref")]


def test_catalog_drops_a_failed_plugin_and_keeps_the_others() -> None:
    said: list[str] = []
    pm = make_pm(Raises(), Keeps())
    pm.report = said.append
    cat = Catalog(pm)
    assert "kept" in cat.scenarios and "keeps.knob" in cat.registry
    assert pm.infos["raises"].status == "error" and "RuntimeError: nope" in pm.infos["raises"].error
    assert pm.get_plugin("raises") is None and pm.disabled_in_run == {"raises"}
    assert len(said) == 1 and said[0].startswith("Warning: plugin 'raises' failed in register_settings")
    strict = make_pm(Raises(), Keeps())
    strict.strict = True
    with pytest.raises(PluginError, match="plugin 'raises' failed in register_settings: RuntimeError: nope"):
        Catalog(strict).scenarios  # noqa: B018


def test_two_plugins_declaring_one_key_disable_the_later_one() -> None:
    class Second(Keeps):
        __name__ = "zz_second"

        @hookimpl
        def register_scenarios(self):
            return [Scenario("second", "second", "1.0")]

    pm = make_pm(Keeps(), Second())
    cat = Catalog(pm)
    assert set(cat.scenarios) == {"kept"}  # the first in call order keeps the key and its scenario
    assert cat.registry.owner("keeps.knob") == "keeps"
    assert pm.infos["zz_second"].error == ("failed in register_settings: setting 'keeps.knob' is already declared "
                                           "by plugin 'keeps'")


def test_an_essential_plugin_failure_stays_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtscenario.plugin.builtin import rules
    monkeypatch.setattr(rules, "domain_rules", hookimpl(lambda: (_ for _ in ()).throw(RuntimeError("core bug"))))
    with pytest.raises(PluginError, match="plugin 'core_rules' failed in domain_rules: RuntimeError: core bug$"):
        Catalog(make_pm()).rules  # noqa: B018


def test_host_check_is_a_core_command(tmp_path: Path, fake_host: Path) -> None:
    """Without the host tuning distribution, 'host check' still runs every other plugin's checks."""
    (tmp_path / "checks.py").write_text(PLUGINS["check_run_fail"])
    result = run("--host-root", str(fake_host), "host", "check", directory=tmp_path,
                 VIRTSCENARIO_DISABLE_PLUGINS="host_tuning")
    assert result.returncode == 1, result.stderr  # lab-bad FAILs
    assert any(line.split()[:3] == ["PASS", "lab-ok", "fine"] for line in result.stdout.splitlines())
    assert "1 PASS, 0 WARN, 1 FAIL (host root" in result.stdout
    rows = {r["name"]: r for r in json.loads(run("--host-root", str(fake_host), "host", "check", "--json",
                                                 directory=tmp_path,
                                                 VIRTSCENARIO_DISABLE_PLUGINS="host_tuning").stdout)}
    assert set(rows) == {"lab-ok", "lab-bad"} and rows["lab-bad"]["status"] == "FAIL"
    helped = run("host", "--help", VIRTSCENARIO_DISABLE_PLUGINS="host_tuning")
    assert "  check " in helped.stdout and "  plan " not in helped.stdout
