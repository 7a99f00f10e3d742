"""The migration scenario: a CPU that migrates, the baseline across hypervisors, the blocking rules.

``test:///default`` has neither domain capabilities nor ``baselineHypervisorCPU``, so the
baseline logic runs against fake connections that record what libvirt was asked
(the real API is exercised on libvirtd in tests/integration/test_boot_thirdparty.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import virtscenario_migration
from virtscenario.api import VirtscenarioError
from virtscenario.errors import ValidationError
from virtscenario_migration import baseline

DOMCAPS = """<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>{virt}</domain>
  <machine>{machine}</machine>
  <arch>x86_64</arch>
  <cpu>
    <mode name='host-passthrough' supported='yes'/>
    <mode name='host-model' supported='{supported}'>
      <model fallback='forbid'>{model}</model>
      <vendor>Intel</vendor>
      <feature policy='require' name='{feature}'/>
    </mode>
  </cpu>
</domainCapabilities>"""

BASELINE = """<cpu mode='custom' match='exact'>
  <model fallback='forbid'>Skylake-Server-IBRS</model>
  <vendor>Intel</vendor>
  <feature policy='require' name='ssbd'/>
  <feature policy='disable' name='hle'/>
</cpu>"""


class FakeConn:
    def __init__(self, uri: str, machine: str, model: str, feature: str, supported: str = "yes",
                 domcaps_error: str = "", baseline_error: str = "") -> None:
        self.uri, self.machine, self.model, self.feature = uri, machine, model, feature
        self.supported, self.domcaps_error, self.baseline_error = supported, domcaps_error, baseline_error
        self.calls: list[tuple[Any, ...]] = []
        self.closed = False

    def getDomainCapabilities(self, emulator, arch, machine, virttype, flags):  # noqa: N802 - libvirt's name
        self.calls.append(("domcaps", emulator, arch, machine, virttype, flags))
        if self.domcaps_error:
            raise RuntimeError(self.domcaps_error)
        return DOMCAPS.format(virt=virttype, machine=self.machine, model=self.model, feature=self.feature,
                              supported=self.supported)

    def baselineHypervisorCPU(self, emulator, arch, machine, virttype, xml_cpus, flags):  # noqa: N802
        self.calls.append(("baseline", emulator, arch, machine, virttype, list(xml_cpus), flags))
        if self.baseline_error:
            raise RuntimeError(self.baseline_error)
        return BASELINE

    def close(self) -> int:
        self.closed = True
        return 0


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeConn]:
    conns = {
        "qemu+ssh://a/system": FakeConn("a", "pc-q35-8.2", "Cascadelake-Server", "avx512vnni"),
        "qemu+ssh://b/system": FakeConn("b", "pc-q35-7.2", "Skylake-Server", "pku"),
    }

    def opener(uri: str) -> FakeConn:
        if uri not in conns:
            raise RuntimeError(f"Cannot recv data: ssh: Could not resolve hostname {uri}")
        return conns[uri]

    monkeypatch.setattr(baseline, "_open", opener)
    return conns


@pytest.fixture
def virtscenario_plugins():
    return [virtscenario_migration]


def test_baseline_asks_the_first_hypervisor_with_every_host_model(pool) -> None:
    result = baseline.compute(list(pool), "kvm")
    a, b = pool.values()
    assert a.calls[0] == ("domcaps", None, "x86_64", "q35", "kvm", 0)
    assert b.calls == [("domcaps", None, "x86_64", "q35", "kvm", 0)]
    kind, emulator, arch, machine, virttype, cpus, flags = a.calls[1]
    assert (kind, emulator, arch, machine, virttype) == ("baseline", None, "x86_64", "pc-q35-7.2", "kvm")
    assert flags == baseline.BASELINE_MIGRATABLE == 2  # VIR_CONNECT_BASELINE_CPU_MIGRATABLE, no EXPAND
    # What virsh hypervisor-cpu-baseline sends: each host-model <mode> renamed to a bare <cpu>.
    assert cpus[0].startswith("<cpu><model fallback=\"forbid\">Cascadelake-Server</model>")
    assert "Skylake-Server" in cpus[1] and "<vendor>Intel</vendor>" in cpus[1]
    assert result.model == "Skylake-Server-IBRS"
    assert result.features == (("ssbd", "require"), ("hle", "disable"))
    assert result.machine == "pc-q35-7.2"
    assert a.closed and b.closed


def test_baseline_errors_name_the_uri(pool) -> None:
    with pytest.raises(VirtscenarioError, match=r"^migration.hosts: cannot connect to qemu\+ssh://c/system: "
                                                 "Cannot recv data"):
        baseline.compute([*pool, "qemu+ssh://c/system"], "kvm")
    assert all(c.closed for c in pool.values())  # the ones already open are closed again
    pool["qemu+ssh://b/system"].supported = "no"
    with pytest.raises(VirtscenarioError, match=r"qemu\+ssh://b/system offers no host-model CPU"):
        baseline.compute(list(pool), "kvm")
    pool["qemu+ssh://b/system"].domcaps_error = "this function is not supported by the connection driver"
    with pytest.raises(VirtscenarioError, match="gives no domain capabilities for x86_64 q35 .kvm.: this function"):
        baseline.compute(list(pool), "kvm")
    pool["qemu+ssh://b/system"].domcaps_error = ""
    pool["qemu+ssh://b/system"].supported = "yes"
    pool["qemu+ssh://a/system"].baseline_error = "CPU vendors do not match"
    with pytest.raises(VirtscenarioError, match="could not compute the baseline CPU: CPU vendors do not match"):
        baseline.compute(list(pool), "kvm")


def test_uri_list_is_checked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert baseline.parse_uris(" qemu:///system , qemu+ssh://h/system ") == ["qemu:///system", "qemu+ssh://h/system"]
    for bad, message in ((",", "is empty"), ("host2", "^migration.hosts: no host inventory: write one at "),
                         ("qemu:///system,qemu:///system", "names the same host twice: qemu:///system and "
                                                           "qemu:///system$"),
                         ("qemu+bogus://h/system", "is not a libvirt URI"), ("a\tb", "neither a host name nor")):
        with pytest.raises(VirtscenarioError, match=message):
            baseline.parse_uris(bad)


def test_host_names_come_from_the_inventory(tmp_path, monkeypatch, virtscenario_render, pool) -> None:
    """migration.hosts takes inventory names (api.resolve_host_uris), URIs, or both."""
    (tmp_path / "virtscenario").mkdir()
    (tmp_path / "virtscenario" / "hosts.yaml").write_text(
        "hosts:\n  a: {uri: 'qemu+ssh://a/system'}\n  b: {uri: 'qemu+ssh://b/system'}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert baseline.parse_hosts("a, qemu+ssh://b/system") == [("a", "qemu+ssh://a/system"),
                                                              ("qemu+ssh://b/system", "qemu+ssh://b/system")]
    with pytest.raises(VirtscenarioError, match=r"^migration.hosts names the same host twice: a and "
                                                r"qemu\+ssh://a/system$"):
        baseline.parse_hosts("a,qemu+ssh://a/system")
    with pytest.raises(VirtscenarioError, match=r"^migration.hosts: no host 'bb' in .*hosts.yaml; did you mean 'b'"):
        baseline.parse_hosts("a,bb")
    result = virtscenario_render("migration", settings={"migration.hosts": "a,b"})
    assert result.tree.find("cpu/model").text == "Skylake-Server-IBRS"
    assert [c[0] for c in pool["qemu+ssh://a/system"].calls] == ["domcaps", "baseline"]
    assert pool["qemu+ssh://b/system"].calls[0][0] == "domcaps"
    assert any("migratable baseline of a (qemu+ssh://a/system), b (qemu+ssh://b/system)" in n
               for n in result.note_texts())


def test_oldest_machine() -> None:
    assert baseline.oldest_machine(["pc-q35-8.2", "pc-q35-7.10", "pc-q35-7.2"]) == "pc-q35-7.2"
    assert baseline.oldest_machine(["pc-q35-8.2", "q35"]) is None


def test_default_cpu_is_host_model_with_safe_disks(virtscenario_render) -> None:
    result = virtscenario_render("migration")
    t = result.tree
    assert result.validated
    assert t.find("cpu").get("mode") == "host-model"
    assert t.find("cpu/model") is None
    assert all(d.get("cache") == "none" for d in t.findall("devices/disk/driver"))
    assert t.find("cputune") is None and t.find("memoryBacking") is None
    assert t.find("launchSecurity") is None and t.findall("devices/filesystem") == []
    assert t.findall("devices/hostdev") == []
    # A vTPM migrates (its swtpm state travels in QEMU's migration stream): Windows 11 guests fit.
    assert t.find("devices/tpm").get("model") == "tpm-crb"
    assert t.find("devices/tpm/backend").get("type") == "emulator"
    assert result.settings["vm.migratable"].value is True
    assert any("must be on storage every host reaches" in n for n in result.note_texts())


def test_hosts_give_a_custom_baseline_cpu(virtscenario_render, pool) -> None:
    result = virtscenario_render("migration", settings={"migration.hosts": ",".join(pool),
                                                        "cpu.features": "-hle,x2apic"})
    cpu = result.tree.find("cpu")
    assert (cpu.get("mode"), cpu.get("check")) == ("custom", "full")
    assert cpu.find("model").text == "Skylake-Server-IBRS" and cpu.find("model").get("fallback") == "forbid"
    # The baseline's features win over a user's conflicting one; the user's others are kept.
    assert [(f.get("name"), f.get("policy")) for f in cpu.findall("feature")] == \
        [("ssbd", "require"), ("hle", "disable"), ("x2apic", "require")]
    assert result.tree.find("os/type").get("machine") == "pc-q35-7.2"
    assert any("migratable baseline of qemu+ssh://a/system, qemu+ssh://b/system" in n for n in result.note_texts())
    assert pool["qemu+ssh://a/system"].calls[0][4] == "kvm"
    tcg = virtscenario_render("migration", settings={"migration.hosts": ",".join(pool), "vm.virt_type": "qemu"})
    assert tcg.tree.get("type") == "qemu" and pool["qemu+ssh://b/system"].calls[-1][4] == "qemu"


def test_a_failing_host_is_one_clear_error(virtscenario_render, pool) -> None:
    with pytest.raises(VirtscenarioError, match="^migration.hosts: cannot connect to qemu\\+ssh://gone/system"):
        virtscenario_render("migration", settings={"migration.hosts": "qemu+ssh://a/system,qemu+ssh://gone/system"})


def test_test_driver_has_no_domain_capabilities(virtscenario_render) -> None:
    """The real libvirt binding, on the test driver: refused with the driver's reason."""
    with pytest.raises(VirtscenarioError, match="test:///default gives no domain capabilities.*not supported"):
        virtscenario_render("migration", settings={"migration.hosts": "test:///default"})


def test_other_cache_modes_migrate(virtscenario_render) -> None:
    """libvirt 9.0 migrates writeback disks on shared storage: QEMU >= 4.2 drops the page cache
    (qemuMigrationSrcIsSafe, QEMU_CAPS_MIGRATION_FILE_DROP_CACHE); nothing refuses them."""
    for cache in ("writeback", "writethrough", "unsafe"):
        result = virtscenario_render("migration", settings={"disk.cache": cache})
        assert [d.get("cache") for d in result.tree.findall("devices/disk/driver")] == [cache]
        assert not any("refuses migration" in n for n in result.note_texts())


@pytest.mark.parametrize(("sets", "message"), [
    ({"filesystem.share": True, "memory.access": "shared", "memory.source": "memfd"},
     "virtiofs shares do not migrate"),
    ({"cpu.mode": "host-passthrough"}, "host-passthrough is only safe between identical hosts"),
    ({"memory.hugepages": True}, "must be reserved on every destination host"),
    ({"cpu.pinning": "auto"}, None),  # offline: no topology, so nothing is pinned and nothing breaks
])
def test_settings_that_break_migration_are_explained(virtscenario_render, virtscenario_host_root, sets,
                                                     message) -> None:
    if message is None:
        virtscenario_render("migration", settings=sets)
        with pytest.raises(ValidationError, match="vCPU or NUMA pinning refers to this host's CPUs"):
            virtscenario_render("migration", settings=sets, host=virtscenario_host_root)
        return
    with pytest.raises(ValidationError) as err:
        virtscenario_render("migration", settings=sets)
    assert message in str(err.value)
    assert "[rule migratable-vm:" in str(err.value)
