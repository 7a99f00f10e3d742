"""securevm's launch security and firmware against recorded domain capabilities and firmware sets.

Issue 11: on Debian 12 (libvirt 9.0) ``<loader stateless='yes'/>`` and the SEV-ES policy
0x0007 made libvirt fail with "Unable to find any firmware to satisfy 'efi'", because no
Debian 12 descriptor is stateless or offers ``amd-sev-es``. The inputs here are recordings
(tests/data/domcaps, tests/data/firmware: see their README.md); the expected choices follow
libvirt's qemuFirmwareMatchDomain (v9.0.0, v11.3.0).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lxml import etree
from virtscenario.errors import VirtscenarioError
from virtscenario.host.firmware import FirmwareRequest, firmware_for, read_firmware, select
from virtscenario.host.hypervisor import parse_domcaps
from virtscenario.host.root import HostRoot

from .support import firmware_set, gen, sets

DATA = Path(__file__).resolve().parent.parent / "data"
LIBVIRT_9_0 = 9_000_000
LIBVIRT_11_3 = 11_003_000
NO_SCHEMA = "/nonexistent/domain.rng"  # the installed 9.0 schema knows neither sev-snp nor tdx


def caps(name: str, version: int):
    return parse_domcaps((DATA / "domcaps" / name).read_bytes(), libvirt_version=version)


def secure(domcaps: str, fw: str, version: int = LIBVIRT_9_0, *pairs: tuple[str, object]):
    return gen("securevm", caps=caps(domcaps, version), firmware=firmware_set(fw), libvirt_version=version,
               schema=None if version == LIBVIRT_9_0 else NO_SCHEMA, cli_settings=sets(*pairs))


def launch(generated) -> tuple[str, str, str | None]:
    root = etree.fromstring(generated.xml)
    loader = root.find("os/loader")
    return (root.find("launchSecurity").get("type"), root.findtext("launchSecurity/policy"),
            loader.get("stateless") if loader is not None else None)


def notes(generated) -> str:
    return " ".join(n.message for n in generated.notes)


@pytest.mark.parametrize(("domcaps", "fw", "version", "expected", "descriptor"), [
    # SEV only (maxESGuests 0) on Debian 12: SEV, NVRAM (Debian has no stateless build)
    ("amd-sev.xml", "debian12", LIBVIRT_9_0, ("sev", "0x0003", None), "60-edk2-x86_64.json"),
    # SEV-ES offered, but no amd-sev-es firmware: SEV with a note (was: 0x0007 and a failed start)
    ("amd-sev-es.xml", "debian12", LIBVIRT_9_0, ("sev", "0x0003", None), "60-edk2-x86_64.json"),
    # SEV-ES with an amd-sev-es firmware (split flash, the first without secure boot)
    ("amd-sev-es.xml", "with-sev-es", LIBVIRT_9_0, ("sev", "0x0007", None), "50-edk2-ovmf-4m-qcow2-x64-nosb.json"),
    # SEV-ES with a stateless AmdSev build: stateless, as securevm wants
    ("amd-sev-es.xml", "stateless-amdsev", LIBVIRT_9_0, ("sev", "0x0007", "yes"), "45-ovmf-sev-stateless.json"),
    # SEV-SNP (libvirt >= 10.5): Fedora's stateless OVMF.amdsev.fd
    ("amd-sev-snp.xml", "snp", LIBVIRT_11_3, ("sev-snp", "0x00030000", "yes"), "60-edk2-ovmf-x64-amdsev.json"),
    # TDX: the memory-device firmware (no NVRAM, so no stateless attribute)
    ("intel-tdx.xml", "tdx", 11_006_000, ("tdx", "0x10000000", None), "60-edk2-ovmf-x64-inteltdx.json"),
])
def test_launch_security_matrix(domcaps, fw, version, expected, descriptor) -> None:
    g = secure(domcaps, fw, version)
    assert launch(g) == expected
    assert f"firmware: libvirt's autoselection takes /{descriptor}" in notes(g)


def test_sev_es_without_an_es_firmware_says_why() -> None:
    text = notes(secure("amd-sev-es.xml", "debian12"))
    assert "SEV (policy 0x0003), not SEV-ES: no firmware descriptor" in text and "offers amd-sev-es" in text
    assert "firmware.stateless dropped: no stateless firmware offers sev" in text and "not measured" in text


def test_tdx_keeps_the_firmware_its_descriptor_has() -> None:
    """Fedora's only TDX firmware has secure boot with keys: securevm's 'no secure boot' request would
    exclude it, so it is not emitted (with a note), and the domain still turns SMM off."""
    g = secure("intel-tdx.xml", "tdx", 11_006_000)
    root = etree.fromstring(g.xml)
    assert root.find("os/firmware") is None and root.find("features/smm").get("state") == "off"
    assert "firmware.secure_boot and firmware.enrolled_keys not requested" in notes(g)


def test_what_the_user_names_is_refused_not_changed() -> None:
    with pytest.raises(VirtscenarioError) as err:
        secure("amd-sev-es.xml", "debian12", LIBVIRT_9_0, ("launch_security.type", "sev-es"))
    line = str(err.value)
    assert "\n" not in line and line.startswith("no firmware descriptor in /") and "amd-sev-es" in line
    assert "Unable to find any firmware to satisfy 'efi'" in line and "--set launch_security.type=sev" in line
    with pytest.raises(VirtscenarioError, match="offers UEFI for pc-q35-6.0, amd-sev, stateless"):
        secure("amd-sev.xml", "debian12", LIBVIRT_9_0, ("firmware.stateless", "on"))


def test_unknown_descriptors_take_the_conservative_path() -> None:
    """Offline or remote: SEV without a stateless loader, which every SEV-capable OVMF offers."""
    g = gen("securevm", firmware=None)  # offline, no descriptors known
    assert launch(g) == ("sev", "0x0003", None)
    text = notes(g)
    assert "not SEV-ES: a firmware with amd-sev-es cannot be checked for (offline" in text
    assert "firmware.stateless dropped: a stateless SEV firmware cannot be checked for" in text
    remote = gen("securevm", caps=caps("amd-sev-es.xml", LIBVIRT_9_0), firmware=None,
                 firmware_unknown=firmware_for("qemu+ssh://epyc/system", HostRoot())[1])
    assert launch(remote) == ("sev", "0x0003", None)
    assert "qemu+ssh://epyc/system is not this machine" in notes(remote)


def test_explicit_type_with_unknown_descriptors_is_kept_with_a_warning() -> None:
    g = gen("securevm", firmware=None, cli_settings=sets(("launch_security.type", "sev-es")))
    assert launch(g)[:2] == ("sev", "0x0007")
    assert any(n.level == "warning" and "cannot check that the host has a firmware for" in n.message
               and "amd-sev-es" in n.message for n in g.notes)


def test_firmware_for_reads_only_where_libvirt_runs_here(tmp_path) -> None:
    host = HostRoot(tmp_path)
    assert firmware_for("qemu+tcp://10.0.0.2/system", host)[0] is None
    assert firmware_for("test:///default", host)[1].startswith("the test driver")
    assert firmware_for(None, host)[1].startswith("no firmware descriptor directory")
    shutil.copytree(DATA / "firmware" / "debian12", tmp_path / "usr/share/qemu/firmware")
    found, why = firmware_for("qemu:///system", host)
    assert why == "" and [d.name for d in found.descriptors] == [
        "40-edk2-x86_64-secure-enrolled.json", "50-edk2-x86_64-secure.json", "60-edk2-x86_64.json"]
    assert firmware_for(None, host)[0] == found  # --host-root alone reads them too


def test_descriptor_directories_override_and_mask_by_file_name(tmp_path) -> None:
    """qemuInteropFetchConfigs: /etc/qemu/firmware replaces a same-named file, an empty file masks it."""
    shutil.copytree(DATA / "firmware" / "debian12", tmp_path / "usr/share/qemu/firmware")
    etc = tmp_path / "etc/qemu/firmware"
    etc.mkdir(parents=True)
    (etc / "40-edk2-x86_64-secure-enrolled.json").write_text("")  # masked
    shutil.copy(DATA / "firmware" / "stateless-amdsev" / "45-ovmf-sev-stateless.json",
                etc / "50-edk2-x86_64-secure.json")  # replaced
    fw = read_firmware(HostRoot(tmp_path))
    assert [(d.name, d.path) for d in fw.descriptors] == [
        ("50-edk2-x86_64-secure.json", "/etc/qemu/firmware/50-edk2-x86_64-secure.json"),
        ("60-edk2-x86_64.json", "/usr/share/qemu/firmware/60-edk2-x86_64.json")]
    assert fw.descriptors[0].stateless and "amd-sev-es" in fw.descriptors[0].features


def test_libvirt_9_0_refuses_smm_off_with_a_firmware_that_requires_it() -> None:
    """9.0 picks the first match, then fails ('domain has SMM turned off but chosen firmware requires it');
    11.3 skips such descriptors. So on 9.0 <smm state='off'/> needs secure-boot='no' too."""
    fw = firmware_set("debian12")
    smm_off = FirmwareRequest(smm=False)
    assert "requires SMM" in select(fw, smm_off, LIBVIRT_9_0).error
    assert select(fw, smm_off, LIBVIRT_11_3).descriptor.name == "60-edk2-x86_64.json"
    assert select(fw, FirmwareRequest(smm=False, secure_boot=False), LIBVIRT_9_0).descriptor.name == \
        "60-edk2-x86_64.json"
    assert select(fw, FirmwareRequest(stateless=True), LIBVIRT_9_0).error == \
        "Unable to find any firmware to satisfy 'efi'"


def test_securevm_without_launch_security_keeps_its_firmware_choices_that_exist() -> None:
    """What the CI boot does under TCG (no SEV): the scenario's stateless wish falls back, with a note."""
    g = gen("securevm", cli_settings=sets(("launch_security.type", "none")))
    root = etree.fromstring(g.xml)
    assert root.find("launchSecurity") is None and root.find("os/loader") is None
    assert "firmware.stateless dropped: no firmware descriptor in " in notes(g)
    assert "/60-edk2-x86_64.json comes with an NVRAM varstore" in notes(g)
    # What is shown, recorded and summarised is what is emitted: off, adapted, with the reason.
    item = g.settings["firmware.stateless"]
    assert (item.value, item.layer) == (False, "adapted")
    assert item.rationale.startswith("off: no firmware descriptor in ") and "NVRAM varstore" in item.rationale


def test_a_stateless_loader_kept_stays_the_scenarios_choice() -> None:
    g = secure("amd-sev-snp.xml", "snp", LIBVIRT_11_3)
    assert (g.settings["firmware.stateless"].value, g.settings["firmware.stateless"].layer) == (True, "scenario")
    tdx = secure("intel-tdx.xml", "tdx", 11_006_000)  # no NVRAM at all: nothing was dropped
    assert tdx.settings["firmware.stateless"].layer == "scenario"
