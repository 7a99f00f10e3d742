"""``--disk`` and ``--network`` options in virt-install's syntax."""

from __future__ import annotations

import difflib
from typing import Optional

from .errors import ConfigError
from .records import FrozenRecord, frozen_record
from .units import parse_size

_DISK_KEYS = ("path", "size", "format", "cache", "bus", "io", "discard", "device")
_NET_KEYS = ("network", "bridge", "model", "mac", "queues")


@frozen_record
class DiskSpec(FrozenRecord):
    path: Optional[str] = None
    size: Optional[int] = None  # bytes
    format: Optional[str] = None
    cache: Optional[str] = None
    bus: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None


@frozen_record
class NetSpec(FrozenRecord):
    kind: str  # network|bridge|user
    source: str = ""
    model: Optional[str] = None
    mac: Optional[str] = None
    queues: Optional[int] = None


def _pairs(text: str, allowed: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise ConfigError(f"{what} {text!r}: unknown option {key!r}{hint}")
        if not eq or not value.strip():
            raise ConfigError(f"{what} {text!r}: option {key!r} needs a value ({key}=...)")
        if key in out:
            raise ConfigError(f"{what} {text!r}: option {key!r} given twice")
        out[key] = value.strip()
    return out


def parse_disk(text: str) -> Optional[DiskSpec]:
    """``size=20,format=qcow2``, ``path=IMAGE``, or ``none`` (returns None)."""
    if text.strip() == "none":
        return None
    opts = _pairs(text, _DISK_KEYS, "--disk")
    if "device" in opts and opts["device"] != "disk":
        raise ConfigError(f"--disk {text!r}: only device=disk is supported here; use --cdrom ISO for a CD-ROM")
    if "path" not in opts and "size" not in opts:
        raise ConfigError(f"--disk {text!r}: give size=GiB for a new image or path=IMAGE for an existing one")
    if "path" in opts and "size" in opts:
        raise ConfigError(f"--disk {text!r}: give either size= (new image) or path= (existing image), not both")
    size = parse_size(opts["size"], "GiB", what=f"--disk {text!r} size") if "size" in opts else None
    return DiskSpec(path=opts.get("path"), size=size, format=opts.get("format"), cache=opts.get("cache"),
                    bus=opts.get("bus"), io=opts.get("io"), discard=opts.get("discard"))


def parse_network(text: str) -> Optional[NetSpec]:
    """``network=NAME``, ``bridge=NAME``, ``user``, or ``none`` (returns None)."""
    head = text.split(",", 1)[0].strip()
    if head == "none":
        if "," in text:
            raise ConfigError(f"--network {text!r}: 'none' takes no options")
        return None
    rest = text.split(",", 1)[1] if "," in text else ""
    if head == "user":
        opts = _pairs(rest, ("model", "mac"), "--network")
        return NetSpec("user", "", opts.get("model"), _mac(opts.get("mac"), text))
    opts = _pairs(text, _NET_KEYS, "--network")
    kinds = [k for k in ("network", "bridge") if k in opts]
    if len(kinds) != 1:
        raise ConfigError(f"--network {text!r}: give exactly one of network=NAME, bridge=NAME, user or none")
    queues = None
    if "queues" in opts:
        try:
            queues = int(opts["queues"])
        except ValueError:
            raise ConfigError(f"--network {text!r}: queues must be an integer") from None
        if not 1 <= queues <= 256:
            raise ConfigError(f"--network {text!r}: queues must be between 1 and 256")
    source = opts[kinds[0]]
    if "/" in source or any(ord(c) < 32 for c in source):
        raise ConfigError(f"--network {text!r}: {source!r} is not a valid {kinds[0]} name")
    return NetSpec(kinds[0], source, opts.get("model"), _mac(opts.get("mac"), text), queues)


def _mac(mac: Optional[str], text: str) -> Optional[str]:
    if mac is None:
        return None
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ConfigError(f"--network {text!r}: {mac!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    if int(parts[0], 16) & 1:
        raise ConfigError(f"--network {text!r}: {mac!r} is a multicast address")
    return mac.lower()
