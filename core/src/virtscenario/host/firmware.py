"""QEMU firmware descriptors (``docs/interop/firmware.json``) and libvirt's choice among them.

Domain capabilities list loader paths only, never firmware features or flash modes (not
in libvirt 9.0, nor in 10.x/11.x), so which UEFI build libvirt's autoselection will take
for ``<os firmware='efi'>`` is only known from the descriptor files of the target host.
This module reads them through a :class:`HostRoot` the way libvirt does and replays
libvirt's matching, so a domain whose firmware request no descriptor satisfies ("Unable
to find any firmware to satisfy 'efi'") is caught before it is defined.

Sources (libvirt v9.0.0 and v11.3.0): ``src/qemu/qemu_interop_config.c``
(``qemuInteropFetchConfigs``: directories, override by file name, empty files mask, name
order) and ``src/qemu/qemu_firmware.c`` (``qemuFirmwareMatchDomain``, first match wins).
"""

from __future__ import annotations

from typing import Optional

from ..records import FrozenRecord, frozen_record
from .root import HostRoot

#: Searched in this order; a file of the same name in a later directory replaces an earlier one.
SYSTEM_DIRS = ("/usr/share/qemu/firmware", "/etc/qemu/firmware")
#: SEV-ES policy bit; libvirt's VIR_QEMU_FIRMWARE_AMD_SEV_ES_POLICY (1 << 2).
SEV_ES_POLICY_BIT = 1 << 2
#: libvirt releases whose qemuFirmwareMatchDomain was read: below 11.3 a firmware that
#: requires SMM is chosen first and then refused for <smm state='off'/> (9.0); 11.3 skips it.
SMM_SKIP_LIBVIRT = 11_003_000


@frozen_record
class FirmwareDescriptor(FrozenRecord):
    """One descriptor file: what libvirt's matching looks at."""

    name: str  # file name: the override key and the order
    path: str  # where it was read (host path)
    interfaces: tuple[str, ...]
    device: str  # flash|memory|kernel
    mode: str  # flash: split|combined|stateless (absent means split); "" for other devices
    executable: str
    targets: tuple[tuple[str, tuple[str, ...]], ...]  # (architecture, machine globs)
    features: frozenset[str]

    @property
    def stateless(self) -> bool:
        """No NVRAM: a stateless flash image, or a memory/kernel device (which has none either)."""
        return self.mode == "stateless" or self.device != "flash"


@frozen_record
class FirmwareSet(FrozenRecord):
    """The descriptors of one host in libvirt's order (after overrides and masking)."""

    descriptors: tuple[FirmwareDescriptor, ...]
    origin: str  # "the directories ... of this host" (for messages)
    skipped: tuple[str, ...] = ()  # files that are not valid descriptors


@frozen_record
class FirmwareRequest(FrozenRecord):
    """What a domain asks of the firmware: the inputs of qemuFirmwareMatchDomain."""

    machine: str = "q35"
    arch: str = "x86_64"
    interface: str = "uefi"
    secure_boot: Optional[bool] = None  # <firmware><feature name='secure-boot'>
    enrolled_keys: Optional[bool] = None
    smm: Optional[bool] = None  # <features><smm>
    stateless: bool = False  # <loader stateless='yes'/>
    launch_security: str = "none"  # the <launchSecurity type>: none|sev|sev-snp|tdx
    policy: int = 0  # the SEV policy (bit 2: SEV-ES)
    s3: bool = False  # <pm><suspend-to-mem enabled='yes'/>
    s4: bool = False


@frozen_record
class FirmwareChoice(FrozenRecord):
    """libvirt's answer: the descriptor it takes, or why it fails (``descriptor`` None)."""

    descriptor: Optional[FirmwareDescriptor]
    error: str = ""


def read_firmware(host: HostRoot, extra_dirs: tuple[str, ...] = (),
                  dirs: tuple[str, ...] = SYSTEM_DIRS) -> Optional[FirmwareSet]:
    """The descriptors of ``host``, or None when it has no descriptor directory (nothing known).

    ``extra_dirs`` are read last: libvirt adds ``$XDG_CONFIG_HOME/qemu/firmware`` for
    unprivileged (session) daemons. ``dirs`` replaces the system directories (tests read a
    directory of descriptors with ``dirs=("/",)``).
    """
    dirs = (*dirs, *extra_dirs)
    files: dict[str, str] = {}
    found = False
    for directory in dirs:
        if not host.exists(directory):
            continue
        found = True
        for name in host.listdir(directory):
            if name.endswith(".json"):
                files[name] = f"{directory.rstrip('/')}/{name}"  # a later directory overrides the same name
    if not found:
        return None
    descriptors: list[FirmwareDescriptor] = []
    skipped: list[str] = []
    for name in sorted(files):
        path = files[name]
        try:
            text = host.read(path)
        except OSError:
            skipped.append(path)
            continue
        if not text.strip():
            continue  # an empty file masks the less specific file of the same name
        desc = parse_descriptor(name, path, text)
        if desc is None:
            skipped.append(path)
        else:
            descriptors.append(desc)
    where = "under " + str(host.root) if host.is_fake else "of this host"
    return FirmwareSet(tuple(descriptors), f"{', '.join(dirs)} {where}", tuple(skipped))


def parse_descriptor(name: str, path: str, text: str) -> Optional[FirmwareDescriptor]:
    """One descriptor, or None when it is not valid JSON of the firmware.json shape."""
    import json
    try:
        data = json.loads(text)
        mapping = data["mapping"]
        device = str(mapping["device"])
        if device == "flash":
            mode = str(mapping.get("mode", "split"))  # "Historical default" (qemuFirmwareMappingFlashParse)
            executable = str(mapping["executable"]["filename"])
        else:
            mode = ""
            executable = str(mapping.get("filename") or mapping.get("kernel", {}).get("filename", ""))
        targets = tuple((str(t["architecture"]), tuple(str(m) for m in t.get("machines", ())))
                        for t in data.get("targets", ()))
        return FirmwareDescriptor(name, path, tuple(str(i) for i in data.get("interface-types", ())), device, mode,
                                  executable, targets, frozenset(str(f) for f in data.get("features", ())))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _machine_matches(glob: str, machine: str, arch_ok: bool) -> bool:
    import fnmatch
    if not arch_ok:
        return False
    # libvirt expands the 'q35' alias to the newest pc-q35-X.Y before selecting firmware.
    return fnmatch.fnmatchcase("pc-q35-99.0" if machine == "q35" else machine, glob)


def matches(desc: FirmwareDescriptor, req: FirmwareRequest, libvirt_version: Optional[int] = None) -> str:
    """'' when ``desc`` satisfies ``req`` (qemuFirmwareMatchDomain), else why not."""
    if req.interface not in desc.interfaces:
        return f"no {req.interface} interface"
    if not any(_machine_matches(glob, req.machine, arch == req.arch) for arch, globs in desc.targets for glob in globs):
        return f"not for {req.arch} {req.machine}"
    f = desc.features
    if req.s3 and "acpi-s3" not in f:
        return "no acpi-s3"
    if req.s4 and "acpi-s4" not in f:
        return "no acpi-s4"
    for wanted, feature in ((req.secure_boot, "secure-boot"), (req.enrolled_keys, "enrolled-keys")):
        if wanted is True and feature not in f:
            return f"no {feature}"
        if wanted is False and feature in f:
            return f"has {feature}"
    if "requires-smm" in f and req.smm is False and (libvirt_version or 0) >= SMM_SKIP_LIBVIRT:
        return "requires SMM"
    if desc.device == "flash":
        if req.stateless and desc.mode != "stateless":
            return "not stateless"
        if not req.stateless and desc.mode != "split":
            return f"{desc.mode} flash, not split"
    if req.launch_security == "sev":
        if "amd-sev" not in f:
            return "no amd-sev"
        if req.policy & SEV_ES_POLICY_BIT and "amd-sev-es" not in f:
            return "no amd-sev-es"
    elif req.launch_security == "sev-snp" and "amd-sev-snp" not in f:
        return "no amd-sev-snp"
    # TDX: libvirt 11.3 predates it; its descriptors carry "intel-tdx" (QEMU firmware.json).
    elif req.launch_security == "tdx" and "intel-tdx" not in f:
        return "no intel-tdx"
    return ""


def select(fw: FirmwareSet, req: FirmwareRequest, libvirt_version: Optional[int] = None) -> FirmwareChoice:
    """The descriptor libvirt's autoselection takes for ``req`` (the first that matches)."""
    for desc in fw.descriptors:
        if matches(desc, req, libvirt_version):
            continue
        if "requires-smm" in desc.features and req.smm is False:
            # libvirt < 11.3 (qemuFirmwareEnableFeatures): chosen, then refused.
            return FirmwareChoice(None, f"{desc.path} is chosen first but requires SMM, which the domain turns off")
        return FirmwareChoice(desc)
    return FirmwareChoice(None, "Unable to find any firmware to satisfy 'efi'")


def firmware_for(uri: Optional[str], host: HostRoot) -> tuple[Optional[FirmwareSet], str]:
    """(descriptors, why unknown) of the host a VM is generated for.

    Readable only where libvirt runs on this machine: ``--host-root`` (an image or a
    tree of the target), or ``--connect`` to a local QEMU driver. A remote libvirt's
    descriptors cannot be read through its API.
    """
    import os
    from urllib.parse import urlsplit
    if uri:
        parts = urlsplit(uri)
        driver, _plus, transport = parts.scheme.partition("+")
        if driver != "qemu":
            return None, f"the {driver or uri} driver does not pick firmware from QEMU's descriptors"
        if parts.hostname or transport not in ("", "unix"):
            return None, f"{uri} is not this machine: its firmware descriptors cannot be read from here"
    elif not host.is_fake:
        return None, ("offline: the host's firmware descriptors are unknown; --connect or --host-root DIR "
                "reads them")
    extra: tuple[str, ...] = ()
    if uri and urlsplit(uri).path.rstrip("/") == "/session":
        # libvirt's unprivileged daemon also reads the user's directory (qemuInteropFetchConfigs)
        config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        extra = (f"{config}/qemu/firmware",)
    found = read_firmware(host, extra)
    if found is None:
        where = f"under {host.root}" if host.is_fake else "on this host"
        return None, f"no firmware descriptor directory ({', '.join(SYSTEM_DIRS)}) {where}"
    return found, ""
