"""What each scenario decides, that every decision is justified, and the behaviour behind it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from lxml import etree
from virtscenario.errors import ConfigError, VirtscenarioError
from virtscenario.settings.resolve import resolve_scenario as resolve_settings
from virtscenario.settings.userfile import UserConfig
from virtscenario.types import Choice, Scenario

from .support import LIBVIRT_9_0, PLAIN_CAPS, SCENARIOS, catalog, epyc_host, firmware_set, gen, sets, sev_caps

#: Every knob upstream's scenarios decide (upstream-virt-scenario.md §2-§3): each of ours decides it too.
UPSTREAM_KNOBS = (
    "vm.vcpus", "vm.memory",
    "cpu.mode", "cpu.migratable", "cpu.check", "cpu.cache", "cpu.topology", "cpu.iothreads",
    "memory.source", "memory.access", "memory.hugepages", "memory.balloon",
    "disk.format", "disk.cache", "disk.bus", "disk.preallocation", "disk.encryption", "disk.cluster_size",
    "disk.lazy_refcounts", "disk.compression", "disk.size",
    "network.model", "graphics.type", "video.model", "input.tablet",
    "input.keyboard", "input.mouse", "sound.model", "usb.controller", "watchdog.model", "tpm.model", "rng.model",
    "channel.guest_agent", "console.serial", "vm.on_poweroff", "vm.on_reboot", "vm.on_crash",
    "pm.suspend_to_mem", "pm.suspend_to_disk", "features.smm", "clock.offset", "clock.rtc_tickpolicy",
    "clock.pit_tickpolicy", "clock.hpet", "firmware.type", "firmware.secure_boot", "filesystem.share",
    "host.thp", "host.ksm", "host.ksm_merge_across_nodes", "host.swappiness", "host.io_scheduler",
)
URL = re.compile(r"^https://[^\s]+")


def scenario(name: str) -> Scenario:
    return catalog().scenario(name).scenario


def decided(name: str) -> dict[str, Choice]:
    return {c.key: c for c in scenario(name).choices}


def settings(name: str, *pairs: tuple[str, object]):
    return resolve_settings(catalog(), name, UserConfig(), sets(*pairs))[1]


def xml(generated) -> etree._Element:
    return etree.fromstring(generated.xml)


# -- every decision is justified -----------------------------------------------------------
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_choice_has_a_rationale_and_a_url_reference(name: str) -> None:
    for choice in scenario(name).choices:
        assert len(choice.rationale.split()) >= 4, f"{name} {choice.key}: rationale too thin: {choice.rationale!r}"
        assert URL.match(choice.reference), f"{name} {choice.key}: reference is not a URL: {choice.reference!r}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_upstream_knob_is_decided(name: str) -> None:
    missing = [k for k in UPSTREAM_KNOBS if k not in decided(name)]
    assert not missing, f"{name} leaves upstream knobs to core defaults: {missing}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_decisions_are_known_keys_with_valid_values(name: str) -> None:
    resolved = settings(name)
    for key, choice in decided(name).items():
        item = resolved[key]
        assert item.source.startswith(f"scenario {name} (virtscenario-{name} ")
        assert item.rationale == choice.rationale and item.reference == choice.reference


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_show_json_carries_rationale_and_reference(name: str, use_pm, capsys) -> None:
    import json

    from virtscenario.cli.app import main

    from .support import plugin_manager
    use_pm(plugin_manager())
    main(["scenarios", "show", name, "--json"])  # returns on success, exits on failure
    data = json.loads(capsys.readouterr().out)
    rows = {r["key"]: r for r in data["settings"]}
    for key, choice in decided(name).items():
        assert rows[key]["rationale"] == choice.rationale and rows[key]["reference"] == choice.reference


def test_host_requirements_are_stated() -> None:
    expected = {
        "desktop": {"host.thp": "madvise", "host.ksm": "off", "host.swappiness": 35, "host.io_scheduler": "bfq"},
        "computation": {"host.hugepages": True, "host.ksm": "off", "host.ksm_merge_across_nodes": False,
                        "host.swappiness": 10, "host.io_scheduler": "mq-deadline", "host.thp": "madvise"},
        "securevm": {"host.sev": True, "host.ksm": "off", "host.swappiness": 10},
    }
    for name, wanted in expected.items():
        reqs = {r.key: r for r in gen(name).host_requirements}
        for key, value in wanted.items():
            assert reqs[key].value == value, (name, key)
            assert reqs[key].scenario == name and reqs[key].vm == f"golden-{name}"
    hp = {r.key: r for r in gen("computation").host_requirements}["host.hugepages"]
    assert hp.vm_memory_bytes == 8 * 2**30  # the host plugin sizes the reservation from it


# -- desktop -------------------------------------------------------------------------------
def test_desktop_defining_settings() -> None:
    s = settings("desktop")
    assert s.value("filesystem.share") is True and s.value("filesystem.readonly") is True
    assert (s.value("memory.source"), s.value("memory.access")) == ("memfd", "shared")
    assert (s.value("tpm.model"), s.value("tpm.backend"), s.value("tpm.version")) == ("tpm-crb", "emulator", "2.0")
    assert s.value("sound.model") == "ich9" and s.value("graphics.type") == "spice"
    assert s.value("graphics.keymap") is None
    assert s.value("pm.suspend_to_mem") is False and "virt-install" in s["pm.suspend_to_mem"].rationale
    assert (s.value("firmware.type"), s.value("firmware.secure_boot")) == ("efi", True)


def test_desktop_xml_shares_a_dedicated_dir_over_virtiofs_and_emits_sound(tmp_path) -> None:
    root = xml(gen("desktop", store_root=tmp_path))
    fs = root.find("devices/filesystem")
    assert fs.find("driver").get("type") == "virtiofs"
    assert fs.find("source").get("dir") == str(tmp_path / "golden-desktop" / "share")
    assert root.find("memoryBacking/source").get("type") == "memfd"
    assert root.find("memoryBacking/access").get("mode") == "shared"
    assert root.find("devices/sound").get("model") == "ich9"
    assert root.find("devices/tpm/backend").attrib == {"type": "emulator", "version": "2.0"}
    assert root.find("devices/graphics").get("keymap") is None
    assert len(root.findall("devices/redirdev[@type='spicevmc']")) == 2


def test_desktop_readonly_share_follows_the_libvirt_version() -> None:
    old = gen("desktop", libvirt_version=LIBVIRT_9_0)
    assert xml(old).find("devices/filesystem/readonly") is None
    assert any("refuses <readonly/> on virtiofs" in n.message and n.level == "warning" for n in old.notes)
    new = gen("desktop", libvirt_version=11_000_000)
    assert xml(new).find("devices/filesystem/readonly") is not None
    assert not any("readonly" in n.message for n in new.notes)


def test_desktop_share_can_be_turned_off() -> None:
    root = xml(gen("desktop", cli_settings=sets(("filesystem.share", "off"))))
    assert root.find("devices/filesystem") is None
    # memfd/shared stays harmless without a share; a user may drop it as well:
    root = xml(gen("desktop", cli_settings=sets(("filesystem.share", "off"), ("memory.source", "unset"),
                                                ("memory.access", "unset"))))
    assert root.find("memoryBacking") is None


def test_desktop_usb_redirection_needs_spice() -> None:
    g = gen("desktop", cli_settings=sets(("graphics.type", "vnc")))
    assert xml(g).find("devices/redirdev") is None
    assert any("desktop.usb_redirect=2 ignored" in n.message for n in g.notes)
    root = xml(gen("desktop", cli_settings=sets(("desktop.usb_redirect", "4"))))
    assert len(root.findall("devices/redirdev")) == 4


# -- computation ---------------------------------------------------------------------------
def test_computation_defining_settings() -> None:
    s = settings("computation")
    assert (s.value("cpu.mode"), s.value("cpu.cache"), s.value("cpu.topology"), s.value("cpu.pinning")) == \
        ("host-passthrough", "passthrough", "host", "auto")
    assert s.value("memory.hugepages") is True and s.value("memory.hugepage_size") == 2 * 2**20
    assert s.value("network.queues") == 0
    assert s.value("disk.cache") == "none" and "unsafe" in s["disk.cache"].rationale


def test_computation_pins_in_host_topology_with_hugepages_and_multiqueue() -> None:
    root = xml(gen("computation"))
    pins = [(p.get("vcpu"), p.get("cpuset")) for p in root.findall("cputune/vcpupin")]
    # SMT siblings are cpu N and N+8 on the fixture host; core 0 is housekeeping.
    assert pins == [("0", "1"), ("1", "9"), ("2", "2"), ("3", "10"), ("4", "3"), ("5", "11")]
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,8"
    assert root.find("cpu/topology").attrib == {"sockets": "1", "dies": "1", "cores": "3", "threads": "2"}
    assert root.find("memoryBacking/hugepages/page").attrib == {"size": "2048", "unit": "KiB"}
    assert root.find("devices/interface/driver").get("queues") == "6"
    assert root.find("devices/disk/driver").get("cache") == "none"
    assert root.find("features/kvm/hint-dedicated").get("state") == "on"


def test_computation_without_host_topology_drops_the_dedicated_hint() -> None:
    g = gen("computation", host=None)
    root = xml(g)
    assert root.find("cputune") is None and root.find("features/kvm") is None
    notes = " ".join(n.message for n in g.notes)
    assert "vCPUs are not pinned" in notes and "kvm_hint_dedicated dropped" in notes


def test_computation_iothreads_follow_the_virtio_disks() -> None:
    from virtscenario.domain.sections.disks import DiskArg
    g = gen("computation", disks=[DiskArg(size="1G"), DiskArg(size="1G"), DiskArg(size="1G")])
    root = xml(g)
    assert root.findtext("iothreads") == "3"
    assert [d.find("driver").get("iothread") for d in root.findall("devices/disk")] == ["1", "2", "3"]
    assert [p.get("iothread") for p in root.findall("cputune/iothreadpin")] == ["1", "2", "3"]
    assert any("cpu.iothreads=4 reduced to 3" in n.message for n in g.notes)


def test_computation_hugepages_need_whole_pages() -> None:
    from virtscenario.errors import ValidationError
    with pytest.raises(ValidationError, match="not a multiple of the 2048 KiB hugepage size"):
        gen("computation", cli_settings=[("vm.memory", "1025MiB", "--memory")])


# -- securevm ------------------------------------------------------------------------------
def test_securevm_defining_settings() -> None:
    s = settings("securevm")
    assert s.value("launch_security.type") == "auto" and s.value("devices.iommu") is True
    assert s.value("memory.hard_limit_overhead") == 256 * 2**20
    assert s.value("disk.encryption") is True and s.value("disk.format") == "qcow2"
    assert s.value("filesystem.share") is False and s.value("firmware.stateless") is True
    assert s.value("memory.balloon") == "none" and s.value("channel.guest_agent") is False


def test_securevm_on_debian12_is_sev_and_every_virtio_device_uses_the_iommu() -> None:
    """Debian 12's descriptors offer amd-sev, split flash only: SEV (0x0003) with an NVRAM, which starts."""
    root = xml(gen("securevm"))
    ls = root.find("launchSecurity")
    assert ls.get("type") == "sev" and ls.findtext("policy") == "0x0003" and ls.find("cbitpos") is None
    drivers = [d for d in root.iter("driver") if d.getparent().tag in ("disk", "interface", "rng", "memballoon",
                                                                          "video", "controller")]
    assert drivers and all(d.get("iommu") == "on" for d in drivers)
    assert root.find("devices/disk/source/encryption").get("format") == "luks"
    assert root.find("devices/filesystem") is None and root.find("devices/memballoon").get("model") == "none"
    assert root.find("os/loader") is None
    # a host with a stateless SEV-ES build gets what securevm asks for
    stateless = xml(gen("securevm", firmware=firmware_set("stateless-amdsev")))
    assert stateless.findtext("launchSecurity/policy") == "0x0007"
    assert stateless.find("os/loader").get("stateless") == "yes"


def test_securevm_connected_picks_the_strongest_type() -> None:
    es = xml(gen("securevm", caps=sev_caps(), firmware=firmware_set("with-sev-es")))
    assert es.find("launchSecurity").get("type") == "sev" and es.findtext("launchSecurity/policy") == "0x0007"
    assert es.findtext("launchSecurity/cbitpos") == "51" and es.findtext("launchSecurity/reducedPhysBits") == "1"
    plain = xml(gen("securevm", caps=sev_caps(es_guests=0), firmware=firmware_set("with-sev-es")))
    assert plain.findtext("launchSecurity/policy") == "0x0003"
    snp = gen("securevm", caps=sev_caps(snp=True, libvirt_version=10_005_000), libvirt_version=10_005_000,
              firmware=firmware_set("snp"), schema="/nonexistent/domain.rng")  # 9.0's schema lacks sev-snp
    ls = xml(snp).find("launchSecurity")
    assert ls.get("type") == "sev-snp" and ls.findtext("policy") == "0x00030000"
    tdx = xml(gen("securevm", caps=replace(PLAIN_CAPS, tdx=True, libvirt_version=11_006_000),
                  libvirt_version=11_006_000, firmware=firmware_set("tdx"), schema="/nonexistent/domain.rng"))
    assert tdx.find("launchSecurity").get("type") == "tdx" and tdx.findtext("launchSecurity/policy") == "0x10000000"


def test_securevm_refuses_a_host_without_confidential_computing() -> None:
    with pytest.raises(VirtscenarioError, match=r"^this host supports no confidential computing"):
        gen("securevm", caps=PLAIN_CAPS)


def test_securevm_sev_snp_on_an_old_libvirt_says_which_version_it_needs() -> None:
    with pytest.raises(VirtscenarioError, match=r"launch security sev-snp needs libvirt >= 10\.5\.0; "
                                                r"this libvirt is 9\.0\.0"):
        gen("securevm", cli_settings=sets(("launch_security.type", "sev-snp")))


def test_securevm_offline_auto_is_only_translated_for_the_scenario_itself() -> None:
    with pytest.raises(ConfigError, match="auto needs --connect"):
        gen("securevm", cli_settings=sets(("launch_security.type", "auto")))
    # another scenario asking for auto is the core's business too
    with pytest.raises(ConfigError, match="auto needs --connect"):
        gen("computation", cli_settings=sets(("launch_security.type", "auto")))


def test_securevm_type_given_with_set_offline() -> None:
    root = xml(gen("securevm", cli_settings=sets(("launch_security.type", "sev"))))
    assert root.findtext("launchSecurity/policy") == "0x0003"


def test_securevm_rules_refuse_a_host_share() -> None:
    from virtscenario.errors import ValidationError
    with pytest.raises(ValidationError, match="must not share host directories"):
        gen("securevm", cli_settings=sets(("filesystem.share", "on"), ("memory.source", "memfd"),
                                          ("memory.access", "shared")))


# -- all three -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCENARIOS)
def test_no_forced_keymap_no_versioned_machine(name: str) -> None:
    root = xml(gen(name))
    assert root.find("os/type").get("machine") == "q35"
    assert all(g.get("keymap") is None for g in root.findall("devices/graphics"))
    connected = xml(gen(name, caps=sev_caps() if name == "securevm" else PLAIN_CAPS))
    assert connected.find("os/type").get("machine") == "pc-q35-7.2"


@pytest.mark.parametrize("name", SCENARIOS)
def test_declared_iothreads_are_used(name: str) -> None:
    root = xml(gen(name))
    declared = int(root.findtext("iothreads") or 0)
    used = {d.find("driver").get("iothread") for d in root.findall("devices/disk")}
    assert declared >= 1 and used == {str(i) for i in range(1, declared + 1)}


@pytest.mark.parametrize("name", SCENARIOS)
def test_firmware_by_autoselection(name: str) -> None:
    root = xml(gen(name))
    assert root.find("os").get("firmware") == "efi" and root.findtext("os/loader") in (None, "")
    assert root.find("os/nvram") is None


def test_tcg_adapts_host_passthrough() -> None:
    root = xml(gen("desktop", cli_settings=[("vm.virt_type", "qemu", "--virt-type")]))
    assert root.get("type") == "qemu" and root.find("cpu").get("mode") == "maximum"
    assert root.find("cpu").get("migratable") is None


def test_a_host_without_virtiofs_refuses_the_desktop_share() -> None:
    with pytest.raises(VirtscenarioError, match=r"no virtiofs support \(--set filesystem.share=off\)"):
        gen("desktop", caps=replace(PLAIN_CAPS, filesystem_drivers=("path",)))
    assert gen("desktop", caps=replace(PLAIN_CAPS, filesystem_drivers=("path",)),
               cli_settings=sets(("filesystem.share", "off"))).validated


def test_fixture_host_is_what_the_goldens_say() -> None:
    host = epyc_host()
    assert (host.sockets, host.cores_per_socket, host.threads_per_core) == (1, 8, 2)
