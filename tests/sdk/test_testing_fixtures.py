"""virtscenario.testing: the pytest plugin for plugin authors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest
import virtscenario.testing
import virtscenario_softrt
from virtscenario.api import Choice, Scenario, hookimpl
from virtscenario.host.facts import read_host
from virtscenario.plugin.manager import IncompatiblePlugin


class LabPlugin:
    __name__ = "lab"

    @hookimpl
    def register_scenarios(self):
        return [Scenario("lab", "lab VM", "1.0", (
            Choice("vm.vcpus", 3, "lab", "https://libvirt.org/formatdomain.html"),
            Choice("disk.cache", "writethrough", "lab", "https://libvirt.org/formatdomain.html")))]


@pytest.fixture
def virtscenario_plugins():
    return [LabPlugin()]


def test_loaded_as_pytest11_plugin(request: pytest.FixtureRequest) -> None:
    plugin = request.config.pluginmanager.get_plugin("virtscenario")
    assert plugin is virtscenario.testing


def test_import_is_light() -> None:
    code = ("import sys, virtscenario.testing; "
            "print(sorted(m for m in ('lxml', 'libvirt', 'virtscenario.domain.generate', "
            "'virtscenario.plugin.manager') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_fixture_is_prefixed() -> None:
    names = {n for n, v in vars(virtscenario.testing).items()
             if type(v).__name__ == "FixtureFunctionDefinition" or hasattr(v, "_pytestfixturefunction")}
    assert names == {"virtscenario_plugins", "virtscenario_pm", "virtscenario_make_pm", "virtscenario_render",
                     "virtscenario_host_root", "virtscenario_make_host_root", "virtscenario_libvirt_conn",
                     "virtscenario_make_libvirt_conn", "virtscenario_host_checks", "virtscenario_host_plan"}


def test_pm_holds_exactly_the_given_plugins(virtscenario_pm, virtscenario_make_pm) -> None:
    assert {name for name, _p in virtscenario_pm.list_name_plugin()} == {"core_choices", "core_rules", "lab"}
    bare = virtscenario_make_pm(virtscenario_softrt, core=False)
    assert [name for name, _p in bare.list_name_plugin()] == ["softrt"]
    assert bare.infos["softrt"].status == "active"


def test_pm_rejects_typos_duplicates_and_other_api_versions(virtscenario_make_pm) -> None:
    class Typo:
        __name__ = "typo"

        @hookimpl
        def register_scenario(self):
            return []

    class Future:
        __name__ = "future"
        VIRTSCENARIO_API = (2, 0)

    with pytest.raises(pluggy.PluginValidationError, match="register_scenario.*did you mean 'register_scenarios'"):
        virtscenario_make_pm(Typo())
    with pytest.raises(IncompatiblePlugin, match="needs plugin API 2.0"):
        virtscenario_make_pm(Future())
    with pytest.raises(ValueError, match="two plugins are named 'lab'"):
        virtscenario_make_pm(LabPlugin(), LabPlugin())


def test_render_uses_the_plugins_fixture(virtscenario_render) -> None:
    result = virtscenario_render("lab", settings={"vm.memory": "1GiB"}, networks=["user"], disks=["size=5"])
    assert result.tree.findtext("vcpu") == "3"
    assert result.tree.find("devices/disk/driver").get("cache") == "writethrough"
    assert result.tree.find("devices/interface").get("type") == "user"
    assert result.tree.findtext("memory") == str(1024 * 1024)
    assert result.settings["vm.memory"].source == "flag --set vm.memory"
    assert result.value("vm.vcpus") == 3
    assert result.xml.startswith(b"<domain")
    assert result.validated  # libvirt's RelaxNG schemas are installed by the test setup


def test_render_with_explicit_plugins_and_host(virtscenario_render, virtscenario_make_host_root) -> None:
    host = virtscenario_make_host_root(cpus=4)
    result = virtscenario_render("softrt", plugins=[virtscenario_softrt], host=host)
    assert [p.get("cpuset") for p in result.tree.findall("cputune/vcpupin")] == ["1", "2"]
    with pytest.raises(Exception, match="unknown scenario 'lab'"):
        virtscenario_render("lab", plugins=[virtscenario_softrt])


def test_fake_host_root_shape(virtscenario_host_root, virtscenario_make_host_root) -> None:
    info = read_host(virtscenario_host_root)
    assert (len(info.cpus), info.sockets, info.threads_per_core) == (8, 1, 1)
    assert info.memory_bytes == 16 * 1024**3
    assert info.hugepage_sizes_kib == (2048, 1048576)
    assert "vmx" in info.flags and "pdpe1gb" in info.flags
    assert virtscenario_host_root.read("/proc/cmdline").startswith("BOOT_IMAGE=")
    big = virtscenario_make_host_root(cpus=32, sockets=2, threads_per_core=2, vendor="AuthenticAMD",
                                      hugepage_sizes_kib=(2048,))
    info = read_host(big)
    assert (len(info.cpus), info.sockets, info.cores_per_socket, info.threads_per_core) == (32, 2, 8, 2)
    assert info.nodes == (0, 1)
    # Linux numbering: the first threads of all cores first, then the siblings.
    assert big.read("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").strip() == "0,16"
    assert big.read("/sys/devices/system/cpu/cpu8/topology/physical_package_id").strip() == "1"
    assert "svm" in info.flags and "pdpe1gb" not in info.flags
    with pytest.raises(ValueError, match="cannot be split"):
        virtscenario_make_host_root(cpus=6, sockets=4)


def test_libvirt_conn_is_private(virtscenario_libvirt_conn, virtscenario_make_libvirt_conn) -> None:
    assert virtscenario_libvirt_conn.getInfo()[2] == 8
    other = virtscenario_make_libvirt_conn(cpus=16, sockets=2, threads_per_core=2)
    assert other.getInfo()[2] == 16
    xml = "<domain type='test'><name>vs-private</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    virtscenario_libvirt_conn.defineXML(xml)
    assert "vs-private" in virtscenario_libvirt_conn.listDefinedDomains()
    assert "vs-private" not in other.listDefinedDomains()


def test_fixtures_in_a_plain_pytest_run(tmp_path: Path) -> None:
    """An author's test file, run by pytest with nothing but the installed core: the
    fixtures are there, the override works, and the libvirt connection is closed at teardown."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent('''
        import pytest
        from virtscenario.api import Choice, Scenario, hookimpl

        class Plugin:
            __name__ = "virtscenario_demo"
            @hookimpl
            def register_scenarios(self):
                return [Scenario("demo", "demo", "1.0",
                                 (Choice("vm.vcpus", 5, "demo", "https://libvirt.org/formatdomain.html"),))]

        @pytest.fixture
        def virtscenario_plugins():
            return [Plugin()]

        CONNS = []

        def test_render(virtscenario_render, virtscenario_pm):
            assert virtscenario_render("demo").tree.findtext("vcpu") == "5"
            assert sorted(n for n, _ in virtscenario_pm.list_name_plugin()) == ["core_choices", "core_rules", "demo"]

        def test_conn(virtscenario_libvirt_conn):
            CONNS.append(virtscenario_libvirt_conn)
            assert virtscenario_libvirt_conn.isAlive()

        def test_conn_closed_after_teardown():
            import libvirt
            with pytest.raises(libvirt.libvirtError):
                CONNS[0].getInfo()
    '''))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), str(tmp_path / "test_author.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def test_plugin_modules_are_credited_to_their_distribution() -> None:
    import pluggy as installed_module
    from virtscenario.sdk.harness import _distribution
    assert _distribution(installed_module) == ("pluggy", installed_module.__version__)
    assert _distribution(LabPlugin()) == ("", "")


class HostLab:
    """A scenario with a host requirement, a host check and a host plan: what host-side plugins test."""

    __name__ = "hostlab"

    @hookimpl
    def register_scenarios(self):
        return [Scenario("hostlab", "lab VM", "1.0", host=(
            Choice("host.swappiness", 10, "lab VMs should not be swapped out", "https://docs.kernel.org"),))]

    @hookimpl
    def host_checks(self):
        from virtscenario.api import CheckResult, HostCheck

        def tun(host):
            ok = host.exists("/dev/net/tun")
            return CheckResult("tun", "PASS" if ok else "FAIL", "present" if ok else "missing", "modprobe tun")
        return [HostCheck("tun", "TAP networking needs /dev/net/tun", tun)]

    @hookimpl
    def host_plan(self, requirements, host):
        from virtscenario.api import HostChange
        for req in requirements:
            if req.key == "host.swappiness":
                yield HostChange("vm.swappiness", "/proc/sys/vm/swappiness",
                                 host.read("/proc/sys/vm/swappiness").strip(), str(req.value), req.rationale,
                                 req.scenario)


def test_host_checks_fixture_with_files(virtscenario_host_checks, virtscenario_make_host_root) -> None:
    bare = virtscenario_make_host_root()
    [outcome] = virtscenario_host_checks(bare, plugins=[HostLab()])
    assert (outcome.plugin, outcome.check.name, outcome.result.status) == ("hostlab", "tun", "FAIL")
    with_tun = virtscenario_make_host_root(files={"/dev/net/tun": "", "/etc/motd": "lab host\n"})
    [outcome] = virtscenario_host_checks(with_tun, plugins=[HostLab()])
    assert outcome.result.status == "PASS"
    assert with_tun.read("/etc/motd") == "lab host\n"  # any file goes into the fake host
    assert virtscenario_host_checks(with_tun) == []  # the virtscenario_plugins fixture: no host checks


def test_host_checks_fixture_reports_a_crashing_check(virtscenario_host_checks, virtscenario_host_root) -> None:
    class Crashes:
        __name__ = "crashes"

        @hookimpl
        def host_checks(self):
            from virtscenario.api import HostCheck
            return [HostCheck("boom", "crashes", lambda host: 1 / 0)]

    [outcome] = virtscenario_host_checks(virtscenario_host_root, plugins=[Crashes()])
    assert outcome.result.status == "FAIL"
    assert "check 'boom' of plugin 'crashes' failed: ZeroDivisionError" in outcome.result.message


def test_host_plan_fixture(virtscenario_host_plan, virtscenario_make_host_root) -> None:
    host = virtscenario_make_host_root(files={"/proc/sys/vm/swappiness": "33\n"})
    [(plugin, change)] = virtscenario_host_plan("hostlab", host, plugins=[HostLab()])
    assert plugin == "hostlab"
    assert (change.knob, change.current, change.target, change.source) == ("vm.swappiness", "33", "10", "hostlab")
    assert change.needed
    # render options pass through: a user's --set changes what the plan targets
    [(_p, change)] = virtscenario_host_plan("hostlab", host, plugins=[HostLab()], settings={"host.swappiness": 33})
    assert not change.needed


def test_missing_schema_fails_unless_the_test_opts_out(virtscenario_render, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from virtscenario.testing import MissingSchemaError
    missing = str(tmp_path / "no-schemas" / "domain.rng")
    with pytest.raises(MissingSchemaError, match=r"libvirt's RelaxNG schema .*no-schemas/domain.rng is not "
                                                 r"installed.*require_schema=False"):
        virtscenario_render("lab", schema=missing)
    monkeypatch.setenv("VIRTSCENARIO_DOMAIN_SCHEMA", missing)  # as on a runner without libvirt's schemas
    with pytest.raises(MissingSchemaError):
        virtscenario_render("lab")
    result = virtscenario_render("lab", require_schema=False)
    assert result.validated is False and result.tree.findtext("vcpu") == "3"
    assert any("not schema-validated" in text for text in result.note_texts())


def test_installed_plugins_reports_registration_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like 'plugins list': a plugin that raises in a registration hook is 'error', not 'active'."""
    (tmp_path / "vs_regboom.py").write_text(
        "from virtscenario.api import hookimpl\nVIRTSCENARIO_API = (1, 2)\n\n"
        "@hookimpl\ndef register_scenarios():\n    raise RuntimeError('boom')\n")
    info = tmp_path / "vs_regboom-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vs-regboom\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[virtscenario]\nregboom = vs_regboom\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    infos = virtscenario.testing.installed_plugins()
    assert infos["regboom"].status == "error"
    assert infos["regboom"].error == "failed in register_scenarios: RuntimeError: boom"
    assert infos["desktop"].status == "active"
