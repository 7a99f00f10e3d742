"""Every part of the model renders, and renders to what libvirt 9.0's schema accepts."""

from __future__ import annotations

from lxml import etree
from virtscenario.domain import model as m
from virtscenario.domain.render import render_domain, to_bytes
from virtscenario.domain.validate import validate_tree

GIB = 1024**3


def kitchen_sink() -> m.Domain:
    d = m.Domain(name="sink", uuid="5e1f0c2a-8d2b-4a57-9a0e-6f0c7a1b2c3d", type="kvm", title="Everything",
                 description="every model field set")
    d.metadata = m.Metadata("sink", "1.0", "tests", "0.1.0")
    d.memory, d.current_memory, d.max_memory, d.max_memory_slots = 4 * GIB, 2 * GIB, 8 * GIB, 4
    d.memtune = m.MemTune(hard_limit=5 * GIB, soft_limit=3 * GIB, swap_hard_limit=6 * GIB)
    d.memory_backing = m.MemoryBacking(hugepages=[m.HugePage(2048, "0")], nosharepages=True, locked=True,
                                       source="memfd", access="shared", allocation="immediate", discard=True)
    d.vcpus, d.vcpu_placement, d.vcpu_cpuset, d.iothreads = 4, "static", "0-7", 2
    d.cputune = m.CpuTune(vcpupin=[m.Pin(i, str(i + 2)) for i in range(4)], emulatorpin="0-1",
                          iothreadpin=[m.Pin(1, "0"), m.Pin(2, "1")], vcpusched=[m.VcpuSched("0-3", "fifo", 1)])
    d.numatune = m.NumaTune(mode="strict", nodeset="0")
    d.os = m.Os(arch="x86_64", machine="pc-q35-7.2", firmware="efi",
                firmware_features=[m.FirmwareFeature("secure-boot", True), m.FirmwareFeature("enrolled-keys", True)],
                boot=["cdrom", "hd"], bootmenu=True)
    d.features = m.Features(acpi=True, apic=True, pae=True, smm=True, vmport=False, pmu=False, hyperv=m.HyperV(),
                            kvm_hidden=False, kvm_hint_dedicated=True, kvm_poll_control=True, ioapic_driver="kvm")
    d.cpu = m.Cpu(mode="host-passthrough", migratable=False, check="none", cache_mode="passthrough",
                  topology=m.CpuTopology(1, 1, 2, 2), features=[m.CpuFeature("tsc-deadline"),
                                                                m.CpuFeature("x2apic", "disable")],
                  numa=[m.NumaCell(0, "0-3", 4 * GIB, "shared")])
    d.clock = m.Clock("utc", [m.Timer("rtc", tickpolicy="catchup"), m.Timer("pit", tickpolicy="delay"),
                              m.Timer("hpet", present=False), m.Timer("kvmclock", present=True),
                              m.Timer("hypervclock", present=True)])
    d.on_poweroff, d.on_reboot, d.on_crash = "destroy", "restart", "coredump-destroy"
    d.pm = m.Pm(False, False)
    dev = d.devices
    dev.emulator = "/usr/bin/qemu-system-x86_64"
    dev.disks = [
        m.Disk("vda", "/var/lib/vs/sink.qcow2", format="qcow2", cache="none", io="native", discard="unmap",
               detect_zeroes="unmap", iothread=1, iommu=True, boot_order=None, serial="SINK01",
               encryption=m.Encryption("luks", "0b5f6b1c-3a0e-4d43-9d7a-2d8e5c0f1a11")),
        m.Disk("vdb", "/dev/sdz", type="block", format="raw", cache="directsync", iothread=2),
        m.Disk("sda", "/var/lib/vs/data.raw", format="raw", bus="scsi", shareable=True),
        m.Disk("sdb", "/iso/install.iso", device="cdrom", format="raw", bus="sata", readonly=True),
    ]
    dev.controllers = [m.Controller("scsi", "virtio-scsi", 0, iommu=True), m.Controller("usb", "qemu-xhci", 0, 15),
                       m.Controller("virtio-serial", index=0, iommu=True)]
    dev.filesystems = [m.Filesystem("/srv/share", "share", queue=1024)]
    dev.interfaces = [m.Interface("network", "default", "52:54:00:00:00:01", "virtio", queues=4, iommu=True),
                      m.Interface("bridge", "br0", "52:54:00:00:00:02", "e1000e"),
                      m.Interface("user", "", "52:54:00:00:00:03", "virtio"),
                      m.Interface("direct", "eth0", "52:54:00:00:00:04", "virtio")]
    dev.consoles = [m.Console("pty", "serial")]
    dev.channels = [m.Channel("unix"), m.Channel("spicevmc", "virtio", "com.redhat.spice.0")]
    dev.inputs = [m.Input("tablet", "usb"), m.Input("keyboard", "virtio"), m.Input("mouse", "ps2")]
    dev.tpms = [m.Tpm("tpm-crb", "emulator", "2.0")]
    dev.graphics = [m.Graphics("spice", listen="none", listen_address=None, gl=True)]
    dev.sounds = [m.Sound("ich9", audio_type="spice")]
    dev.videos = [m.Video("virtio", accel3d=True, iommu=True)]
    dev.watchdogs = [m.Watchdog("i6300esb", "poweroff")]
    dev.memballoon = m.MemBalloon("virtio", autodeflate=True, free_page_reporting=True, iommu=True)
    dev.rngs = [m.Rng(rate_bytes=1024, rate_period_ms=1000, iommu=True)]
    d.launch_security = m.LaunchSecurity("sev", policy=0x07, cbitpos=47, reduced_phys_bits=1, kernel_hashes=False)
    return d


def test_every_model_element_renders_schema_valid():
    root = render_domain(kitchen_sink())
    assert validate_tree(root) is True
    expected = ["maxMemory", "memtune/hard_limit", "memtune/swap_hard_limit", "memoryBacking/hugepages/page",
                "memoryBacking/nosharepages", "memoryBacking/locked", "memoryBacking/allocation",
                "memoryBacking/discard", "cputune/vcpusched", "cputune/iothreadpin", "numatune/memory",
                "os/firmware/feature", "os/bootmenu", "features/hyperv/spinlocks", "features/kvm/hint-dedicated",
                "features/ioapic", "cpu/numa/cell", "cpu/feature", "clock/timer", "devices/disk/source/encryption",
                "devices/controller", "devices/filesystem/driver", "devices/interface/driver",
                "devices/channel/target", "devices/tpm/backend", "devices/graphics/gl", "devices/sound/audio",
                "devices/audio", "devices/video/model/acceleration", "devices/watchdog", "devices/memballoon/driver",
                "devices/rng/rate", "launchSecurity/cbitpos"]
    missing = [path for path in expected if root.find(path) is None]
    assert missing == []
    assert root.find("devices/disk[@type='block']/source").get("dev") == "/dev/sdz"
    assert root.find("devices/interface[@type='direct']/source").attrib == {"dev": "eth0", "mode": "bridge"}
    assert root.findtext("launchSecurity/policy") == "0x0007"


def test_rendering_is_byte_identical_and_pretty():
    first, second = to_bytes(render_domain(kitchen_sink())), to_bytes(render_domain(kitchen_sink()))
    assert first == second
    assert b"\n    <vcpupin" in first and not first.startswith(b"<?xml")


def test_newer_launch_security_types_render_as_libvirt_documents():
    snp = kitchen_sink()
    snp.launch_security = m.LaunchSecurity("sev-snp", policy=0x30000, author_key=False, vcek=True,
                                           kernel_hashes=False)
    el = render_domain(snp).find("launchSecurity")
    assert el.attrib == {"type": "sev-snp", "authorKey": "no", "vcek": "yes", "kernelHashes": "no"}
    assert el.findtext("policy") == "0x00030000"
    tdx = kitchen_sink()
    tdx.launch_security = m.LaunchSecurity("tdx", policy=0x10000000,
                                           quote_generation_socket="/var/run/tdx-qgs/qgs.socket")
    el = render_domain(tdx).find("launchSecurity")
    assert el.findtext("policy") == "0x10000000"
    assert el.find("quoteGenerationService").get("path") == "/var/run/tdx-qgs/qgs.socket"
    assert etree.tostring(el).count(b"cbitpos") == 0
