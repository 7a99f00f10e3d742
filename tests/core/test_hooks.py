"""One test per hook, each running the example from docs/plugin-hooks.md, plus the meta-test."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from virtscenario.api import hookimpl
from virtscenario.domain.generate import Request, generate
from virtscenario.errors import ConfigError, ValidationError
from virtscenario.host.hypervisor import DomainCaps
from virtscenario.host.root import HostRoot
from virtscenario.plugin import hookspecs
from virtscenario.plugin.hooks import Catalog

from ..conftest import make_pm
from . import demo_plugin

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugin-hooks.md"
HOOK_NAMES = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                    if hasattr(f, "virtscenario_spec"))


def doc_sections() -> dict[str, tuple[str, str]]:
    """hook name -> (heading signature, first python block)."""
    text = DOCS.read_text()
    out = {}
    for match in re.finditer(r"^## (\w+)\(([^)]*)\)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        name, args, body = match.groups()
        block = re.search(r"```python\n(.*?)```", body, re.S)
        out[name] = (args, block.group(1) if block else "")
    return out


def example(name: str) -> types.ModuleType:
    """The documented example for hook ``name``, loaded as a plugin module."""
    code = doc_sections()[name][1]
    module = types.ModuleType(f"doc_example_{name}")
    exec(compile(code, f"{DOCS.name}:{name}", "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


def lab_vm(*plugins, tmp_path: Path, **kw) -> bytes:
    cat = Catalog(make_pm(("lab", example("register_scenarios")), *plugins))
    return generate(Request("lab", "labvm", store_root=tmp_path, libvirt_version=9000000, **kw), cat).xml


def test_every_hook_is_documented_and_tested():
    sections = doc_sections()
    tests = {n for n in globals() if n.startswith("test_hook_")}
    for name in HOOK_NAMES:
        spec = getattr(hookspecs, name)
        argnames = ", ".join(inspect.signature(spec).parameters)
        assert name in sections, f"docs/plugin-hooks.md has no section '## {name}({argnames})'"
        assert sections[name][0] == argnames, f"docs heading for {name} says ({sections[name][0]}), spec ({argnames})"
        assert sections[name][1].strip(), f"docs section {name} has no python example"
        assert f"test_hook_{name}" in tests, f"no test_hook_{name} in {__file__}"
        assert spec.__doc__ and len(spec.__doc__.strip().splitlines()) >= 3, f"{name} needs a contract docstring"


def test_firstresult_hooks_are_the_documented_ones():
    first = {n for n in HOOK_NAMES if getattr(hookspecs, n).virtscenario_spec.get("firstresult")}
    assert first == {"select_machine", "select_launch_security"}
    text = DOCS.read_text()
    for name in first:
        assert re.search(rf"## {name}\(.*?\n\n\*\*firstresult\.\*\*", text, re.S), name


def test_hook_register_scenarios(tmp_path):
    cat = Catalog(make_pm(("lab", example("register_scenarios"))))
    provided = cat.scenario("lab")
    assert provided.plugin == "lab"
    xml = lab_vm(tmp_path=tmp_path)
    assert b'cache="unsafe"' in xml
    assert [c.key for c in provided.scenario.host] == ["host.ksm"]


def test_hook_register_settings(tmp_path):
    cat = Catalog(make_pm(("lab", example("register_scenarios")), ("ttl", example("register_settings"))))
    assert cat.registry.spec("lab.ttl_days").default == 7
    from virtscenario.settings.resolve import resolve_scenario as resolve_settings
    from virtscenario.settings.userfile import UserConfig
    _, settings = resolve_settings(cat, "lab", UserConfig(), [("lab.ttl_days", "30", "--set lab.ttl_days")])
    assert settings["lab.ttl_days"].value == 30 and settings["lab.ttl_days"].source == "flag --set lab.ttl_days"
    with pytest.raises(ConfigError, match="above the maximum 365"):
        resolve_settings(cat, "lab", UserConfig(), [("lab.ttl_days", "999", "--set")])


def test_hook_scenario_overrides(tmp_path):
    xml = lab_vm(("site", example("scenario_overrides")), tmp_path=tmp_path)
    assert b'<source bridge="br0"/>' in xml
    cat = Catalog(make_pm(("lab", example("register_scenarios")), ("site", example("scenario_overrides"))))
    from virtscenario.settings.resolve import resolve_scenario as resolve_settings
    from virtscenario.settings.userfile import UserConfig
    _, settings = resolve_settings(cat, "lab", UserConfig(), [])
    assert settings["network.default"].source == "plugin site"
    user = UserConfig(path="f.yaml", settings={"network.default": "network=lab"})
    _, settings = resolve_settings(cat, "lab", user, [])
    assert settings["network.default"].value == "network=lab"  # the user's file beats plugins


def test_hook_customize_model(tmp_path):
    cat = Catalog(make_pm(("lab", example("register_scenarios")), ("wd", example("customize_model"))))
    gen = generate(Request("lab", "labvm", store_root=tmp_path), cat)
    assert b'<watchdog model="i6300esb" action="reset"/>' in gen.xml
    assert any("watchdog" in n.message for n in gen.notes)


def test_hook_postprocess_xml(tmp_path):
    xml = lab_vm(("panic", example("postprocess_xml")), tmp_path=tmp_path)
    root = etree.fromstring(xml)
    assert root.find("devices/panic").get("model") == "isa"


def test_hook_domain_rules(tmp_path):
    rule = ("small", example("domain_rules"))
    assert b"<vcpu" in lab_vm(rule, tmp_path=tmp_path)
    with pytest.raises(ValidationError, match=r"9 vCPUs; lab VMs have at most 8 \[rule lab-small: lab hosts"):
        lab_vm(rule, tmp_path=tmp_path, cli_settings=[("vm.vcpus", "9", "--vcpus")])


def test_hook_select_machine(tmp_path):
    assert b'machine="pc-q35-7.2"' in lab_vm(("pin", example("select_machine")), tmp_path=tmp_path)
    assert b'machine="q35"' in lab_vm(tmp_path=tmp_path)  # core default offline
    caps = DomainCaps(machine="pc-q35-8.2", machines=("pc-q35-7.1", "pc-q35-8.2", "q35"), firmware=("efi",),
                      cpu_modes=("host-passthrough",))
    assert b'machine="pc-q35-8.2"' in lab_vm(tmp_path=tmp_path, caps=caps)


def test_hook_select_launch_security(tmp_path):
    auto = [("launch_security.type", "auto", "--set")]
    with pytest.raises(ConfigError, match="needs --connect"):
        lab_vm(tmp_path=tmp_path, cli_settings=auto)
    sets = auto + [("devices.iommu", "on", "--set"), ("memory.hard_limit_overhead", "256", "--set")]
    xml = lab_vm(("ls", example("select_launch_security")), tmp_path=tmp_path, cli_settings=sets)
    root = etree.fromstring(xml)
    # the plugin answered sev-es; with the firmware descriptors unknown the core keeps plain SEV (auto)
    assert root.find("launchSecurity").get("type") == "sev"
    assert root.findtext("launchSecurity/policy") == "0x0003"
    from virtscenario.host.firmware import read_firmware
    data = Path(__file__).resolve().parent.parent / "data" / "firmware"
    es = read_firmware(HostRoot(data / "with-sev-es"), dirs=("/",))
    xml = lab_vm(("ls", example("select_launch_security")), tmp_path=tmp_path, cli_settings=sets, firmware=es)
    assert etree.fromstring(xml).findtext("launchSecurity/policy") == "0x0007"


def test_hook_host_checks(tmp_path):
    cat = Catalog(make_pm(("tun", example("host_checks"))))
    [(plugin, check)] = cat.host_checks()
    assert plugin == "tun"
    assert check.run(HostRoot(tmp_path)).status == "FAIL"
    (tmp_path / "dev/net").mkdir(parents=True)
    (tmp_path / "dev/net/tun").write_text("")
    assert check.run(HostRoot(tmp_path)).status == "PASS"


class FileGuest:
    """The guest side of ``verify_checks`` over a directory: the hook's contract (is_linux, read) without a VM.

    The real guest (through the QEMU agent) is what tests/guest/test_verify.py runs the hooks against."""

    is_linux = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()


def test_hook_verify_checks(tmp_path):
    from virtscenario.types import GuestCheck
    from virtscenario.vm.verify import VerifiedVm
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/hostname").write_text("labvm\n")
    vm = VerifiedVm("labvm", "lab", tmp_path, {}, etree.Element("domain"), {})
    cat = Catalog(make_pm(("host", example("verify_checks"))))
    assert cat.verify_checks(vm, FileGuest(tmp_path)) == [GuestCheck("hostname", "labvm", "labvm", True)]
    (tmp_path / "proc/sys/kernel/hostname").write_text("renamed\n")
    [row] = cat.verify_checks(vm, FileGuest(tmp_path))
    assert (row.ok, row.status, row.observed) == (False, "MISMATCH", "renamed")
    other = VerifiedVm("web", "desktop", tmp_path, {}, etree.Element("domain"), {})
    assert cat.verify_checks(other, FileGuest(tmp_path)) == []  # not its scenario
    # A plugin whose checks raise is one failing row naming it; the others still run.
    broken = types.ModuleType("broken")
    exec("from virtscenario.api import hookimpl\n@hookimpl\ndef verify_checks(vm, guest):\n    raise OSError('gone')\n",
         broken.__dict__)  # noqa: S102
    cat = Catalog(make_pm(("host", example("verify_checks")), ("broken", broken)))
    rows = cat.verify_checks(vm, FileGuest(tmp_path))
    assert [r.check for r in rows] == ["plugin broken", "hostname"]
    assert rows[0].ok is False and "OSError: gone" in rows[0].observed


def test_hook_host_plan(tmp_path):
    (tmp_path / "proc/sys/vm").mkdir(parents=True)
    (tmp_path / "proc/sys/vm/swappiness").write_text("60\n")
    cat = Catalog(make_pm(demo_plugin, ("swap", example("host_plan"))))
    gen = generate(Request("demo", "d1", store_root=tmp_path / "store", libvirt_version=9000000), cat)
    [(plugin, change)] = cat.host_plan(gen.host_requirements, HostRoot(tmp_path))
    assert plugin == "swap"
    assert (change.knob, change.current, change.target, change.source) == ("vm.swappiness", "60", "20", "demo")
    assert change.needed


def test_hook_register_commands(use_pm, monkeypatch):
    calls = []
    plugin = example("register_commands")
    original = plugin.register_commands

    def spy(cli):
        calls.append(cli)
        original(cli)

    plugin.register_commands = spy
    spy.virtscenario_impl = original.virtscenario_impl  # keep the hookimpl marker
    use_pm(make_pm(("lab", plugin)))
    from virtscenario.cli.app import cli
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).exit_code == 0
    assert calls == []  # --version never loads plugin commands
    result = runner.invoke(cli, ["lab-clean"])
    assert result.exit_code == 0, result.output
    assert result.output == "nothing to clean\n"
    assert len(calls) == 1


def test_scenario_bound_examples_leave_other_scenarios_alone(tmp_path):
    """The examples of the hooks that run for every VM test the scenario: a demo VM (another
    scenario, 12 vCPUs) gets no watchdog, no panic device, no bridge and is not refused."""
    pm = make_pm(demo_plugin, ("lab", example("register_scenarios")), ("site", example("scenario_overrides")),
                 ("wd", example("customize_model")), ("panic", example("postprocess_xml")),
                 ("small", example("domain_rules")))
    gen = generate(Request("demo", "other", store_root=tmp_path, libvirt_version=9000000,
                           cli_settings=[("vm.vcpus", "12", "--vcpus")]), Catalog(pm))
    root = etree.fromstring(gen.xml)
    assert root.findtext("vcpu") == "12"
    assert root.find("devices/watchdog") is None and root.find("devices/panic") is None
    assert root.find("devices/interface/source").get("bridge") is None
    assert not any("watchdog" in n.message for n in gen.notes)


def test_invalid_xml_from_postprocess_names_the_plugin(tmp_path):
    class Breaks:
        @hookimpl
        def postprocess_xml(self, root, settings, context):
            from lxml import etree as et
            et.SubElement(root.find("devices"), "nonsense")

    class Harmless:
        @hookimpl
        def postprocess_xml(self, root, settings, context):
            root.find("devices").append(etree.Comment("fine"))

    with pytest.raises(ValidationError, match=r"^plugin 'breaks' \(postprocess_xml\) made the domain XML invalid: "
                                              r"domain XML does not match libvirt's schema .*nonsense"):
        lab_vm(("aa_harmless", Harmless()), ("breaks", Breaks()), tmp_path=tmp_path)
    # Invalid XML the core made itself (here: a model a hook broke) is not blamed on postprocess_xml.
    class BadModel:
        @hookimpl
        def customize_model(self, domain, settings, context):
            domain.on_crash = "explode"

    with pytest.raises(ValidationError) as info:
        lab_vm(("aa_harmless", Harmless()), ("badmodel", BadModel()), tmp_path=tmp_path)
    assert "postprocess_xml" not in str(info.value) and "on_crash" in str(info.value)


def test_a_guest_key_in_host_is_a_placement_error():
    from virtscenario.api import Choice, Scenario
    with pytest.raises(ValueError, match=r"^scenario 'lab': 'vm.vcpus' is a guest setting: it belongs in settings=, "
                                         r"not host="):
        Scenario("lab", "x", "1", settings=(Choice("vm.vcpus", 1, "r", "ref"),),
                 host=(Choice("vm.vcpus", 2, "r", "ref"),))
