"""Sizes with units, read the way libvirt and qemu-img read them.

Rules (documented in docs/settings.md):

* ``K``, ``M``, ``G``, ``T`` and ``KiB``, ``MiB``, ``GiB``, ``TiB`` are binary
  (powers of 1024) -- as in libvirt's ``unit='M'`` and qemu-img's ``4G``.
* ``KB``, ``MB``, ``GB``, ``TB`` are decimal (powers of 1000), as libvirt reads them.
* ``B`` or ``bytes`` is bytes.
* A bare number is in the setting's default unit: MiB for memory
  (``--memory 2048`` as in virt-install), GiB for disk sizes (``--disk size=20``).
* Units are case-insensitive; a space between number and unit is allowed.
  Fractions are allowed when the result is a whole number of bytes (``1.5G``).
"""

from __future__ import annotations

import re

from .errors import ConfigError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

_MULTIPLIERS = {
    "b": 1, "byte": 1, "bytes": 1,
    "k": KIB, "kib": KIB, "m": MIB, "mib": MIB, "g": GIB, "gib": GIB, "t": TIB, "tib": TIB,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")


def parse_size(text: object, default_unit: str = "MiB", what: str = "size") -> int:
    """Return a size in bytes; raise ConfigError with a one-line reason."""
    if isinstance(text, bool):
        raise ConfigError(f"{what}: expected a size such as 4GiB, got {str(text)[:40]!r}")
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected a size such as 4GiB, got {str(text)[:40]!r}")
    if len(text) > 64:
        raise ConfigError(f"{what}: {text[:40]!r}... is not a size (examples: 4GiB, 4096MiB, 512M, 4G)")
    match = _SIZE_RE.match(text)
    if not match:
        raise ConfigError(f"{what}: {text!r} is not a size (examples: 4GiB, 4096MiB, 512M, 4G)")
    unit = match.group("unit").lower() or default_unit.lower()
    if unit not in _MULTIPLIERS:
        raise ConfigError(f"{what}: unknown unit {match.group('unit')[:20]!r} in {text[:60]!r} "
                          "(use B, K/KiB, M/MiB, G/GiB, T/TiB, or KB/MB/GB/TB)")
    # Exact integer arithmetic (no Decimal: its import is a measurable share of start-up).
    whole, _dot, frac = match.group("num").partition(".")
    scale = 10 ** len(frac)
    numerator = (int(whole) * scale + (int(frac) if frac else 0)) * _MULTIPLIERS[unit]
    value, remainder = divmod(numerator, scale)
    if remainder:
        raise ConfigError(f"{what}: {text[:60]!r} is not a whole number of bytes")
    if value <= 0:
        raise ConfigError(f"{what}: {text[:60]!r} must be greater than zero")
    return value


def format_size(nbytes: int) -> str:
    """Render bytes with the largest binary unit that divides them exactly."""
    for unit, mult in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if nbytes % mult == 0 and nbytes >= mult:
            return f"{nbytes // mult}{unit}"
    return f"{nbytes}B"
