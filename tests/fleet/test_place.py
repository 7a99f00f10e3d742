"""Placement: reasons per host from recorded SEV / SEV-ES / SEV-SNP / TDX / TCG hosts, and live over tcp and ssh."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from virtscenario.fleet.check import HostResult
from virtscenario.fleet.facts import assemble, parse_domcaps
from virtscenario.fleet.inventory import Host
from virtscenario.fleet.needs import scenario_needs
from virtscenario.fleet.place import W_CPU, W_KVM, W_MEMORY, place, score_parts

from .conftest import UNREACHABLE_URI, answers_from, node_uri, recorded

FOUR_NODES = "libvirt-4node-basic.xml"  # 4 NUMA nodes x 4 CPUs, 1+2+3+4 GiB, hugepages per node
GIB = 1024**3


def host(name: str, domcaps: str, caps: str = FOUR_NODES, running: tuple[str, ...] = (),
         free_pages: Optional[dict[int, dict[int, int]]] = None, domcaps_xml: Optional[str] = None) -> HostResult:
    xml = domcaps_xml or recorded("domcaps", domcaps)
    vt = parse_domcaps(xml).virt_type
    facts = assemble(answers_from(recorded("caps", caps), {vt: xml}, running=running, free_pages=free_pages))
    return HostResult(Host(name, f"qemu+ssh://{name}/system"), facts, None, 0.01)


def fleet() -> list[HostResult]:
    return [host("sev-es", "amd-sev-es.xml"), host("sev", "amd-sev.xml"), host("snp", "amd-sev-snp.xml"),
            host("tdx", "intel-tdx.xml"), host("tcg", "tcg-this-host.xml", caps="this-host.xml"),
            HostResult(Host("dead", UNREACHABLE_URI), None, "unable to connect to server: Connection refused", 0.0)]


def needs(scenario: str, *sets: str, memory: Optional[str] = None, vcpus: Optional[str] = None) -> Any:
    values: list[tuple[str, Any, str]] = [(s.split("=", 1)[0], s.split("=", 1)[1], "--set") for s in sets]
    if memory:
        values.append(("vm.memory", memory, "--memory"))
    if vcpus:
        values.append(("vm.vcpus", vcpus, "--vcpus"))
    return scenario_needs(scenario, "fleet-vm", values)


def reasons(placement: Any) -> dict[str, tuple[str, ...]]:
    return {d.host: d.reasons for d in placement.decisions}


def running_sev(count: int, policy: str = "0x0003", kind: str = "sev") -> tuple[str, ...]:
    return tuple(f"<domain type='kvm'><name>s{i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                 f"<launchSecurity type='{kind}'><policy>{policy}</policy></launchSecurity></domain>"
                 for i in range(count))


def test_securevm_auto_takes_the_strongest_offered_and_rejects_the_rest() -> None:
    p = place(needs("securevm"), fleet())
    by = {d.host: d for d in p.decisions}
    assert [by[h].launch_security for h in ("sev-es", "sev", "snp", "tdx")] == ["sev-es", "sev", "sev-snp", "tdx"]
    assert not by["tcg"].accepted
    assert by["tcg"].reasons == (
        "KVM: launch security needs it; this host runs TCG only (its CPU has no vmx/svm or /dev/kvm is unusable)",
        "launch security auto: this host offers none (no SEV, SEV-SNP or TDX in its domain capabilities under KVM)")
    assert by["dead"].reasons == ("unreachable: unable to connect to server: Connection refused",)
    assert p.chosen is not None and p.chosen.host == "sev-es"  # equal scores: the first in the inventory
    assert p.ordered()[-1] is p.chosen


@pytest.mark.parametrize("wanted, accepted, why", [
    ("sev-snp", {"snp"}, {"sev-es": "launch security sev-snp: not offered (offered: sev-es, sev)",
                          "tdx": "launch security sev-snp: not offered (offered: tdx)"}),
    ("sev-es", {"sev-es", "snp"}, {"sev": "launch security sev-es: not offered (offered: sev)"}),
    ("sev", {"sev-es", "sev", "snp"}, {"tdx": "launch security sev: not offered (offered: tdx)"}),
    ("tdx", {"tdx"}, {"snp": "launch security tdx: not offered (offered: sev-snp, sev-es, sev)"}),
])
def test_each_launch_security_type(wanted: str, accepted: set[str], why: dict[str, str]) -> None:
    p = place(needs("securevm", f"launch_security.type={wanted}"), fleet())
    assert {d.host for d in p.decisions if d.accepted} == accepted
    for name, reason in why.items():
        assert reason in reasons(p)[name]
    assert all(d.launch_security == wanted for d in p.decisions if d.accepted)


def test_free_sev_slots() -> None:
    full = host("full", "amd-sev-es.xml", running=running_sev(59))  # maxGuests 59 SEV guests already run
    p = place(needs("securevm", "launch_security.type=sev"), [full])
    assert reasons(p)["full"] == ("launch security sev: no free guest slot (maxGuests reached by running guests)",)
    p = place(needs("securevm"), [full])  # auto: SEV-ES still has 450 slots
    assert p.chosen and p.chosen.launch_security == "sev-es"
    assert "sev-es: 450 free guest slot(s)" in p.chosen.notes
    es_full = host("es-full", "amd-sev-snp.xml", running=running_sev(300, "0x0007") + running_sev(150, "0x30000",
                                                                                                 "sev-snp"))
    p = place(needs("securevm", "launch_security.type=sev-snp"), [es_full])
    assert "no free guest slot (maxESGuests reached" in reasons(p)["es-full"][0]


def test_hugepages_of_the_planned_size_on_one_node() -> None:
    pages = {0: {2048: 1000, 1048576: 2}, 1: {2048: 1000, 1048576: 3}, 2: {2048: 0, 1048576: 0},
             3: {2048: 0, 1048576: 0}}
    big = host("h", "amd-sev-es.xml", free_pages=pages)
    n = needs("computation", "memory.hugepage_size=1G", "cpu.pinning=none", memory="8G")
    assert reasons(place(n, [big]))["h"] == (
        "hugepages: needs 8 free 1 GiB pages on one NUMA node; the most is 3 (node 1)",)
    n = needs("computation", "cpu.pinning=none", memory="2000M")  # 1000 x 2 MiB pages on node 0 suffice
    assert place(n, [big]).chosen is not None
    n = needs("computation", "memory.hugepage_size=16G", "cpu.pinning=none", memory="16G")
    assert "hugepages: the host has no 16 GiB pages (sizes: 2 MiB, 1 GiB)" in reasons(place(n, [big]))["h"]


def test_dedicated_and_isolated_cpus() -> None:
    pinned = tuple(f"<domain><name>p{i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                   f"<cputune><vcpupin vcpu='0' cpuset='{cpu}'/></cputune></domain>" for i, cpu in enumerate((1, 2)))
    h = host("h", "amd-sev-es.xml", running=pinned)
    n = needs("computation", "memory.hugepages=off", vcpus="11")
    assert reasons(place(n, [h]))["h"] == ("CPU pinning: needs 11 CPUs of its own; the host has 10 left after 1 "
                                           "housekeeping core(s) per NUMA node and 2 pinned by running VMs",)
    assert place(needs("computation", "memory.hugepages=off", vcpus="10"), [h]).chosen is not None
    n = needs("desktop", "host.isolated_cpus=2-31")
    assert "isolated CPUs: host.isolated_cpus=2-31 names CPUs the host does not have (16-31; it has 16)" in \
        reasons(place(n, [h]))["h"]


def test_devices_firmware_and_kvm() -> None:
    xml = recorded("domcaps", "amd-sev-es.xml")
    bare = xml.replace("<value>virtiofs</value>", "").replace("<value>emulator</value>", "")
    assert bare != xml
    h = host("bare", "", domcaps_xml=bare)
    assert reasons(place(needs("desktop"), [h]))["bare"] == (
        "virtiofs: the host's QEMU has no virtiofs filesystem driver (filesystem.share)",
        "TPM: backend emulator not offered (swtpm is not installed there)")
    no_efi = host("bios", "", domcaps_xml=xml.replace("<value>efi</value>", ""))
    assert "UEFI: the host has no UEFI firmware for QEMU (OVMF is not installed there)" in \
        reasons(place(needs("desktop"), [no_efi]))["bios"]
    tcg = host("tcg", "tcg-this-host.xml", caps="this-host.xml")
    p = place(needs("desktop", memory="1G"), [tcg])
    assert p.chosen and "TCG only: create adapts vm.virt_type to qemu (emulation, much slower)" in p.chosen.notes
    p = place(needs("desktop", "vm.virt_type=kvm", memory="1G"), [tcg])
    assert reasons(p)["tcg"][0].startswith("KVM: vm.virt_type=kvm was asked for; this host runs TCG only")


def test_cpu_model_for_migration_and_memory() -> None:
    n = needs("desktop", "vm.migratable=on", "cpu.mode=custom", "cpu.model=EPYC-Milan", "filesystem.share=off",
              "tpm.model=none")
    p = place(n, [host("snp", "amd-sev-snp.xml"), host("tdx", "intel-tdx.xml")])
    assert reasons(p)["tdx"] == ("CPU model EPYC-Milan (the migration CPU): not usable on this host's GraniteRapids",)
    assert p.chosen is not None and p.chosen.host == "snp"
    p = place(needs("desktop", memory="64G"), [host("snp", "amd-sev-snp.xml")])
    assert reasons(p)["snp"] == ("memory: the VM needs 64 GiB, the host has 10 GiB in all",)
    p = place(needs("desktop", vcpus="300"), [host("sev-es", "amd-sev-es.xml")])  # QEMU 6.0's q35: 288
    assert reasons(p)["sev-es"] == ("vCPUs: the VM has 300, this host's pc-q35-6.0 takes at most 288",)


def test_score_formula_and_ranking() -> None:
    idle = host("idle", "amd-sev-es.xml")
    busy_doms = tuple(f"<domain><name>b{i}</name><memory unit='GiB'>1</memory><vcpu>4</vcpu></domain>"
                      for i in range(2))
    busy = host("busy", "amd-sev-es.xml", running=busy_doms)
    assert busy.facts is not None
    busy = HostResult(busy.host, replace(busy.facts, free_memory_bytes=5 * GIB), None, 0.0)
    tcg = host("tcg", "tcg-this-host.xml", caps="this-host.xml")
    n = needs("desktop", memory="2G", vcpus="2")
    for r in (idle, busy, tcg):
        f = r.facts
        assert f is not None
        want = (W_MEMORY * max(0, f.free_memory_bytes - n.memory_bytes) / f.memory_bytes,
                W_CPU * max(0.0, 1 - (f.running.vcpus + n.vcpus) / f.cpus), W_KVM if f.accel == "kvm" else 0.0)
        assert dict(score_parts(n, f)) == {"memory": round(want[0], 1), "cpu": round(want[1], 1), "kvm": want[2]}
    p = place(n, [busy, tcg, idle])
    assert [d.host for d in p.ordered()] == ["busy", "tcg", "idle"]
    assert p.chosen is not None and p.chosen.host == "idle"
    assert p.chosen.score == round(sum(v for _k, v in p.chosen.score_parts), 1)


def test_test_driver_hosts_are_rejected_with_their_facts() -> None:
    from virtscenario.fleet.check import check_hosts
    results = check_hosts([Host("epyc", node_uri("node-epyc.xml"))], 5)
    p = place(needs("desktop"), results)
    assert reasons(p)["epyc"] == (
        "arch: the VM is x86_64, this host runs i686 guests",
        "no QEMU guests: the TEST driver gives no domain capabilities (this function is not supported by the "
        "connection driver: virConnectGetDomainCapabilities)")


@pytest.mark.libvirtd
def test_cli_place_over_real_transports(fleet_cli: Callable[..., tuple[int, str, str]],
                                        write_inventory: Callable[..., Path], tcp_uri: str, ssh_uri: str) -> None:
    inv = write_inventory({"tcp": tcp_uri, "ssh": ssh_uri, "epyc": node_uri("node-epyc.xml"),
                           "dead": UNREACHABLE_URI})
    code, out, err = fleet_cli("hosts", "place", "desktop", "--name", "fleet-web", "--memory", "512M",
                               "--hosts", str(inv), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["chosen"] in ("tcp", "ssh")
    assert data["hosts"][-1]["host"] == data["chosen"]
    by = {h["host"]: h for h in data["hosts"]}
    assert by["tcp"]["accepted"] and by["ssh"]["accepted"]
    assert by["dead"]["reasons"][0].startswith("unreachable: ")
    assert not by["epyc"]["accepted"]
    assert data["needs"]["memory_bytes"] == 512 * 1024**2 and data["needs"]["virtiofs"] is True
    # computation needs 8 GiB of 2 MiB hugepages on one node and 6 dedicated CPUs: this 2-CPU host has neither
    code, out, err = fleet_cli("hosts", "place", "computation", "--hosts", str(inv))
    assert code == 1
    assert err.strip().splitlines() == ["Error: no host of the inventory can run vm (computation); the reasons are "
                                        "above"]
    assert "  tcp: rejected" in out and "CPU pinning: needs 6 CPUs of its own" in out
    assert "hugepages: needs 4096 free 2 MiB pages on one NUMA node" in out
    assert "Chosen:" not in out
