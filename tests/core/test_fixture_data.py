"""The recorded domain capabilities, host capabilities and firmware descriptor sets load.

They are inputs for the launch-security and NUMA work of issue 11; see the README.md
next to each set for where every file comes from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from virtscenario.domain.caps import offered_launch_security
from virtscenario.host.hypervisor import parse_capabilities, parse_domcaps

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize(("name", "offered"), [
    ("tcg-this-host.xml", []),
    ("amd-sev.xml", ["sev"]),
    ("amd-sev-es.xml", ["sev-es", "sev"]),
    ("amd-sev-snp.xml", ["sev-snp", "sev-es", "sev"]),
    ("intel-tdx.xml", ["tdx"]),
])
def test_domcaps_recordings_parse(name: str, offered: list[str]) -> None:
    caps = parse_domcaps((DATA / "domcaps" / name).read_bytes())
    assert caps.arch == "x86_64"
    assert caps.machine.startswith("pc-q35-")
    assert "efi" in caps.firmware
    assert offered_launch_security(caps) == offered


def test_sev_only_recording_has_no_es_asids() -> None:
    caps = parse_domcaps((DATA / "domcaps" / "amd-sev.xml").read_bytes())
    assert caps.sev.supported and caps.sev.max_es_guests == 0 and caps.sev.max_guests == 1006


def test_host_capabilities_parse() -> None:
    host, machines = parse_capabilities((DATA / "caps" / "this-host.xml").read_bytes())
    assert host.cpus and "pc-q35-7.2" in machines
    assert 1048576 in host.hugepage_sizes_kib  # offered, though none is reserved
    four, _ = parse_capabilities((DATA / "caps" / "libvirt-4node-basic.xml").read_bytes())
    assert sorted({c.node for c in four.cpus}) == [0, 1, 2, 3]


def _features(path: Path) -> dict[str, tuple[str, str, frozenset[str]]]:
    """File name -> (device, flash mode, features) for every descriptor of a set."""
    out = {}
    for f in sorted(path.glob("*.json")):
        desc = json.loads(f.read_text(encoding="utf-8"))
        mapping = desc["mapping"]
        # firmware.json: "mode" defaults to "split" for flash devices.
        out[f.name] = (mapping["device"], mapping.get("mode", "split"), frozenset(desc["features"]))
    return out


def _matching(path: Path, feature: str, mode: str) -> list[str]:
    return [name for name, (device, m, feats) in _features(path).items()
            if feature in feats and (device != "flash" or m == mode)]


def test_firmware_sets_offer_what_their_names_say() -> None:
    fw = DATA / "firmware"
    assert {p.name for p in fw.iterdir() if p.is_dir()} == {"debian12", "with-sev-es", "stateless-amdsev", "snp", "tdx"}
    for d in fw.iterdir():
        if d.is_dir():
            assert (d / "README.md").is_file() and _features(d), d
    # Debian 12: SEV only, split firmware only.
    assert _matching(fw / "debian12", "amd-sev", "split") == [
        "40-edk2-x86_64-secure-enrolled.json", "50-edk2-x86_64-secure.json", "60-edk2-x86_64.json"]
    assert _matching(fw / "debian12", "amd-sev-es", "split") == []
    assert _matching(fw / "debian12", "amd-sev", "stateless") == []
    assert _matching(fw / "with-sev-es", "amd-sev-es", "split") == [
        "50-edk2-ovmf-4m-qcow2-x64-nosb.json", "51-edk2-ovmf-2m-raw-x64-nosb.json"]
    assert _matching(fw / "stateless-amdsev", "amd-sev-es", "stateless") == ["45-ovmf-sev-stateless.json"]
    assert _matching(fw / "snp", "amd-sev-snp", "stateless") == ["60-edk2-ovmf-x64-amdsev.json"]
    assert _matching(fw / "tdx", "intel-tdx", "split") == ["60-edk2-ovmf-x64-inteltdx.json"]
