"""VM names: libvirt's rules, and nothing that can escape the store."""

from __future__ import annotations

from .errors import ConfigError

MAX_NAME_BYTES = 200  # leaves room for '.qcow2', '.nvram' and '_VARS.fd' suffixes in a 255-byte file name


def check_vm_name(name: str) -> str:
    if not name:
        raise ConfigError("VM name must not be empty")
    if "/" in name or "\\" in name:
        raise ConfigError(f"VM name {name!r} must not contain '/' or '\\'")
    if name in (".", ".."):
        raise ConfigError(f"VM name {name!r} is not allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"VM name {name!r} must not contain control characters")
    if name != name.strip():
        raise ConfigError(f"VM name {name!r} must not start or end with whitespace")
    if name.startswith("-"):
        raise ConfigError(f"VM name {name!r} must not start with '-' (it would read as an option to virsh)")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(f"VM name is {len(name.encode())} bytes long; the limit is {MAX_NAME_BYTES} "
                          "so its files fit a file name")
    return name
