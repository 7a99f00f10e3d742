"""virtscenario plugin check: a good plugin passes; each kind of defect is reported, naming its hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from virtscenario.sdk import scaffold
from virtscenario.sdk.check import check_plugin

from .venvs import PLUGINS

HEAD = '''
from virtscenario.api import Choice, Scenario, hookimpl
VIRTSCENARIO_API = (1, 2)
REF = "https://libvirt.org/formatdomain.html"
'''
SCENARIO = '''
@hookimpl
def register_scenarios():
    yield Scenario(NAME, "a lab VM", "1.0", settings=(Choice("vm.vcpus", 2, "two vCPUs", REF),))
'''

#: defect -> (module body after HEAD, or None for HEAD + SCENARIO + extra; the hook the problem names; text in it)
DEFECTS: dict[str, tuple[str, str, str]] = {
    "import_error": ("import no_such_module_anywhere\n" + SCENARIO, "import", "ModuleNotFoundError"),
    "typo_hook": (SCENARIO + "\n@hookimpl\ndef register_setting():\n    return []\n", "load",
                  "unknown hook 'register_setting' in plugin 'vscheck_typo_hook' (did you mean 'register_settings'?)"),
    "future_api": (SCENARIO + "\nVIRTSCENARIO_API = (1, 99)\n", "load", "needs plugin API 1.99"),
    "no_hookimpl": (SCENARIO + "\ndef customize_model(domain, settings, context):\n    pass\n", "lint",
                    "customize_model() is not decorated with @hookimpl"),
    "no_api": (SCENARIO + "\ndel VIRTSCENARIO_API\n", "lint", "declares no VIRTSCENARIO_API; assuming it was "
                                                                "written for plugin API 1.0"),
    "private_import": ("from virtscenario.domain.model import Domain\n" + SCENARIO, "lint",
                       "imports virtscenario.domain.model: plugins import only virtscenario.api"),
    "no_hooks": ("", "lint", "implements no hook"),
    "spec_no_rationale": (SCENARIO + '''
from virtscenario.api import SettingSpec
@hookimpl
def register_settings():
    yield SettingSpec("lab.ttl", "int", 7, "days")
''', "register_settings", "its default needs a rationale and a reference"),
    "spec_bad_default": (SCENARIO + '''
from virtscenario.api import SettingSpec
@hookimpl
def register_settings():
    yield SettingSpec("lab.mode", "choice", "fast", "mode", choices=("slow", "medium"), rationale="r", reference=REF)
''', "register_settings", "the default of 'lab.mode' is not valid: setting 'lab.mode': 'fast' is not one of slow, "
                          "medium"),
    "spec_core_key": (SCENARIO + '''
from virtscenario.api import SettingSpec
@hookimpl
def register_settings():
    yield SettingSpec("disk.cache", "str", "none", "mine", rationale="r", reference=REF)
''', "register_settings", "setting 'disk.cache' is already declared by the core"),
    "scenarios_raise": ("@hookimpl\ndef register_scenarios():\n    raise RuntimeError('no scenario today')\n",
                        "register_scenarios", "raised RuntimeError: no scenario today"),
    "wrong_type": ("@hookimpl\ndef register_scenarios():\n    return [{'name': NAME}]\n", "register_scenarios",
                   "must yield Scenario items, got dict"),
    "guest_key_in_host": ('''
@hookimpl
def register_scenarios():
    yield Scenario(NAME, "x", "1.0", host=(Choice("vm.vcpus", 2, "r", REF),))
''', "register_scenarios", "'vm.vcpus' is a guest setting: it belongs in settings=, not host="),
    "bad_value": ('''
@hookimpl
def register_scenarios():
    yield Scenario(NAME, "x", "1.0", settings=(Choice("disk.cache", "fast", "r", REF),))
''', "register_scenarios", "'fast' is not one of none, writeback"),
    "builtin_name": ('''
@hookimpl
def register_scenarios():
    yield Scenario("desktop", "my desktop", "1.0")
''', "register_scenarios", "scenario 'desktop' is a built-in scenario's name"),
    "no_summary": ('''
@hookimpl
def register_scenarios():
    yield Scenario(NAME, " ", "1.0")
''', "register_scenarios", "scenario has no summary"),
    "rule_refuses": (SCENARIO + '''
from virtscenario.api import DomainRule
@hookimpl
def domain_rules():
    yield DomainRule("never", "refuses everything", REF,
                     lambda d, s: ["refused"] if d.metadata.scenario == NAME else [])
''', "domain_rules", "refused [rule never: refuses everything"),
    "rule_raises": (SCENARIO + '''
from virtscenario.api import DomainRule
@hookimpl
def domain_rules():
    yield DomainRule("crashy", "crashes", REF, lambda d, s: [1 / 0])
''', "domain_rules", "rule 'crashy' of plugin 'vscheck_rule_raises' failed: ZeroDivisionError"),
    "rule_unexplained": (SCENARIO + '''
from virtscenario.api import DomainRule
@hookimpl
def domain_rules():
    yield DomainRule("mute", "", "", lambda d, s: [])
''', "domain_rules", "rule 'mute' needs an explanation and a reference"),
    "invalid_xml": (SCENARIO + '''
@hookimpl
def postprocess_xml(root, settings, context):
    if context.scenario.name == NAME:
        from lxml import etree
        etree.SubElement(root.find("devices"), "nonsense")
''', "postprocess_xml", "plugin 'vscheck_invalid_xml' (postprocess_xml) made the domain XML invalid"),
    "model_raises": (SCENARIO + '''
@hookimpl
def customize_model(domain, settings, context):
    if context.scenario.name == NAME:
        raise KeyError("oops")
''', "customize_model", "failed in customize_model: KeyError: 'oops'"),
    "every_vm": (SCENARIO + '''
@hookimpl
def customize_model(domain, settings, context):
    domain.title = "mine"
''', "customize_model", "customize_model changed the VM of another scenario: these hooks run for every VM"),
    "check_raises": (SCENARIO + '''
from virtscenario.api import HostCheck
@hookimpl
def host_checks():
    yield HostCheck("boom", "crashes", lambda host: 1 / 0)
''', "host_checks", "check 'boom' raised ZeroDivisionError: division by zero on a fake host"),
    "check_wrong_result": (SCENARIO + '''
from virtscenario.api import HostCheck
@hookimpl
def host_checks():
    yield HostCheck("num", "returns a number", lambda host: 1)
''', "host_checks", "check 'num' returned int, not CheckResult"),
    "plan_raises": (SCENARIO + '''
@hookimpl
def host_plan(requirements, host):
    raise RuntimeError("cannot plan")
''', "host_plan", "raised RuntimeError: cannot plan"),
    "command_clash": (SCENARIO + '''
@hookimpl
def register_commands(cli):
    @cli.command("create")
    def create():
        pass
''', "register_commands", "command 'create' is a built-in command's name"),
    "host_subcommand_clash": (SCENARIO + '''
from virtscenario.api import command_group
@hookimpl
def register_commands(cli):
    @command_group(cli, "host").command("check")
    def check():
        pass
''', "register_commands", "command 'host check' is a built-in command's name"),
    "commands_raise": (SCENARIO + '''
@hookimpl
def register_commands(cli):
    raise RuntimeError("no commands")
''', "register_commands", "raised RuntimeError: no commands"),
}


#: The VMs of other scenarios the check runs a plugin's per-VM hooks, host_plan and verify_checks on: the
#: core's defaults, then the built-in scenarios (installed here, as scripts/setup.sh installs them).
OTHERS = ["plugin-check-probe", "computation", "desktop", "securevm"]


@pytest.fixture(scope="module")
def builtins() -> dict:
    from virtscenario.cli.app import BUILTIN_COMMANDS, cli
    return {name: cli.builtin(name) for name in BUILTIN_COMMANDS}


def write_plugin(directory: Path, defect: str) -> Path:
    body, _hook, _text = DEFECTS[defect]
    name = f"vscheck_{defect}"
    path = directory / f"{name}.py"
    path.write_text(f"NAME = {name.replace('_', '-')!r}\n" + HEAD + body)
    return path


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_is_reported_with_its_hook(defect: str, tmp_path: Path, builtins: dict) -> None:
    _body, hook, text = DEFECTS[defect]
    report = check_plugin(str(write_plugin(tmp_path, defect)), builtin_commands=builtins)
    assert report.plugin == f"vscheck_{defect}"
    assert [p.hook for p in report.problems] == [hook], report.problems
    assert text in report.problems[0].message, report.problems[0].message


def test_a_good_plugin_passes_and_what_was_done_is_listed(tmp_path: Path, builtins: dict) -> None:
    path = tmp_path / "vscheck_good.py"
    path.write_text("NAME = 'vscheck-good'\n" + HEAD + SCENARIO + '''
from virtscenario.api import CheckResult, DomainRule, HostChange, HostCheck, SettingSpec, command_group, model

@hookimpl
def register_settings():
    yield SettingSpec("vscheck.ttl", "int", 7, "days", minimum=1, rationale="a week", reference=REF)

@hookimpl
def customize_model(domain, settings, context):
    if context.scenario.name == NAME:
        domain.devices.watchdogs.append(model.Watchdog("i6300esb", "reset"))

@hookimpl
def postprocess_xml(root, settings, context):
    if context.scenario.name == NAME:
        from lxml import etree
        etree.SubElement(root.find("devices"), "panic", model="isa")

@hookimpl
def domain_rules():
    yield DomainRule("small", "lab VMs are small", REF,
                     lambda d, s: ["too big"] if d.metadata.scenario == NAME and d.vcpus > 8 else [])

@hookimpl
def host_checks():
    yield HostCheck("tun", "tun device", lambda host: CheckResult("tun", "PASS" if host.exists("/dev/net/tun")
                                                                  else "WARN", "checked"))

@hookimpl
def host_plan(requirements, host):
    for req in requirements:
        if req.key == "host.hugepages_reserve":
            yield HostChange("reserve", "", "", str(req.value), req.rationale, req.scenario, advice_only=True)

@hookimpl
def register_commands(cli):
    @command_group(cli, "host").command("lab-clean")
    def lab_clean():
        pass
''')
    report = check_plugin(str(path), builtin_commands=builtins)
    assert report.problems == []
    assert report.hooks == ("customize_model", "domain_rules", "host_checks", "host_plan", "postprocess_xml",
                            "register_commands", "register_scenarios", "register_settings")
    assert report.scenarios == ("vscheck-good",)
    assert report.done[:5] == [
        "register_commands: host lab-clean",
        "registration: 1 setting(s), 1 scenario(s), 1 rule(s), 1 host check(s)",
        "host check tun: WARN on the fake host (checked)",
        "scenario vscheck-good: valid XML offline and on a fake 8-CPU host; 1 host requirement(s), 1 host plan "
        "change(s) from this plugin",
        f"customize_model, postprocess_xml, domain_rules: leave the VMs of other scenarios ({', '.join(OTHERS)})",
    ]
    # host_plan also gets each other scenario's requirements (their numbers are those scenarios' business).
    [planned] = report.done[5:]
    assert planned.startswith("host_plan for other scenarios' VMs on the fake host: plugin-check-probe: ")
    assert [part.split(":")[0] for part in planned.partition("host: ")[2].split("; ")] == OTHERS


def test_a_site_policy_plugin_may_change_every_vm(tmp_path: Path, builtins: dict) -> None:
    path = tmp_path / "vscheck_policy.py"
    path.write_text(HEAD + '''
@hookimpl
def scenario_overrides(scenario):
    yield Choice("graphics.type", "none", "this site's VMs are headless", REF)
''')
    report = check_plugin(str(path), builtin_commands=builtins)
    assert report.problems == []
    assert report.done[-1] == ("scenario_overrides: change the VMs of other scenarios (plugin-check-probe, desktop; "
                               "a site policy: intended?)")  # computation and securevm are headless already


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "virtscenario", "plugin", "check", *args], capture_output=True,
                          text=True, env=full, cwd=cwd, check=False, timeout=120)


def test_generated_project_passes_from_its_directory(tmp_path: Path) -> None:
    project = scaffold.scaffold("vscheckproj", str(tmp_path / "virtscenario-vscheckproj"))
    result = run(cwd=project)  # default: the current directory
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"Plugin vscheckproj (virtscenario-vscheckproj 0.1.0, {project} "
                        "(entry point vscheckproj = virtscenario_vscheckproj))")
    assert lines[1] == "  hooks: register_scenarios"
    assert lines[-1] == "No problems found."
    data = json.loads(run(str(project), "--json").stdout)
    assert data["ok"] is True and data["problems"] == [] and data["scenarios"] == ["vscheckproj"]


def test_heavy_module_level_import_and_json_problems(tmp_path: Path) -> None:
    """In a fresh process nothing has imported lxml yet, so a plugin that does is caught."""
    (tmp_path / "heavy.py").write_text("from lxml import etree\n" + HEAD.replace("REF =", "NAME = 'heavy'\nREF =")
                                       + SCENARIO)
    result = run(str(tmp_path / "heavy.py"), "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["problems"] == [{"hook": "lint", "scenario": "", "message": (
        "importing the plugin imports lxml at module level: every virtscenario command pays for it; import it "
        "inside the hook that needs it")}]
    text = run(str(tmp_path / "heavy.py"))
    assert "1 problem:\n  - heavy (lint): importing the plugin imports lxml at module level" in text.stdout


def test_missing_schema_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(HEAD.replace("REF =", "NAME = 'plain'\nREF =") + SCENARIO)
    result = run(str(tmp_path / "plain.py"), "--json",
                 VIRTSCENARIO_DOMAIN_SCHEMA=str(tmp_path / "nowhere" / "domain.rng"))
    assert result.returncode == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["hook"] == "schema" and problem["scenario"] == "plain"
    assert "nowhere/domain.rng is not installed" in problem["message"]


def test_installed_plugins_by_name_and_the_third_party_ones_by_path() -> None:
    for target in ("desktop", "virtscenario-computation", str(PLUGINS / "scenario_softrt"),
                   str(PLUGINS / "scenario_migration")):
        result = run(target)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.endswith("No problems found.\n")
    unknown = run("no_such_plugin")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("Error: no installed plugin 'no_such_plugin' (installed: ")
    assert len(unknown.stderr.splitlines()) == 1


def test_paths_that_are_not_plugins(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text(textwrap.dedent('''
        [project]
        name = "x"
        version = "1"
    '''))
    for target, message in ((tmp_path / "missing.py", "no such file or directory"),
                            (tmp_path / "notes.txt", "a plugin file must be a .py module"),
                            (tmp_path / "proj", "declares no [project.entry-points.virtscenario] entry point"),
                            (tmp_path, "is neither a plugin project")):
        result = run(str(target))
        assert result.returncode == 1, target
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: ") and message in line, line


def test_a_failing_host_checks_hook_does_not_hide_render_problems(tmp_path: Path, builtins: dict) -> None:
    path = tmp_path / "vscheck_two.py"
    path.write_text("NAME = 'vscheck-two'\n" + HEAD + '''
@hookimpl
def register_scenarios():
    yield Scenario(NAME, "x", "1.0", settings=(Choice("disk.cache", "fast", "r", REF),))

@hookimpl
def host_checks():
    raise RuntimeError("no checks")
''')
    report = check_plugin(str(path), builtin_commands=builtins)
    assert [(p.hook, p.scenario) for p in report.problems] == [("host_checks", ""),
                                                                ("register_scenarios", "vscheck-two")]


def test_name_finds_a_plugin_of_the_plugins_directory(tmp_path: Path) -> None:
    """NAME resolves like the CLI loads plugins: the --plugins-dir (VIRTSCENARIO_PLUGINS_DIR) module NAME.py
    first, then installed entry points."""
    directory = tmp_path / "dev"
    directory.mkdir()
    (directory / "devlab.py").write_text(HEAD.replace("REF =", "NAME = 'devlab'\nREF =") + SCENARIO)
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    by_flag = subprocess.run([sys.executable, "-m", "virtscenario", "--plugins-dir", str(directory), "plugin",
                              "check", "devlab"], capture_output=True, text=True, env=full, check=False, timeout=120)
    by_env = run("devlab", VIRTSCENARIO_PLUGINS_DIR=str(directory))
    for result in (by_flag, by_env):
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"Plugin devlab ({directory / 'devlab.py'}, from the plugins directory)"
        assert any(line.startswith("  scenario devlab: valid XML offline and on a fake 8-CPU host;") for line in lines)
        assert lines[-1] == "No problems found."
    unknown = run("nolab", VIRTSCENARIO_PLUGINS_DIR=str(directory))
    assert unknown.returncode == 1
    [line] = unknown.stderr.splitlines()
    assert line.startswith("Error: no plugin 'nolab' in the plugins directory or installed (plugins directory "
                           f"{directory}: devlab; installed: computation, ")


def _hookspecs() -> dict[str, tuple[str, ...]]:
    from virtscenario.plugin.manager import VirtscenarioPluginManager
    pm = VirtscenarioPluginManager()
    return {name: tuple(getattr(pm.hook, name).spec.argnames) for name in pm.spec_names()}


@pytest.mark.parametrize("hook", sorted(_hookspecs()))
def test_every_hook_a_plugin_implements_is_called(hook: str, tmp_path: Path, builtins: dict) -> None:
    """A plugin implementing only HOOK, which raises: the check must have called it, so "No problems found"
    means every hook ran at least once (a new hookspec the check does not call fails here)."""
    path = tmp_path / f"only_{hook}.py"
    path.write_text(HEAD + f"\n@hookimpl\ndef {hook}({', '.join(_hookspecs()[hook])}):\n"
                           f"    raise RuntimeError('boom in {hook}')\n")
    report = check_plugin(str(path), builtin_commands=builtins)
    assert [p.hook for p in report.problems] == [hook], report.problems
    assert f"RuntimeError: boom in {hook}" in report.problems[0].message


def test_host_plan_gets_the_requirements_of_every_builtin_scenario(tmp_path: Path) -> None:
    """The issue's case: a host_plan that raises, in a plugin without scenarios, is found (it was "No problems
    found." while create failed with it); one problem, with the scenarios whose VMs it failed for."""
    directory = tmp_path / "dev"
    directory.mkdir()
    (directory / "cm.py").write_text(HEAD + '''
@hookimpl
def host_plan(requirements, host):
    raise ValueError("plan boom")
''')
    result = run("cm", VIRTSCENARIO_PLUGINS_DIR=str(directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.endswith(f"1 problem:\n  - cm (host_plan, scenarios {', '.join(OTHERS)}): raised "
                                  "ValueError: plan boom\n")
    # Only for the requirements a scenario really has: a plugin that fails on hugepages fails for computation.
    (directory / "cm.py").write_text(HEAD + '''
@hookimpl
def host_plan(requirements, host):
    for req in requirements:
        if req.key == "host.hugepages" and req.value:
            raise KeyError(req.key)
    return []
''')
    [problem] = json.loads(run("cm", "--json", VIRTSCENARIO_PLUGINS_DIR=str(directory)).stdout)["problems"]
    assert problem == {"hook": "host_plan", "scenario": "computation", "message": "raised KeyError: 'host.hugepages'"}


def test_host_plan_must_not_write_to_the_host(tmp_path: Path, builtins: dict) -> None:
    path = tmp_path / "writer.py"
    path.write_text(HEAD + '''
@hookimpl
def host_plan(requirements, host):
    with open(host.path("/proc/sys/vm/swappiness"), "w") as handle:
        handle.write("10\\n")
    return []
''')
    report = check_plugin(str(path), builtin_commands=builtins)
    assert [(p.hook, p.scenario) for p in report.problems] == [("host_plan", ", ".join(OTHERS))]
    assert report.problems[0].message.startswith("wrote to the host: host_plan only plans")


def test_per_vm_hooks_are_checked_although_registration_failed(tmp_path: Path, builtins: dict) -> None:
    """One run reports every problem: a failing registration hook does not hide a postprocess_xml that breaks
    every other scenario's XML, nor a customize_model that raises on them."""
    path = tmp_path / "vscheck_both.py"
    path.write_text("NAME = 'vscheck-both'\n" + HEAD + '''
from virtscenario.api import SettingSpec

@hookimpl
def register_settings():
    yield SettingSpec("vscheckboth.knob", "int", 1, "a knob", rationale="r", reference=REF)

@hookimpl
def register_scenarios():
    raise RuntimeError("no scenario today")

@hookimpl
def postprocess_xml(root, settings, context):
    if settings.value("vscheckboth.knob") == 1:  # its own setting: still declared for this check
        from lxml import etree
        etree.SubElement(root.find("devices"), "nonsense")

@hookimpl
def customize_model(domain, settings, context):
    if context.scenario.name == "desktop":
        raise KeyError("oops")
''')
    report = check_plugin(str(path), builtin_commands=builtins)
    assert [(p.hook, p.scenario) for p in report.problems] == [
        ("register_scenarios", ""), ("postprocess_xml", "plugin-check-probe, computation, securevm"),
        ("customize_model", "desktop")]
    assert report.problems[0].message == "raised RuntimeError: no scenario today"
    assert "plugin 'vscheck_both' (postprocess_xml) made the domain XML invalid" in report.problems[1].message
    assert "failed in customize_model: KeyError: 'oops'" in report.problems[2].message
    assert report.done[-1] == ("its own scenarios were not rendered: the core disables a plugin whose "
                               "registration fails, so fix those problems first")


def test_verify_checks_run_on_a_fake_guest(tmp_path: Path, builtins: dict) -> None:
    """verify_checks gets each VM the check generated and a guest whose files match the VM; what the fake
    guest cannot do (programs, agent commands) is said, not a problem; a crash or a wrong type is."""
    good = tmp_path / "vscheck_verify.py"
    good.write_text("NAME = 'vscheck-verify'\n" + HEAD + SCENARIO + '''
from virtscenario.api import GuestCheck

@hookimpl
def verify_checks(vm, guest):
    if guest.is_linux:
        seen = guest.read("/proc/sys/kernel/hostname").strip()
        cpus = guest.read("/proc/cpuinfo").count("processor")
        yield GuestCheck("hostname", vm.name, seen, seen == vm.name)
        yield GuestCheck("vCPUs", str(vm.domain.findtext("vcpu")), str(cpus), str(cpus) == vm.domain.findtext("vcpu"))
        if vm.scenario == NAME:
            assert vm.settings["vm.vcpus"] == 2 and vm.domain.findtext("vcpu") == "2"
            yield GuestCheck("dmesg", "clean", guest.run(["dmesg"]).stdout, True)
''')
    report = check_plugin(str(good), builtin_commands=builtins)
    assert report.problems == []
    assert report.done[-2] == ("verify_checks on a fake guest: row(s) per VM: plugin-check-probe: 2, computation: 2, "
                               "desktop: 2, securevm: 2")
    assert report.done[-1] == ("verify_checks needed more than the fake guest offers (vscheck-verify: guest-exec "
                               "'dmesg': plugin check's fake guest runs no program but cat)")
    bad = tmp_path / "vscheck_badverify.py"
    bad.write_text("NAME = 'vscheck-badverify'\n" + HEAD + SCENARIO + '''
@hookimpl
def verify_checks(vm, guest):
    if vm.scenario == NAME:
        return [("hostname", "x", "y", True)]
    return [1 / len(vm.settings["vm.name"] if "vm.name" in vm.settings else "")]
''')
    report = check_plugin(str(bad), builtin_commands=builtins)
    assert [(p.hook, p.scenario, p.message) for p in report.problems] == [
        ("verify_checks", "vscheck-badverify", "must yield GuestCheck items, got tuple"),
        ("verify_checks", ", ".join(OTHERS), "raised ZeroDivisionError: division by zero")]
