"""Shared inputs for the scenario tests: the three plugins on a fresh plugin manager,
a fixed host with Debian 12's firmware descriptors, fixed identities, and a one-call ``generate``.

Nothing here reads the machine the tests run on, so goldens do not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import virtscenario_computation
import virtscenario_desktop
import virtscenario_securevm
from virtscenario.api import DomainCaps, HostCpu, HostInfo, SevCaps
from virtscenario.domain.generate import Generated, Request, generate
from virtscenario.host.firmware import FirmwareSet, read_firmware
from virtscenario.host.root import HostRoot
from virtscenario.plugin.builtin import choices, rules
from virtscenario.plugin.hooks import Catalog
from virtscenario.plugin.manager import VirtscenarioPluginManager
from virtscenario.vm.identity import Identity

SCENARIOS = ("computation", "desktop", "securevm")
MODULES = {"desktop": virtscenario_desktop, "computation": virtscenario_computation,
           "securevm": virtscenario_securevm}
LIBVIRT_9_0 = 9_000_000
STORE = Path("/var/lib/virtscenario/vms")
FIRMWARE_DATA = Path(__file__).resolve().parent.parent / "data" / "firmware"


def firmware_set(name: str = "debian12") -> FirmwareSet:
    """A recorded descriptor set (tests/data/firmware/NAME, see its README.md)."""
    found = read_firmware(HostRoot(FIRMWARE_DATA / name), dirs=("/",))
    assert found is not None and found.descriptors, name
    return found


def plugin_manager() -> VirtscenarioPluginManager:
    """The core's own plugins plus the three scenario plugins, as their entry points register them."""
    pm = VirtscenarioPluginManager()
    pm.register_plugin(rules, "core_rules", "virtscenario", builtin=True)
    pm.register_plugin(choices, "core_choices", "virtscenario", builtin=True)
    for name, module in MODULES.items():
        pm.register_plugin(module, name, f"virtscenario-{name}", "0.1.0", builtin=True)
    return pm


def catalog() -> Catalog:
    return Catalog(plugin_manager())


def epyc_host() -> HostInfo:
    """AMD EPYC, 1 socket, 8 cores x 2 threads (Linux numbering: cpu N and N+8 are siblings), 64 GiB."""
    cpus = tuple(HostCpu(id=cpu, core=cpu % 8, socket=0, node=0) for cpu in range(16))
    return HostInfo(arch="x86_64", cpu_vendor="AMD", cpu_model="AMD EPYC 7313P 16-Core Processor", cpus=cpus,
                    memory_bytes=64 * 2**30, flags=frozenset({"svm", "sev", "sev_es", "pse", "pdpe1gb", "avx2"}),
                    hugepage_sizes_kib=(2048, 1048576), source="test fixture")


def identity(name: str) -> Identity:
    """Fixed uuid, MAC and LUKS secret uuid per scenario, so goldens are byte-stable."""
    index = SCENARIOS.index(name) + 1
    vm_dir = STORE / f"golden-{name}"
    return Identity(uuid=f"00000000-0000-4000-8000-00000000000{index}",
                    macs=[f"52:54:00:00:00:0{index}"],
                    secret_uuids={str(vm_dir / f"golden-{name}.qcow2"): f"00000000-0000-4000-9000-00000000000{index}"})


def golden_request(name: str) -> Request:
    """Offline for a known host: the EPYC fixture with Debian 12's firmware descriptors (libvirt 9.0)."""
    return Request(scenario=name, name=f"golden-{name}", store_root=STORE, host=epyc_host(),
                   libvirt_version=LIBVIRT_9_0, firmware=firmware_set("debian12"), identity=identity(name))


def gen(name: str, cat: Optional[Catalog] = None, **overrides: Any) -> Generated:
    """Generate scenario ``name`` from the golden inputs, with Request fields overridden."""
    req = golden_request(name)
    for key, value in overrides.items():
        setattr(req, key, value)
    return generate(req, cat or catalog())


def sets(*pairs: tuple[str, Any]) -> list[tuple[str, Any, str]]:
    """``--set KEY=VALUE`` items for Request.cli_settings."""
    return [(key, value, f"--set {key}") for key, value in pairs]


#: Domain capabilities of a KVM host (libvirt 9.0, QEMU 7.2) without confidential computing.
PLAIN_CAPS = DomainCaps(
    virt_type="kvm", machine="pc-q35-7.2", machines=("pc-q35-7.2", "pc-q35-7.1", "q35", "pc-i440fx-7.2"),
    max_vcpus=288, firmware=("efi",), loaders=("/usr/share/OVMF/OVMF_CODE_4M.ms.fd",), secure_boot=True,
    cpu_modes=("host-passthrough", "host-model", "maximum", "custom"), tpm_models=("tpm-tis", "tpm-crb"),
    tpm_backends=("passthrough", "emulator"), tpm_versions=("1.2", "2.0"),
    memory_sources=("file", "anonymous", "memfd"), filesystem_drivers=("path", "handle", "virtiofs"),
    video_models=("vga", "virtio", "none"), libvirt_version=LIBVIRT_9_0, kvm_available=True)


def sev_caps(es_guests: int = 494, snp: bool = False, libvirt_version: int = LIBVIRT_9_0) -> DomainCaps:
    from dataclasses import replace
    return replace(PLAIN_CAPS, sev=SevCaps(True, cbitpos=51, reduced_phys_bits=1, max_guests=15,
                                           max_es_guests=es_guests), sev_snp=snp, libvirt_version=libvirt_version)
