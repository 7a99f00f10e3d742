"""Host facts: pure parsing of recorded XML, and the same facts from live connections."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtscenario.fleet.facts import assemble, domain_usage, gather, parse_capabilities, parse_cpulist, parse_domcaps

from .conftest import answers_from, node_uri, open_or_fail, recorded

SEV_DOMAIN = """<domain type='kvm'><name>{name}</name><memory unit='GiB'>4</memory><vcpu current='2'>4</vcpu>
<cputune><vcpupin vcpu='0' cpuset='{pin}'/></cputune>
<launchSecurity type='{kind}'><policy>{policy}</policy></launchSecurity></domain>"""


def running(kind: str, policy: str, count: int, pin: str = "0") -> tuple[str, ...]:
    return tuple(SEV_DOMAIN.format(name=f"g{i}", kind=kind, policy=policy, pin=pin) for i in range(count))


@pytest.mark.parametrize("name, sev, es, snp, tdx", [
    ("amd-sev-es.xml", (59, 450), True, False, False),
    ("amd-sev.xml", (1006, 0), False, False, False),
    ("amd-sev-snp.xml", (59, 450), True, True, False),
    ("intel-tdx.xml", None, False, False, True),
    ("tcg-this-host.xml", None, False, False, False),
])
def test_recorded_domcaps(name: str, sev: tuple[int, int] | None, es: bool, snp: bool, tdx: bool) -> None:
    dc = parse_domcaps(recorded("domcaps", name))
    assert dc.sev.supported == (sev is not None)
    if sev:
        assert (dc.sev.max_guests, dc.sev.max_es_guests) == sev
    assert dc.sev_snp == snp
    assert dc.tdx == tdx
    assert dc.arch == "x86_64" and dc.machine.startswith("pc-q35-")
    assert "efi" in dc.firmware
    assert dc.virtiofs == ("virtiofs" in recorded("domcaps", name))


@pytest.mark.parametrize("name, offered", [
    ("amd-sev-es.xml", ("sev-es", "sev")),
    ("amd-sev.xml", ("sev",)),
    ("amd-sev-snp.xml", ("sev-snp", "sev-es", "sev")),
    ("intel-tdx.xml", ("tdx",)),
    ("tcg-this-host.xml", ()),
])
def test_launch_security_offered_strongest_first(name: str, offered: tuple[str, ...]) -> None:
    caps = recorded("caps", "libvirt-4node-basic.xml")  # CPU without a feature list: KVM is taken at its word
    vt = parse_domcaps(recorded("domcaps", name)).virt_type
    facts = assemble(answers_from(caps, {vt: recorded("domcaps", name)}))
    assert facts.accel == ("kvm" if vt == "kvm" else "tcg")
    assert facts.launch_security_offered() == offered


def test_free_slots_count_running_guests_per_asid_pool() -> None:
    caps = recorded("caps", "libvirt-4node-basic.xml")
    dc = recorded("domcaps", "amd-sev-snp.xml")
    guests = running("sev", "0x0003", 3) + running("sev", "0x0007", 2) + running("sev-snp", "0x00030000", 4)
    facts = assemble(answers_from(caps, {"kvm": dc}, running=guests))
    assert (facts.running.sev, facts.running.sev_es) == (3, 6)  # SEV-ES and SEV-SNP share the ES ASIDs
    assert facts.free_slots("sev") == 59 - 3
    assert facts.free_slots("sev-es") == facts.free_slots("sev-snp") == 450 - 6
    assert facts.free_slots("tdx") is None  # libvirt reports no TDX limit


def test_kvm_advertised_without_vmx_svm_is_tcg() -> None:
    caps = recorded("caps", "this-host.xml")  # this machine: AMD CPU features listed, no svm
    assert parse_capabilities(caps).cpu_features and parse_capabilities(caps).no_hardware_virt
    facts = assemble(answers_from(caps, {"kvm": recorded("domcaps", "amd-sev-es.xml"),
                                         "qemu": recorded("domcaps", "tcg-this-host.xml")}))
    assert facts.accel == "tcg"
    assert facts.domcaps is not None and facts.domcaps.virt_type == "qemu"
    assert facts.launch_security_offered() == ()
    assert any("no vmx/svm" in n for n in facts.notes)


def test_numa_nodes_and_hugepages_from_recorded_capabilities() -> None:
    caps = recorded("caps", "libvirt-4node-basic.xml")
    parsed = parse_capabilities(caps)
    facts = assemble(answers_from(caps, {"kvm": recorded("domcaps", "amd-sev-es.xml")}))
    assert [n.id for n in facts.nodes] == [c.id for c in parsed.cells] == [0, 1, 2, 3]
    assert facts.cpus == 16
    for node, cell in zip(facts.nodes, parsed.cells):
        assert node.cpus == tuple(c.id for c in cell.cpus)
        assert node.free_pages(2048) == dict(cell.pages)[2048]
        assert node.free_bytes == cell.memory_bytes
    assert facts.hugepages_free(1048576) == {c.id: dict(c.pages)[1048576] for c in parsed.cells}
    assert facts.free_memory_bytes == sum(c.memory_bytes or 0 for c in parsed.cells)


def test_domain_usage() -> None:
    xml = """<domain type='kvm'><name>rt</name><memory unit='KiB'>4194304</memory>
      <currentMemory unit='KiB'>2097152</currentMemory><vcpu placement='static'>4</vcpu>
      <memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>
      <cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3-5,^4'/></cputune>
      <launchSecurity type='sev'><policy>0x0007</policy></launchSecurity></domain>"""
    u = domain_usage(xml)
    assert (u.name, u.vcpus, u.memory_bytes, u.launch_security) == ("rt", 4, 2 * 1024**3, "sev-es")
    assert u.pinned_cpus == (2, 3, 5)
    assert parse_cpulist("0-3,^1,8") == (0, 2, 3, 8)


def test_test_driver_host_is_facts_not_a_crash() -> None:
    conn = open_or_fail(node_uri("node-epyc.xml"))
    try:
        info = conn.getInfo()
        facts = gather(conn)
    finally:
        conn.close()
    assert facts.hypervisor == "TEST"
    assert facts.domcaps is None
    assert "not supported by the connection driver" in (facts.domcaps_error or "")
    assert facts.accel == "none"
    assert (facts.cpus, facts.memory_bytes) == (info[2], info[1] * 1024 * 1024)
    assert facts.caps.cpu_model == "AMD EPYC 7763"  # from the node file's <model>
    assert facts.free_memory_bytes is None  # libvirt 9.0's test driver reports 0 for custom files: unknown
    assert (facts.running.domains, facts.running.names) == (1, ("fleet-web1",))


@pytest.mark.libvirtd
def test_live_facts_over_tcp(tcp_uri: str) -> None:
    conn = open_or_fail(tcp_uri)
    try:
        facts = gather(conn)
        caps = parse_capabilities(conn.getCapabilities())
        lib = conn.getLibVersion()
    finally:
        conn.close()
    assert facts.libvirt_version == f"{lib // 1000000}.{lib // 1000 % 1000}.{lib % 1000}"
    assert facts.hypervisor == "QEMU"
    assert [n.id for n in facts.nodes] == [c.id for c in caps.cells]
    assert all(n.free_bytes and n.free_bytes > 0 for n in facts.nodes)
    assert all(dict(n.free_hugepages).keys() == {s for s in caps.page_sizes_kib if s > 4} for n in facts.nodes)
    cpuinfo = Path("/proc/cpuinfo").read_text().split()
    assert facts.accel == ("kvm" if {"vmx", "svm"} & set(cpuinfo) else "tcg")
    assert facts.domcaps is not None and facts.domcaps.virtiofs and "efi" in facts.domcaps.firmware

