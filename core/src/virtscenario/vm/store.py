"""The per-VM config store: ``<store>/<name>/domain.xml`` and ``vm.yaml``, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, VirtscenarioError
from ..records import FrozenRecord, frozen_record
from .identity import Identity
from .names import check_vm_name


@frozen_record
class StoredVm(FrozenRecord):
    """A VM of the store, as its vm.yaml records it (API 1.2)."""

    name: str
    directory: Path
    scenario: str
    uuid: str
    memory_bytes: int
    disks: tuple[dict[str, Any], ...]
    host_requirements: tuple[tuple[str, Any], ...]
    settings: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def from_record(cls, directory: Path, data: dict[str, Any]) -> StoredVm:
        reqs = tuple((str(i["key"]), i.get("value")) for i in data.get("host_requirements") or []
                     if isinstance(i, dict) and "key" in i)
        settings = {str(i.get("key")): i.get("value") for i in data.get("settings") or [] if isinstance(i, dict)}
        return cls(str(data.get("name") or directory.name), directory, str(data.get("scenario") or "unknown"),
                   str(data.get("uuid") or ""), int(data.get("memory_bytes") or 0),
                   tuple(d for d in data.get("disks") or [] if isinstance(d, dict)), reqs, settings, data)

DOMAIN_FILE = "domain.xml"
VM_FILE = "vm.yaml"
#: The random passphrase of the VM's encrypted images, when no --passphrase-file was given.
SECRET_FILE = "disk.secret"


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
    import tempfile
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


def list_vm_names(root: Path) -> list[str]:
    """Names of the VMs in the store (directories holding a vm.yaml), without parsing them."""
    try:
        return sorted(e.name for e in root.iterdir() if (e / VM_FILE).is_file())
    except OSError:
        return []


def vm_record(gen: Any) -> dict[str, Any]:
    """What vm.yaml holds: identity, provenance, disks, host requirements, every setting with its layer."""
    from .. import __version__
    return {
        "name": gen.domain.name,
        "scenario": gen.provided.scenario.name,
        "scenario_version": gen.provided.scenario.version,
        "plugin": gen.provided.distribution,
        "core_version": __version__,
        "uuid": gen.identity.uuid,
        "macs": list(gen.identity.macs),
        "secrets": dict(gen.identity.secret_uuids),
        "memory_bytes": gen.domain.memory,
        "disks": [{"path": d.path, "format": d.format, "size": d.size, "encrypted": d.encrypted,
                   **({"backing": d.backing, "backing_format": d.backing_format} if d.backing else {})}
                  for d in gen.disks],
        # --cloud-init: where the seed is and what the default user-data made (never a key or password)
        **({"cloud_init": {"seed": gen.plan.seed.path, "user": gen.plan.seed.user,
                           "hostname": gen.plan.seed.hostname}} if gen.plan.seed else {}),
        "host_requirements": [{"key": r.key, "value": r.value} for r in gen.host_requirements],
        "settings": [{"key": k, "value": gen.settings[k].value, "layer": gen.settings[k].layer,
                      "origin": gen.settings[k].origin, "source": gen.settings[k].source}
                     for k in sorted(gen.settings)],
        "notes": [n.message for n in gen.notes],
    }


def read_passphrase_file(path: str) -> bytes:
    data = Path(path).read_bytes().rstrip(b"\n")
    if not data:
        raise ConfigError(f"--passphrase-file {path} is empty")
    return data


def write_vm(gen: Any, directory: Path, passphrase_file: Optional[str]) -> list[str]:
    """Images first (removed again if anything later fails), then domain.xml and vm.yaml atomically."""
    import os
    import shutil

    from .images import create_image, new_passphrase
    created: list[str] = []
    made_dir = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        passphrase: Optional[bytes] = None
        for image in gen.images:
            path = Path(image.path)
            if path.exists():
                from ..types import Note
                gen.notes.append(Note("info", f"kept existing image {path} (remove it to recreate)"))
                continue
            if image.encrypt and passphrase is None:
                if passphrase_file:
                    passphrase = read_passphrase_file(passphrase_file)
                else:
                    passphrase = new_passphrase()
                    # Same protection as libvirt's own secret store (/etc/libvirt/secrets, 0600 root).
                    atomic_write(directory / SECRET_FILE, passphrase, mode=0o600)
            if image.backing:  # --disk path=BASE,overlay=on
                from .images import create_overlay
                create_overlay(image)
            else:
                create_image(image, passphrase)
            created.append(str(path))
        if gen.share_dir:
            Path(gen.share_dir).mkdir(parents=True, exist_ok=True)
        if gen.plan.seed:  # --cloud-init: rewritten on --force, so a changed key takes effect
            from .cloudinit import write_seed
            write_seed(gen.plan.seed)
        atomic_write(directory / DOMAIN_FILE, gen.xml)
        atomic_write(directory / VM_FILE, dump_yaml(vm_record(gen)))
    except BaseException:
        for made in created:
            try:
                os.unlink(made)
            except OSError:
                pass
        if made_dir:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return created


def read_vm(directory: Path) -> Optional[StoredVm]:
    data = load_vm(directory)
    return None if data is None else StoredVm.from_record(directory, data)


def stored_vms(root: Path) -> list[StoredVm]:
    out = []
    for name in list_vm_names(root):
        vm = read_vm(root / name)
        if vm is not None:
            out.append(vm)
    return out
