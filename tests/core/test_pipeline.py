"""Build, rules, rendering, RelaxNG validation and adaptation to domain capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from virtscenario.api import DomainCaps, HostCpu, HostInfo, SevCaps, hookimpl
from virtscenario.domain.generate import Request, generate
from virtscenario.domain.sections.disks import DiskArg
from virtscenario.domain.sections.nics import NetArg
from virtscenario.domain.validate import validate_tree
from virtscenario.errors import ConfigError, PluginError, ValidationError, VirtscenarioError
from virtscenario.vm.identity import Identity
from virtscenario.vm.names import check_vm_name

from . import demo_plugin

IDENTITY = Identity(uuid="0b5f6b1c-3a0e-4d43-9d7a-2d8e5c0f1a11", macs=["52:54:00:aa:bb:01"])
CAPS = DomainCaps(virt_type="kvm", machine="pc-q35-7.2", machines=("pc-q35-6.2", "pc-q35-7.2", "q35", "pc"),
                  max_vcpus=288, firmware=("efi",), cpu_modes=("host-passthrough", "host-model", "maximum"),
                  tpm_models=("tpm-tis", "tpm-crb"), tpm_backends=("passthrough", "emulator"),
                  memory_sources=("file", "anonymous", "memfd"), filesystem_drivers=("path", "virtiofs"),
                  libvirt_version=9000000, kvm_available=True)


def gen(catalog_of, tmp_path: Path, scenario: str = "demo", *plugins, **kw):
    kw.setdefault("identity", Identity(IDENTITY.uuid, list(IDENTITY.macs)))
    kw.setdefault("libvirt_version", 9000000)
    cat = catalog_of(("demo", demo_plugin), *plugins)
    return generate(Request(scenario, kw.pop("name", "vm1"), store_root=tmp_path, **kw), cat)


def test_same_inputs_give_byte_identical_valid_xml(catalog_of, tmp_path):
    first, second = gen(catalog_of, tmp_path), gen(catalog_of, tmp_path)
    assert first.xml == second.xml and first.validated
    root = etree.fromstring(first.xml)
    assert root.findtext("uuid") == IDENTITY.uuid
    assert root.find("devices/interface/mac").get("address") == "52:54:00:aa:bb:01"
    meta = root.find("metadata/{urn:virtscenario:domain:1}scenario")
    assert (meta.get("name"), meta.get("version")) == ("demo", "1.2")
    assert first.xml.startswith(b'<domain type="kvm">\n  <name>vm1</name>\n')


def test_iothreads_bound_to_disks_and_reduced(catalog_of, tmp_path):
    g = gen(catalog_of, tmp_path, disks=[DiskArg(size="1G"), DiskArg(size="1G")],
            cli_settings=[("cpu.iothreads", "3", "--set")])
    root = etree.fromstring(g.xml)
    assert root.findtext("iothreads") == "2"
    assert [d.get("iothread") for d in root.findall("devices/disk/driver")] == ["1", "2"]
    assert [d.get("dev") for d in root.findall("devices/disk/target")] == ["vda", "vdb"]
    assert any("reduced to 2" in n.message for n in g.notes)


def test_virtiofs_readonly_adapted_to_libvirt_version(catalog_of, tmp_path):
    old = gen(catalog_of, tmp_path)
    assert etree.fromstring(old.xml).find("devices/filesystem/readonly") is None
    assert any("refuses <readonly/> on virtiofs" in n.message for n in old.notes)
    new = gen(catalog_of, tmp_path, libvirt_version=11_000_000, schema=None)
    assert etree.fromstring(new.xml).find("devices/filesystem/readonly") is not None


def test_rule_virtiofs_needs_shared_memory(catalog_of, tmp_path):
    with pytest.raises(ValidationError, match=r"uses virtiofs but memory access is not shared \[rule "
                                              r"virtiofs-needs-shared-memory: virtiofsd maps guest memory"):
        gen(catalog_of, tmp_path, cli_settings=[("memory.access", "private", "--set")])


def test_rule_sev_requirements(catalog_of, tmp_path):
    with pytest.raises(ValidationError) as info:
        gen(catalog_of, tmp_path, cli_settings=[("launch_security.type", "sev-es", "--set")])
    text = " ".join(info.value.problems)
    assert "lacks iommu='on'" in text and "memtune hard_limit" in text and "must not share host" in text


def test_rule_migratable(catalog_of, tmp_path):
    base = [("vm.migratable", "on", "--set"), ("filesystem.share", "off", "--set")]
    with pytest.raises(ValidationError, match="host-passthrough is only safe between identical hosts"):
        gen(catalog_of, tmp_path, cli_settings=base)
    # writeback migrates on shared storage (libvirt qemuMigrationSrcIsSafe: QEMU drops the page cache)
    g = gen(catalog_of, tmp_path, cli_settings=[*base, ("cpu.mode", "host-model", "--set"),
                                                ("disk.cache", "writeback", "--set")])
    assert etree.fromstring(g.xml).find("devices/disk/driver").get("cache") == "writeback"


def test_launch_security_needs_new_enough_libvirt(catalog_of, tmp_path):
    with pytest.raises(VirtscenarioError, match=r"launch security sev-snp needs libvirt >= 10.5.0; "
                                                r"this libvirt is 9.0.0"):
        gen(catalog_of, tmp_path, cli_settings=[("launch_security.type", "sev-snp", "--set")])


def test_sev_es_offline_is_schema_valid(catalog_of, tmp_path):
    g = gen(catalog_of, tmp_path, cli_settings=[
        ("launch_security.type", "sev-es", "--set"), ("devices.iommu", "on", "--set"),
        ("memory.hard_limit_overhead", "256MiB", "--set"), ("filesystem.share", "off", "--set")])
    root = etree.fromstring(g.xml)
    assert root.find("launchSecurity").get("type") == "sev" and root.findtext("launchSecurity/policy") == "0x0007"
    assert root.findtext("memtune/hard_limit") == str((1024 + 256) * 1024)
    assert {e.get("iommu") for e in root.iter("driver") if e.getparent().tag != "disk" or True} >= {"on"}
    assert root.find("devices/controller[@type='virtio-serial']/driver").get("iommu") == "on"


def test_caps_adaptation_and_refusals(catalog_of, tmp_path):
    from dataclasses import replace
    g = gen(catalog_of, tmp_path, caps=replace(CAPS, kvm_available=False))
    root = etree.fromstring(g.xml)
    assert root.get("type") == "qemu" and root.find("cpu").get("mode") == "maximum"
    assert root.find("os/type").get("machine") == "pc-q35-7.2"
    assert any("KVM is not available" in n.message for n in g.notes)
    with pytest.raises(VirtscenarioError, match="no UEFI firmware"):
        gen(catalog_of, tmp_path, caps=replace(CAPS, firmware=()))
    with pytest.raises(VirtscenarioError, match="install swtpm"):
        gen(catalog_of, tmp_path, caps=replace(CAPS, tpm_backends=("passthrough",)))
    with pytest.raises(VirtscenarioError, match="300 vCPUs exceed the 288 this hypervisor.s q35 accepts"):
        gen(catalog_of, tmp_path, caps=CAPS, cli_settings=[("vm.vcpus", "300", "--vcpus")])
    with pytest.raises(ConfigError, match="machine 'pc-i440fx-2.0' is not offered"):
        gen(catalog_of, tmp_path, caps=CAPS, cli_settings=[("vm.machine", "pc-i440fx-2.0", "--set")])


def test_launch_security_auto_picks_strongest(catalog_of, tmp_path):
    from dataclasses import replace
    sev = replace(CAPS, sev=SevCaps(True, 47, 1, 15, 494))
    settings = [("launch_security.type", "auto", "--set"), ("devices.iommu", "on", "--set"),
                ("memory.hard_limit_overhead", "256", "--set"), ("filesystem.share", "off", "--set")]
    from virtscenario.host.firmware import read_firmware
    from virtscenario.host.root import HostRoot
    es_firmware = read_firmware(HostRoot(Path(__file__).parent.parent / "data/firmware/with-sev-es"), dirs=("/",))
    root = etree.fromstring(gen(catalog_of, tmp_path, caps=sev, cli_settings=settings, firmware=es_firmware).xml)
    assert root.findtext("launchSecurity/policy") == "0x0007" and root.findtext("launchSecurity/cbitpos") == "47"
    # without descriptors to check (a remote host) auto keeps SEV, which every SEV-capable OVMF offers
    root = etree.fromstring(gen(catalog_of, tmp_path, caps=sev, cli_settings=settings).xml)
    assert root.findtext("launchSecurity/policy") == "0x0003"
    with pytest.raises(VirtscenarioError, match="supports no confidential computing"):
        gen(catalog_of, tmp_path, caps=CAPS, cli_settings=settings)


def test_pinning_uses_host_topology(catalog_of, tmp_path):
    cpus = tuple(HostCpu(i, i % 4, 0) for i in range(8))  # 4 cores x 2 threads (siblings i, i+4)
    host = HostInfo(cpu_vendor="AMD", cpus=cpus, memory_bytes=16 * 2**30)
    g = gen(catalog_of, tmp_path, host=host, cli_settings=[("cpu.pinning", "auto", "--set"),
                                                           ("cpu.topology", "host", "--set")])
    root = etree.fromstring(g.xml)
    assert [(p.get("vcpu"), p.get("cpuset")) for p in root.findall("cputune/vcpupin")] == \
        [("0", "1"), ("1", "5"), ("2", "2"), ("3", "6")]
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,4"
    assert root.find("cputune/iothreadpin").get("cpuset") == "0,4"
    assert root.find("cpu/topology").attrib == {"sockets": "1", "dies": "1", "cores": "2", "threads": "2"}
    small = HostInfo(cpus=cpus[:2])
    g = gen(catalog_of, tmp_path, host=small, cli_settings=[("cpu.pinning", "auto", "--set")])
    assert etree.fromstring(g.xml).find("cputune") is None
    assert any("vCPUs are not pinned" in n.message for n in g.notes)


def test_pinning_binds_memory_to_the_vcpus_numa_node(catalog_of, tmp_path):
    """Issue 11: 'preferred' let the kernel take remote memory silently; now strict, and the host plan
    is told which node holds the hugepages."""
    # 2 sockets = 2 nodes, 4 cores each, no SMT: housekeeping takes core 0 of each node.
    cpus = tuple(HostCpu(i, i % 4, i // 4, i // 4) for i in range(8))
    host = HostInfo(cpus=cpus, memory_bytes=32 * 2**30)
    settings = [("cpu.pinning", "auto", "--set"), ("vm.vcpus", "3", "--vcpus"), ("memory.hugepages", "on", "--set"),
                ("vm.memory", "4GiB", "--memory")]
    g = gen(catalog_of, tmp_path, host=host, cli_settings=settings)
    root = etree.fromstring(g.xml)
    assert [p.get("cpuset") for p in root.findall("cputune/vcpupin")] == ["1", "2", "3"]
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,4"
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0"}
    assert root.find("cpu/numa") is None
    reqs = {r.key: r.value for r in g.host_requirements}
    assert reqs["host.hugepages_nodes"] == "0"


def test_vcpus_spanning_nodes_get_guest_numa_cells(catalog_of, tmp_path):
    cpus = tuple(HostCpu(i, i % 4, i // 4, i // 4) for i in range(8))
    host = HostInfo(cpus=cpus, memory_bytes=32 * 2**30)
    wide = gen(catalog_of, tmp_path, host=host, cli_settings=[
        ("cpu.pinning", "auto", "--set"), ("vm.vcpus", "5", "--vcpus"), ("memory.hugepages", "on", "--set"),
        ("vm.memory", "4GiB", "--memory")])
    root = etree.fromstring(wide.xml)
    assert [p.get("cpuset") for p in root.findall("cputune/vcpupin")] == ["1", "2", "3", "5", "6"]
    cells = [(c.get("id"), c.get("cpus"), c.get("memory")) for c in root.findall("cpu/numa/cell")]
    assert cells == [("0", "0-2", str(2 * 1024**2)), ("1", "3-4", str(2 * 1024**2))]
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0-1"}
    assert [m.attrib for m in root.findall("numatune/memnode")] == [
        {"cellid": "0", "mode": "strict", "nodeset": "0"}, {"cellid": "1", "mode": "strict", "nodeset": "1"}]
    assert {r.key: r.value for r in wide.host_requirements}["host.hugepages_nodes"] == "0-1"
    assert any("one guest NUMA cell per host node" in n.message for n in wide.notes)


def test_housekeeping_is_kept_on_every_numa_node_of_a_package(catalog_of, tmp_path):
    """One package split into 2 nodes (SNC/NPS2) used to keep only CPU 0: now a core per node."""
    cpus = tuple(HostCpu(i, i, 0, i // 4) for i in range(8))  # socket 0, nodes 0 (0-3) and 1 (4-7)
    host = HostInfo(cpus=cpus, memory_bytes=32 * 2**30)
    g = gen(catalog_of, tmp_path, host=host, cli_settings=[("cpu.pinning", "auto", "--set"),
                                                           ("vm.vcpus", "2", "--vcpus")])
    root = etree.fromstring(g.xml)
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,4"
    assert [p.get("cpuset") for p in root.findall("cputune/vcpupin")] == ["1", "2"]


def test_disks_networks_cdrom(catalog_of, tmp_path):
    iso = tmp_path / "install.iso"
    iso.write_bytes(b"\0" * 2048)
    image = tmp_path / "existing.raw"
    image.write_bytes(b"\0" * 4096)
    g = gen(catalog_of, tmp_path, disks=[DiskArg(path=str(image), format="raw", cache="none"),
                                         DiskArg(size="1G", bus="sata")],
            networks=[NetArg("bridge", "br0"), NetArg("user"), NetArg("network", "lab", model="e1000e",
                                                                         mac="52:54:00:12:34:56")],
            cdrom=str(iso))
    root = etree.fromstring(g.xml)
    targets = [(d.get("device"), d.find("target").get("dev"), d.find("target").get("bus"))
               for d in root.findall("devices/disk")]
    assert targets == [("disk", "vda", "virtio"), ("disk", "sda", "sata"), ("cdrom", "sdb", "sata")]
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    nics = [(i.get("type"), i.find("mac").get("address")) for i in root.findall("devices/interface")]
    assert nics[0] == ("bridge", "52:54:00:aa:bb:01") and nics[2] == ("network", "52:54:00:12:34:56")
    assert g.identity.macs[1].startswith("52:54:00:")
    assert g.disks[1].path == str(tmp_path / "vm1" / "vm1-1.qcow2") and g.disks[1].create


def test_relaxng_errors_name_the_element(tmp_path):
    root = etree.fromstring(b'<domain type="kvm"><name>x</name><memory>1024</memory><os><type>hvm</type></os>'
                            b'<devices><disk type="file" device="disk"><target dev="vda" bus="nonsense"/></disk>'
                            b'</devices></domain>')
    with pytest.raises(ValidationError) as info:
        validate_tree(root)
    message = str(info.value)
    assert "/domain/devices/disk/target: attribute bus='nonsense' is not valid there" in message
    assert "\n" not in message
    root = etree.fromstring(b'<domain type="kvm"><name>x</name><memory>1024</memory><os><type>hvm</type></os>'
                            b'<devices/><bogus/></domain>')
    with pytest.raises(ValidationError, match=r"/domain/bogus: element is not valid there \(libxml2: Element "
                                              r"domain has extra content: bogus\)"):
        validate_tree(root)


def test_missing_schema_is_one_warning(catalog_of, tmp_path):
    g = gen(catalog_of, tmp_path, schema=str(tmp_path / "nope.rng"))
    assert not g.validated
    assert [n.message for n in g.notes if "RelaxNG" in n.message]


def test_postprocess_wrapper_and_failure_attribution(catalog_of, tmp_path):
    class Wrap:
        @hookimpl(wrapper=True)
        def postprocess_xml(self, root, settings, context):
            result = yield
            root.set("id", "7")  # after every other post-processor
            return result

    class Broken:
        @hookimpl
        def customize_model(self, domain, settings, context):
            raise KeyError("oops")

    assert b'<domain type="kvm" id="7">' in gen(catalog_of, tmp_path, "demo", ("wrap", Wrap())).xml
    with pytest.raises(PluginError, match=r"plugin 'broken' failed in customize_model: KeyError: 'oops'"):
        gen(catalog_of, tmp_path, "demo", ("broken", Broken()))


def test_ordering_tryfirst_trylast_then_name(catalog_of, tmp_path):
    calls = []

    def plugin(tag, **opts):
        class P:
            @hookimpl(**opts)
            def customize_model(self, domain, settings, context):
                calls.append(tag)
        return P()

    gen(catalog_of, tmp_path, "demo", ("b_normal", plugin("b")), ("z_first", plugin("z", tryfirst=True)),
        ("a_last", plugin("a", trylast=True)), ("a_normal", plugin("a2")))
    assert calls[0] == "z" and calls[-1] == "a"


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "x\ny", "-rf", " pad", "é" * 101, "tab\tname"])
def test_bad_vm_names(name):
    with pytest.raises(ConfigError):
        check_vm_name(name)


def test_good_vm_names():
    for name in ("demo", "web-01", "db_2", "Ünïcode name", "a" * 200):
        assert check_vm_name(name) == name


def test_memory_bounds(catalog_of, tmp_path):
    with pytest.raises(ConfigError, match="32MiB is below the minimum 64MiB"):
        gen(catalog_of, tmp_path, cli_settings=[("vm.memory", "32M", "--memory")])
    with pytest.raises(ValidationError, match="not a multiple of the 2048 KiB hugepage size"):
        gen(catalog_of, tmp_path, cli_settings=[("vm.memory", "1025M", "--memory"),
                                                ("memory.hugepages", "on", "--set")])


def test_define_sets_secret_from_given_passphrase(catalog_of, tmp_path):
    from virtscenario.vm.libvirt import define_and_start

    class FakeSecret:
        def __init__(self):
            self.value = None

        def setValue(self, value, flags):  # noqa: N802 - libvirt's API name
            self.value = value

    class FakeConn:
        def __init__(self):
            self.secret, self.secret_xml, self.domain_xml = FakeSecret(), None, None

        def secretDefineXML(self, xml, flags):  # noqa: N802
            self.secret_xml = xml
            return self.secret

        def defineXMLFlags(self, xml, flags):  # noqa: N802
            self.domain_xml = xml
            return object()

    g = gen(catalog_of, tmp_path, cli_settings=[("disk.encryption", "on", "--set")])
    conn = FakeConn()
    define_and_start(conn, g, tmp_path / "vm1", start=False, passphrase=b"from-file")
    assert conn.secret.value == b"from-file"
    secret = etree.fromstring(conn.secret_xml.encode())
    assert secret.get("private") == "yes" and secret.findtext("usage/volume") == g.disks[0].path
    uuid = secret.findtext("uuid")
    assert etree.fromstring(conn.domain_xml.encode()).find(".//encryption/secret").get("uuid") == uuid
    with pytest.raises(VirtscenarioError, match="no passphrase recorded"):
        define_and_start(FakeConn(), g, tmp_path / "elsewhere", start=False)
