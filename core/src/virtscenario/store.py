"""The per-VM config store: ``<store>/<name>/domain.xml`` and ``vm.yaml``, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .build import Identity
from .errors import ConfigError, VirtscenarioError
from .names import check_vm_name

DOMAIN_FILE = "domain.xml"
VM_FILE = "vm.yaml"


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


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file in the same directory, fsync, then rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError:
        pass


def load_vm(directory: Path) -> Optional[dict[str, Any]]:
    path = directory / VM_FILE
    if not path.is_file():
        return None
    import yaml
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError) as exc:
        raise VirtscenarioError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    return data if isinstance(data, dict) else None


def load_identity(directory: Path) -> Optional[Identity]:
    data = load_vm(directory)
    if not data or not data.get("uuid"):
        return None
    return Identity(uuid=str(data["uuid"]), macs=[str(m) for m in data.get("macs") or []],
                    secret_uuids={str(k): str(v) for k, v in (data.get("secrets") or {}).items()})


def list_vms(root: Path) -> list[dict[str, Any]]:
    out = []
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            data = load_vm(entry) if entry.is_dir() else None
            if data:
                out.append(data)
    return out


def dump_yaml(data: dict[str, Any]) -> bytes:
    import yaml
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True).encode()
