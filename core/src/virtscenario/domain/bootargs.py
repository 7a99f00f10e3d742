"""``--boot``: the firmware flavour and direct kernel boot, with virt-install's ``--boot`` semantics.

``--boot uefi`` / ``--boot bios`` become the setting ``firmware.type`` (layer ``flag``);
``--boot kernel=PATH,initrd=PATH,cmdline=TEXT`` (``kernel_args=`` as virt-install spells it)
is per-VM data like ``--cdrom``: it becomes :class:`DirectBoot` in the plan, which
:mod:`.sections.firmware` renders as ``<os><kernel>``, ``<initrd>`` and ``<cmdline>``.
A value holding commas is quoted: ``cmdline="console=ttyS0,115200 quiet"``.
"""

from __future__ import annotations

from typing import Optional

from ..records import FrozenRecord, frozen_record

BOOT_OPTIONS = ("kernel", "initrd", "cmdline", "kernel_args")
FIRMWARE_WORDS = {"uefi": "efi", "efi": "efi", "bios": "bios"}


@frozen_record
class DirectBoot(FrozenRecord):
    """QEMU loads this kernel (and initrd) itself: no boot loader in the guest's disk is used."""

    kernel: str
    initrd: Optional[str] = None
    cmdline: Optional[str] = None


@frozen_record
class BootArg(FrozenRecord):
    """One ``--boot`` argument, parsed: the firmware asked for, and a direct kernel boot."""

    firmware: Optional[str] = None  # efi|bios
    direct: Optional[DirectBoot] = None


def split_options(text: str, what: str) -> list[str]:
    """``a=1,b="x,y"`` -> ``['a=1', 'b=x,y']``: commas inside double quotes do not split."""
    from ..errors import ConfigError
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ConfigError(f"{what} {text[:80]!r}: unbalanced double quote")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_boot(text: str) -> BootArg:
    """``uefi``, ``bios``, ``kernel=PATH[,initrd=PATH][,cmdline=TEXT]``, or both joined by a comma."""
    from pathlib import Path

    from ..errors import ConfigError
    firmware = None
    opts: dict[str, str] = {}
    for part in split_options(text, "--boot"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            if key not in FIRMWARE_WORDS:
                raise ConfigError(f"--boot {text[:80]!r}: unknown word {key[:40]!r} (uefi, bios, or kernel=PATH,"
                                  "initrd=PATH,cmdline=TEXT)")
            if firmware is not None:
                raise ConfigError(f"--boot {text[:80]!r}: give one of uefi and bios")
            firmware = FIRMWARE_WORDS[key]
            continue
        if key not in BOOT_OPTIONS:
            raise ConfigError(f"--boot {text[:80]!r}: unknown option {key[:40]!r} (known: uefi, bios, "
                              f"{', '.join(BOOT_OPTIONS)})")
        name = "cmdline" if key == "kernel_args" else key
        if name in opts:
            raise ConfigError(f"--boot {text[:80]!r}: option {name!r} given twice")
        opts[name] = value
    if not opts:
        return BootArg(firmware)
    if not opts.get("kernel"):
        raise ConfigError(f"--boot {text[:80]!r}: initrd= and cmdline= need kernel=PATH")
    files = {}
    for name in ("kernel", "initrd"):
        if name not in opts:
            continue
        path = Path(opts[name]).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"--boot {name}={opts[name]}: no such file")
        files[name] = str(path)
    cmdline = opts.get("cmdline")
    if cmdline is not None and any(ord(c) < 32 for c in cmdline):
        raise ConfigError("--boot cmdline=: control characters are not allowed")
    return BootArg(firmware, DirectBoot(files["kernel"], files.get("initrd"), cmdline or None))
