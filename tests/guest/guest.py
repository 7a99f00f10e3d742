"""The test guest built by ``scripts/build-test-guest.sh``: its files, a domain XML that boots it, a boot.

A direct-kernel-boot TCG domain (q35) whose disk is a qcow2 overlay on the guest's
``disk.ext4``, with user-mode networking, the agent channel and a serial console logged
to a file. See docs/test-guest.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from lxml import etree

from .agent import AGENT_CHANNEL, wait_for_agent

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-test-guest.sh"
READY_LINE = "virtscenario-test-guest: ready"


def default_cache_dir() -> Path:
    """``$VIRTSCENARIO_TEST_GUEST_DIR``, else /var/cache/virtscenario/test-guest (root) or ~/.cache/..."""
    env = os.environ.get("VIRTSCENARIO_TEST_GUEST_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/virtscenario/test-guest")
    return Path.home() / ".cache" / "virtscenario" / "test-guest"


@dataclass(frozen=True)
class GuestImage:
    directory: Path
    manifest: Mapping[str, Any]

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.ext4"

    @classmethod
    def load(cls, directory: Path) -> GuestImage:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        return cls(directory, manifest)


@dataclass(frozen=True)
class BuildResult:
    image: GuestImage
    seconds: float
    output: str


def build_guest_image(directory: Path, timeout: float = 900) -> BuildResult:
    """Run the build script (cached: about a second when nothing changed); RuntimeError on failure."""
    start = time.monotonic()
    result = subprocess.run(["bash", str(BUILD_SCRIPT), str(directory)], capture_output=True, text=True,
                            timeout=timeout, check=False)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed ({result.returncode}): " + " | ".join(lines[-5:]))
    return BuildResult(GuestImage.load(directory), seconds, result.stdout + result.stderr)


def make_overlay(image: GuestImage, path: Path) -> Path:
    """A qcow2 overlay backed by the (never written) raw ``disk.ext4``."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise RuntimeError("qemu-img is not installed (qemu-utils)")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "raw", str(path)],
                   check=True, capture_output=True, text=True, timeout=60)
    path.chmod(0o644)
    return path


def make_iso(files: Mapping[str, str], path: Path, label: str = "cidata") -> Path:
    """An ISO 9660 image (Rock Ridge + Joliet) holding ``files`` (name -> text), made by genisoimage."""
    tool = shutil.which("genisoimage")
    if tool is None:
        raise RuntimeError("genisoimage is not installed (scripts/setup.sh --tests)")
    content = path.with_name(path.name + ".d")
    content.mkdir()
    for name, text in files.items():
        (content / name).write_text(text, encoding="utf-8")
    subprocess.run([tool, "-quiet", "-output", str(path), "-volid", label, "-rational-rock", "-joliet", str(content)],
                   check=True, capture_output=True, text=True, timeout=60)
    shutil.rmtree(content)
    path.chmod(0o644)
    return path


def _sub(parent: etree._Element, tag: str, text: Optional[str] = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def domain_xml(name: str, image: GuestImage, overlay: Path, console_log: Path, *, sockets: int = 1,
               cores: int = 2, threads: int = 1, memory_mib: int = 256, tpm: bool = True,
               cdrom: Optional[Path] = None, share: Optional[tuple[Path, str]] = None,
               cmdline: str = "console=ttyS0") -> etree._Element:
    """The domain that boots the test guest under TCG (type qemu: KVM cannot run guests on CI).

    ``cdrom``: an ISO image attached read-only as a SATA CD-ROM (q35's AHCI), /dev/sr0 in the guest.
    ``share``: (host directory, tag) exported with virtiofs (``mount -t virtiofs TAG DIR`` in the
    guest); it brings the shared memfd memory that vhost-user needs. libvirt 9.0 refuses
    ``<readonly/>`` on virtiofs ("does not yet support read-only mode").
    """
    dom = etree.Element("domain", type="qemu")
    _sub(dom, "name", name)
    _sub(dom, "memory", str(memory_mib), unit="MiB")
    if share is not None:
        backing = _sub(dom, "memoryBacking")
        _sub(backing, "source", type="memfd")
        _sub(backing, "access", mode="shared")
    _sub(dom, "vcpu", str(sockets * cores * threads))
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_, "kernel", str(image.kernel))
    _sub(os_, "initrd", str(image.initrd))
    _sub(os_, "cmdline", cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")  # the power button that on_poweroff tests press
    _sub(features, "apic")
    cpu = _sub(dom, "cpu", mode="custom", match="exact")
    _sub(cpu, "model", "qemu64", fallback="forbid")
    _sub(cpu, "topology", sockets=str(sockets), dies="1", cores=str(cores), threads=str(threads))
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "destroy")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2")
    _sub(disk, "source", file=str(overlay))
    _sub(disk, "target", dev="vda", bus="virtio")
    if cdrom is not None:
        cd = _sub(devices, "disk", type="file", device="cdrom")
        _sub(cd, "driver", name="qemu", type="raw")
        _sub(cd, "source", file=str(cdrom))
        _sub(cd, "target", dev="sda", bus="sata")
        _sub(cd, "readonly")
    if share is not None:
        fs = _sub(devices, "filesystem", type="mount", accessmode="passthrough")
        _sub(fs, "driver", type="virtiofs")
        _sub(fs, "source", dir=str(share[0]))
        _sub(fs, "target", dir=share[1])
    nic = _sub(devices, "interface", type="user")
    _sub(nic, "model", type="virtio")
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name=AGENT_CHANNEL)
    if tpm:
        tpm_el = _sub(devices, "tpm", model="tpm-crb")
        _sub(tpm_el, "backend", type="emulator", version="2.0")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(console_log))
    _sub(serial, "target", port="0")
    return dom


def console_tail(console_log: Path, lines: int = 15) -> str:
    try:
        text = console_log.read_text(errors="replace")
    except OSError as exc:
        return f"(no console log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def destroy_and_undefine(dom: Any) -> None:
    """Stop the domain if it runs and undefine it with its TPM state (and NVRAM, if any)."""
    import libvirt

    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)


@dataclass(frozen=True)
class BootedGuest:
    dom: Any
    console_log: Path
    seconds_to_agent: float  # from the start call to the first agent answer


def define_and_boot(conn: Any, xml: etree._Element, console_log: Path, timeout: float = 120) -> BootedGuest:
    """Define and start ``xml``, wait for the agent. On failure the domain is removed and the
    error carries the console's last lines; on success the caller removes it."""
    dom = conn.defineXML(etree.tostring(xml, encoding="unicode"))
    try:
        start = time.monotonic()
        dom.create()
        wait_for_agent(dom, timeout)
        return BootedGuest(dom, console_log, time.monotonic() - start)
    except Exception as exc:
        tail = console_tail(console_log)
        destroy_and_undefine(dom)
        raise RuntimeError(f"{exc}\n--- guest console (last lines) ---\n{tail}") from exc
