"""``verify``'s checks against a guest's /sys and /proc, as the probe prints them (no VM here).

The probe text below is what the test guest printed under TCG (tests/guest/test_verify.py runs
the same checks on real guests); here each check is driven to agree and to disagree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from virtscenario.vm.verify import (
    VerifiedVm,
    check_clock,
    check_memory,
    check_nics,
    check_tpm,
    expected_topology,
    parse_probe,
)

PROBE = """cpu cpu0 0 0 0
cpu cpu1 0 0 1
memmap 0x0 0x9fbff System RAM
memmap 0x9fc00 0x9ffff Reserved
memmap 0x100000 0xfffdfff System RAM
memmap 0xb0000000 0xbfffffff Reserved
memtotal 187448
block sr0 744 0
block vda 131072 2147483136
block loop0 0 0
net eth0 52:54:00:AA:BB:CC 2
tpm tpm0 2 tpm_crb
clocksource acpi_pm
"""

DOMAIN = """<domain type="qemu"><name>v</name><memory unit="KiB">262144</memory><vcpu>2</vcpu>
<cpu><topology sockets="1" dies="1" cores="2" threads="1"/></cpu>
<clock offset="utc"><timer name="hpet" present="no"/></clock>
<devices><interface type="network"><mac address="52:54:00:aa:bb:cc"/><model type="virtio"/>
<driver queues="4"/></interface><tpm model="tpm-crb"><backend type="emulator" version="2.0"/></tpm></devices>
</domain>"""


def test_probe_is_parsed():
    probe = parse_probe(PROBE)
    assert probe.cpus == (("cpu0", "0", "0", "0"), ("cpu1", "0", "0", "1"))
    assert probe.ram_bytes == 0xa0000 - 0x400 + 0xfffe000 - 0x100000
    assert probe.disks == (("vda", 64 * 1024**2, 2147483136),)  # sr0 and loop0 are not the VM's disks
    assert probe.nics == (("eth0", "52:54:00:aa:bb:cc", 2),)
    assert probe.tpms == (("tpm0", "2", "tpm_crb"),) and probe.clocksource == "acpi_pm"


def test_checks_agree_with_the_guest_they_describe():
    domain = etree.fromstring(DOMAIN)
    probe = parse_probe(PROBE)
    assert expected_topology(domain) == (1, 1, 2, 1)
    assert check_memory(domain, probe).ok
    nics = check_nics(domain, probe)
    assert [(c.check, c.ok) for c in nics] == [("NICs", True), ("queue pairs eth0", True)]
    assert nics[1].expected == "2 (queues=4, 2 vCPUs)"  # virtio-net uses min(queue pairs, CPUs)
    assert check_tpm(domain, probe).ok and check_clock(domain, probe).ok


@pytest.mark.parametrize("change,check,observed", [
    (("memory", "text", "524288"), check_memory, "256 MiB System RAM in the firmware's memory map"),
    (("devices/interface/mac", "address", "52:54:00:00:00:01"), check_nics, "1: eth0 52:54:00:aa:bb:cc"),
    (("devices/tpm", "model", "tpm-tis"), check_tpm, "tpm0: TPM 2.0, driver tpm_crb"),
    (("", "type", "kvm"), check_clock, "acpi_pm"),
])
def test_checks_disagree_when_the_decision_differs(change, check, observed):
    domain = etree.fromstring(DOMAIN)
    path, attr, value = change
    el = domain.find(path) if path else domain
    if attr == "text":
        el.text = value
    else:
        el.set(attr, value)
    result = check(domain, parse_probe(PROBE))
    row = result[0] if isinstance(result, list) else result
    assert row.ok is False and row.status == "MISMATCH" and row.observed == observed


def test_absent_tpm_and_other_guests():
    domain = etree.fromstring(DOMAIN.replace('<tpm model="tpm-crb"><backend type="emulator" version="2.0"/></tpm>',
                                             ""))
    assert check_tpm(domain, parse_probe(PROBE)).ok is False  # the guest has one the XML does not
    assert check_tpm(domain, parse_probe(PROBE.replace("tpm tpm0 2 tpm_crb\n", ""))).ok is True
    skipped = check_memory(domain, None)
    assert skipped.ok is None and skipped.status == "skipped"


def test_verify_command_errors_are_one_line(tmp_path: Path, use_pm):
    from virtscenario.cli.app import cli

    from ..conftest import make_pm
    use_pm(make_pm())
    result = CliRunner().invoke(cli, ["verify", "ghost", "--output", str(tmp_path)])
    assert result.exit_code == 1
    assert "no VM 'ghost' in the store" in str(result.exception)
    vm = VerifiedVm("v", "x", tmp_path, {}, etree.fromstring(DOMAIN), {})
    from virtscenario.vm.verify import AgentSilent, verify
    with pytest.raises(AgentSilent, match="has no guest agent channel") as info:
        verify(vm, None, 1)
    assert info.value.exit_code == 2
