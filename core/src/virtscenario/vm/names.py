"""VM names and where they live: libvirt's rules, nothing that can escape the store, the store root.

Kept apart from :mod:`.store` so that ``create --print-xml`` finds a VM's directory without
importing the store's writers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

MAX_NAME_BYTES = 200  # leaves room for '.qcow2', '.nvram' and '_VARS.fd' suffixes in a 255-byte file name


def check_vm_name(name: str) -> str:
    if not name:
        raise ConfigError("VM name must not be empty")
    if len(name) > MAX_NAME_BYTES:  # before anything prints it
        raise ConfigError(f"VM name is {len(name)} characters long; the limit is {MAX_NAME_BYTES} bytes "
                          "so its files fit a file name")
    if "/" in name or "\\" in name:
        raise ConfigError(f"VM name {name!r} must not contain '/' or '\\'")
    if name in (".", ".."):
        raise ConfigError(f"VM name {name!r} is not allowed")
    # Cc: C0/C1 controls (U+009B is a terminal CSI); Cf: format characters such as bidi overrides
    # (U+202E) and zero-width spaces (U+200B) that make two names look alike; Cs/Co/Cn: no character.
    # In ASCII only the C0 controls and DEL are any of these (unicodedata costs an import).
    if name.isascii():
        bad = next((c for c in name if c < " " or c == "\x7f"), None)
    else:
        import unicodedata
        bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")), None)
    if bad is not None:
        raise ConfigError(f"VM name {name!r} must not contain control or invisible characters "
                          f"(U+{ord(bad):04X})")
    if name != name.strip():
        raise ConfigError(f"VM name {name!r} must not start or end with whitespace")
    if name.startswith("-"):
        raise ConfigError(f"VM name {name!r} must not start with '-' (it would read as an option to virsh)")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(f"VM name is {len(name.encode('utf-8'))} bytes long; the limit is {MAX_NAME_BYTES} "
                          "so its files fit a file name")
    return name


def default_store_root() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/virtscenario/vms")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "virtscenario" / "vms"


def store_root(output: Optional[str], configured: Optional[str] = None) -> Path:
    # Absolute: image and share paths in the XML derive from it, and libvirt needs them absolute.
    return Path(output or configured or default_store_root()).expanduser().absolute()


def vm_dir(root: Path, name: str) -> Path:
    check_vm_name(name)
    path = (root / name)
    # check_vm_name forbids '/', '..' and '.', so the VM directory is always a direct child.
    if path.parent != root:
        raise ConfigError(f"VM name {name!r} would leave the store")
    return path
