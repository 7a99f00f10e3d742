"""The VM store: ``<store>/<name>/`` with its domain.xml, vm.yaml, images, key and share.

Layout of one VM (docs/store.md states the guarantees)::

    <store>/                   0711; .locks/<name>.lock (one writer per VM, vm/lock.py)
      <name>/                  0700, never a symlink
        domain.xml -> current/domain.xml
        vm.yaml    -> current/vm.yaml
        current    -> gen-N    the commit point: one rename switches both files
        gen-N/                 0700: domain.xml, vm.yaml (0600) of generation N
        <name>.qcow2 ...       images (0600), kept across --force, outside the generations
        disk.secret            the VM's random key (0600), never regenerated
        share/                 virtiofs share (0700)

A new VM is built complete in ``<store>/.new-<name>.XXXX`` and renamed to ``<name>``. An
update (``--force``) checks or creates images first, stages ``gen-N+1``, then switches
``current`` with one atomic rename. After a crash at any point the store holds the old
VM or the new one, complete; leftovers (staging directories, ``.part`` images, unused
generations) are removed by the next writer, which holds the VM's lock.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import VirtscenarioError
from ..records import FrozenRecord, Record, frozen_record, record
from .fsutil import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    ROOT_DIR,
    StoreError,
    entries,
    failed,
    fsync_fd,
    lstat_at,
    make_dir,
    open_dir,
    read_at,
    remove_tree_at,
    rename_noreplace,
    set_mode,
    symlink_at,
    token,
    unlink_at,
    write_at,
)
from .identity import Identity
from .keys import FROM_KEY_FILE, FROM_PASSPHRASE_FILE, KEY_FILE, MAX_PASSPHRASE, new_key
from .names import check_vm_name, default_store_root, store_root, vm_dir  # noqa: F401 - re-exported

Progress = Optional[Callable[[str], None]]


@frozen_record
class StoredVm(FrozenRecord):
    """A VM of the store, as its vm.yaml records it (API 1.2).

    ``settings`` maps each key to its value; ``host_requirements`` are ``(key, value)`` pairs;
    ``raw`` is the whole vm.yaml.
    """

    name: str
    directory: Path  # <store>/<name>
    scenario: str
    uuid: str
    memory_bytes: int
    disks: tuple[dict[str, Any], ...]
    host_requirements: tuple[tuple[str, Any], ...]  # (key, value) pairs
    settings: dict[str, Any]  # key -> value
    raw: dict[str, Any]  # the whole vm.yaml

    @classmethod
    def from_record(cls, directory: Path, data: dict[str, Any]) -> StoredVm:
        """From the parsed vm.yaml ``data`` of the VM in ``directory``."""
        reqs = tuple((str(i["key"]), i.get("value")) for i in data.get("host_requirements") or []
                     if isinstance(i, dict) and "key" in i)
        settings = {str(i.get("key")): i.get("value") for i in data.get("settings") or [] if isinstance(i, dict)}
        # Every setting is a bool, a whole number, a string or unset: anything else (.inf, a list)
        # is a damaged or hand-edited record, refused here rather than deep in a host plan.
        for key, value in (*reqs, *settings.items()):
            if not (value is None or isinstance(value, (bool, str)) or
                    (isinstance(value, int) and -2 ** 63 <= value < 2 ** 64)):
                raise StoreError(f"{directory / VM_FILE}: {key[:60]} is {str(value)[:40]!r}, not a setting value "
                                 "(a damaged record: re-create the VM with --force)")
        raw_memory = data.get("memory_bytes") or 0
        if isinstance(raw_memory, bool) or not isinstance(raw_memory, int) or not 0 <= raw_memory < 2 ** 64:
            # .inf, 1e400, a string: a damaged or hand-edited record, never a guess (host plans size
            # hugepages from it).
            raise StoreError(f"{directory / VM_FILE}: memory_bytes {str(raw_memory)[:40]!r} is not a byte count "
                             "(a damaged record: re-create the VM with --force)")
        memory = raw_memory
        return cls(str(data.get("name") or directory.name), directory, str(data.get("scenario") or "unknown"),
                   str(data.get("uuid") or ""), memory,
                   tuple(d for d in data.get("disks") or [] if isinstance(d, dict)), reqs, settings, data)


DOMAIN_FILE = "domain.xml"
VM_FILE = "vm.yaml"
#: The random passphrase of the VM's encrypted images, when no --passphrase-file was given.
SECRET_FILE = KEY_FILE
CURRENT = "current"
SHARE_DIR = "share"
GEN_RE = re.compile(r"gen-([0-9]{1,9})")
NEW_PREFIX = ".new-"
DELETING_PREFIX = ".deleting-"
MAX_XML = 4 * 1024 * 1024


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file in the same directory, fsync, then rename over (API: raises OSError).

    The mode is set with fchmod, so it does not depend on the umask.
    """
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


# -- the store root ------------------------------------------------------------------------
def open_root(root: Path, create: bool) -> Optional[int]:
    """Open the store root after the trust check (owner, no group/world write, same up the path).

    ``create``: make it (and missing parents) 0711. Without it, a missing root is None.
    """
    from ..safefiles import check_trusted_dir
    check_trusted_dir(root, "store")
    if not os.path.isdir(root):
        if not create:
            if os.path.lexists(root):
                raise StoreError(f"store {root} is not a directory")
            return None
        _make_dirs(root)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise failed(exc, "open store", root) from None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            raise StoreError(f"store {root} changed while being checked: refusing to use it")
        if create and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~ROOT_DIR:
            set_mode(fd, stat.S_IMODE(st.st_mode) & ROOT_DIR, root)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_root_for_writing(root: Path) -> int:
    fd = open_root(root, create=True)
    assert fd is not None  # create=True makes it
    return fd


def _make_dirs(root: Path) -> None:
    missing = []
    path = root
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR)
            os.chmod(path, ROOT_DIR)  # umask-independent; others may traverse, not list
        except FileExistsError:
            pass
        except OSError as exc:
            raise failed(exc, "create store directory", path) from None


# -- reading -------------------------------------------------------------------------------
def _meta_dir(vm_fd: int, directory: Path) -> Optional[tuple[int, bool]]:
    """The directory holding the current domain.xml/vm.yaml (opened), and whether we opened it.

    New layout: vm.yaml -> current/vm.yaml, current -> gen-N. Plain files (stores written
    before generations existed) are read in place. Anything else is refused.
    """
    st = lstat_at(vm_fd, VM_FILE, directory / VM_FILE)
    if st is None:
        return None
    if stat.S_ISREG(st.st_mode):
        return vm_fd, False
    if not stat.S_ISLNK(st.st_mode) or _readlink(vm_fd, VM_FILE, directory) != f"{CURRENT}/{VM_FILE}":
        raise StoreError(f"{directory / VM_FILE} is not what virtscenario writes (a file, or a symlink to "
                         f"{CURRENT}/{VM_FILE}): refusing to follow it")
    gen = current_generation(vm_fd, directory)
    if gen is None:
        raise StoreError(f"{directory / CURRENT} is missing: the VM's record is incomplete")
    return open_dir(f"gen-{gen}", vm_fd, directory / f"gen-{gen}"), True


def _readlink(dir_fd: int, name: str, directory: Path) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        raise failed(exc, "read the link", directory / name) from None


def current_generation(vm_fd: int, directory: Path) -> Optional[int]:
    st = lstat_at(vm_fd, CURRENT, directory / CURRENT)
    if st is None:
        return None
    target = _readlink(vm_fd, CURRENT, directory) if stat.S_ISLNK(st.st_mode) else ""
    match = GEN_RE.fullmatch(target)
    if not match:
        raise StoreError(f"{directory / CURRENT} must be a symlink to gen-N: refusing to follow it")
    return int(match.group(1))


def _read_meta(vm_fd: int, directory: Path, with_xml: bool) -> Optional[tuple[bytes, Optional[bytes]]]:
    """The current vm.yaml (and domain.xml) bytes; retried when a writer switches generations meanwhile."""
    from ..safefiles import MAX_YAML_BYTES
    for attempt in range(3):
        meta = _meta_dir(vm_fd, directory)
        if meta is None:
            return None
        fd, opened = meta
        try:
            shown = directory if not opened else directory / CURRENT
            yaml_bytes = read_at(fd, VM_FILE, MAX_YAML_BYTES, shown / VM_FILE)
            xml = None
            if with_xml and lstat_at(fd, DOMAIN_FILE, shown / DOMAIN_FILE) is not None:
                xml = read_at(fd, DOMAIN_FILE, MAX_XML, shown / DOMAIN_FILE)
            return yaml_bytes, xml
        except StoreError:
            if attempt == 2 or not opened:
                raise
        finally:
            if opened:
                os.close(fd)
    return None


def parse_record(data: bytes, where: Path) -> dict[str, Any]:
    """vm.yaml as a mapping; an empty or non-mapping record is one clear error."""
    from ..safefiles import parse_yaml
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    parsed = parse_yaml(text, str(where))
    if not isinstance(parsed, dict):
        kind = "empty" if parsed is None else f"a {type(parsed).__name__}, not a mapping"
        raise StoreError(f"{where} is {kind}: the VM's record (uuid, MACs, images) is lost")
    return parsed


def _open_vm(directory: Path, create_root: bool = False) -> Optional[tuple[int, int]]:
    """(root fd, VM dir fd), or None when the store or the VM directory does not exist."""
    root_fd = open_root(directory.parent, create_root)
    if root_fd is None:
        return None
    try:
        if lstat_at(root_fd, directory.name, directory) is None:
            os.close(root_fd)
            return None
        return root_fd, open_dir(directory.name, root_fd, directory)
    except BaseException:
        os.close(root_fd)
        raise


def load_record(directory: Path) -> Optional[dict[str, Any]]:
    """The VM's vm.yaml; None when there is no VM; a broken record is a one-line error."""
    opened = _open_vm(directory)
    if opened is None:
        return None
    root_fd, vm_fd = opened
    try:
        meta = _read_meta(vm_fd, directory, with_xml=False)
        return None if meta is None else parse_record(meta[0], directory / VM_FILE)
    finally:
        os.close(vm_fd)
        os.close(root_fd)


def load_vm(directory: Path) -> Optional[dict[str, Any]]:
    """vm.yaml of ``directory`` (None: no VM there)."""
    return load_record(directory)


def read_domain_xml(directory: Path) -> Optional[bytes]:
    opened = _open_vm(directory)
    if opened is None:
        return None
    root_fd, vm_fd = opened
    try:
        meta = _read_meta(vm_fd, directory, with_xml=True)
        return None if meta is None else meta[1]
    finally:
        os.close(vm_fd)
        os.close(root_fd)


def load_identity(directory: Path) -> Optional[Identity]:
    """The identity to keep on --force; None for no VM. A record without a uuid is refused:
    regenerating it would silently give the VM a new uuid and new MACs."""
    data = load_record(directory)
    if data is None:
        return None
    if not data.get("uuid") or not isinstance(data.get("uuid"), str):
        raise StoreError(f"{directory / VM_FILE} has no uuid: refusing to regenerate the VM with a new uuid and "
                         "new MACs (fix vm.yaml, or delete the VM)")
    macs = data.get("macs") or []
    secrets = data.get("secrets") or {}
    if not isinstance(macs, list) or not isinstance(secrets, dict):
        raise StoreError(f"{directory / VM_FILE}: 'macs' must be a list and 'secrets' a mapping")
    return Identity(uuid=str(data["uuid"]), macs=[str(m) for m in macs],
                    secret_uuids={str(k): str(v) for k, v in secrets.items()})


def list_vm_names(root: Path) -> list[str]:
    """Names of the VMs in the store (directories holding a vm.yaml), without parsing them."""
    try:
        names = sorted(e.name for e in root.iterdir()
                       if not e.name.startswith(".") and not e.is_symlink() and e.is_dir()
                       and os.path.lexists(e / VM_FILE))
    except OSError:
        return []
    return names


def list_vms(root: Path) -> list[dict[str, Any]]:
    out = []
    for name in list_vm_names(root):
        try:
            data = load_record(root / name)
        except VirtscenarioError:
            continue
        if data:
            out.append(data)
    return out


def read_vm(directory: Path) -> Optional[StoredVm]:
    data = load_record(directory)
    return None if data is None else StoredVm.from_record(directory, data)


def stored_vms(root: Path) -> list[StoredVm]:
    if open_root_checked(root) is None:
        return []
    out = []
    for name in list_vm_names(root):
        try:
            vm = read_vm(root / name)
        except VirtscenarioError:
            continue  # a broken record is reported by 'virtscenario list', not by every reader
        if vm is not None:
            out.append(vm)
    return out


def open_root_checked(root: Path) -> Optional[Path]:
    """The trust check of a store that is only read; None when it does not exist."""
    fd = open_root(root, create=False)
    if fd is None:
        return None
    os.close(fd)
    return root


def dump_yaml(data: dict[str, Any]) -> bytes:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # vm.yaml is read back without anchors or aliases

    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True).encode()


def vm_record(gen: Any, keys: Optional[dict[str, Optional[str]]] = None,
              libvirt_uri: Optional[str] = None) -> dict[str, Any]:
    """What vm.yaml holds: identity, provenance, disks, host requirements, every setting with its layer
    and reason. ``keys``: image path -> where its passphrase comes from (disk.secret, passphrase-file)."""
    from .. import __version__
    keys = keys or {}
    out = {
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
                   "created": d.create, "key": keys.get(d.path) if d.encrypted else None,
                   **({"backing": d.backing, "backing_format": d.backing_format} if d.backing else {}),
                   # a volume of a storage pool on the VM's host (fleet/remote.py): not a file of this machine
                   **({"pool": d.pool, "volume": d.volume} if getattr(d, "pool", None) else {})}
                  for d in gen.disks],
        # --cloud-init: where the seed is and what the default user-data made (never a key or password)
        **({"cloud_init": {"seed": gen.plan.seed.path, "user": gen.plan.seed.user,
                           "hostname": gen.plan.seed.hostname}} if gen.plan.seed else {}),
        "host_requirements": [{"key": r.key, "value": r.value} for r in gen.host_requirements],
        "settings": [{"key": k, "value": gen.settings[k].value, "layer": gen.settings[k].layer,
                      "origin": gen.settings[k].origin, "source": gen.settings[k].source,
                      "rationale": gen.settings[k].rationale, "reference": gen.settings[k].reference}
                     for k in sorted(gen.settings)],
        "notes": [n.message for n in gen.notes],
    }
    if libvirt_uri:
        out["libvirt_uri"] = libvirt_uri
    out.update(getattr(gen, "record_extra", None) or {})
    return out


def read_passphrase_file(path: str) -> bytes:
    from .keys import read_passphrase_file as read
    return read(path)


# -- writing -------------------------------------------------------------------------------
@record
class Written(Record):
    """What :func:`write_vm` did: images created and kept, and the passphrase of every encrypted disk."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    keys: dict[str, bytes] = field(default_factory=dict)
    sources: dict[str, Optional[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Keys:
    """The passphrases a write may use: the VM's key file (read, or created once) and --passphrase-file."""

    def __init__(self, dir_fd: int, directory: Path, given: Optional[bytes]) -> None:
        self.dir_fd, self.directory, self.given = dir_fd, directory, given
        self.created = False
        st = lstat_at(dir_fd, KEY_FILE, directory / KEY_FILE)
        self.stored: Optional[bytes] = None
        if st is not None:
            self.stored = read_at(dir_fd, KEY_FILE, MAX_PASSPHRASE, directory / KEY_FILE)
            if not self.stored:
                raise StoreError(f"{directory / KEY_FILE} is empty: the images it opened cannot be opened "
                                 "any more; refusing to replace it")

    def for_new(self) -> tuple[str, bytes]:
        if self.given is not None:
            return FROM_PASSPHRASE_FILE, self.given
        if self.stored is None:
            # Written and synced before the first image that uses it exists.
            self.stored = new_key()
            write_at(self.dir_fd, KEY_FILE, self.stored, self.directory / KEY_FILE, PRIVATE_FILE)
            self.created = True
        return FROM_KEY_FILE, self.stored

    def candidates(self, recorded: Optional[str]) -> list[tuple[str, bytes]]:
        found = []
        if self.stored is not None:
            found.append((FROM_KEY_FILE, self.stored))
        if self.given is not None:
            found.append((FROM_PASSPHRASE_FILE, self.given))
        found.sort(key=lambda item: item[0] != recorded)
        return found

    def adopt(self, key: bytes) -> None:
        """A random key made for volumes another host's libvirt encrypted with it: kept as disk.secret, written
        and synced before the generation that records those volumes, like a key the store makes."""
        if self.stored is not None:
            if self.stored != key:
                raise StoreError(f"{self.directory / KEY_FILE} holds another key than the one the VM's new "
                                 "volumes were made with; refusing to replace it")
            return
        self.stored = key
        write_at(self.dir_fd, KEY_FILE, key, self.directory / KEY_FILE, PRIVATE_FILE)
        self.created = True

    def discard_new(self) -> None:
        if self.created:
            unlink_at(self.dir_fd, KEY_FILE, self.directory / KEY_FILE)


def write_vm(gen: Any, directory: Path, passphrase_file: Optional[str] = None, progress: Progress = None,
             libvirt_uri: Optional[str] = None, passphrase: Optional[bytes] = None,
             adopt_key: Optional[bytes] = None) -> Written:
    """Write the VM of ``gen`` to ``directory`` (``<store>/<name>``): images, key, share, then the
    domain.xml/vm.yaml generation, switched atomically. The caller holds the VM's lock
    (:class:`~virtscenario.vm.lock.VmLock`), except in single-process tools and tests.

    ``adopt_key``: a random key the caller encrypted volumes on another host with; kept as disk.secret.
    """
    from .keys import read_passphrase_file as read_given
    given = passphrase if passphrase is not None else read_given(passphrase_file) if passphrase_file else None
    root_fd = open_root_for_writing(directory.parent)
    try:
        clean_root_leftovers(root_fd, directory)
        if lstat_at(root_fd, directory.name, directory) is None:
            return _write_new(gen, directory, root_fd, given, progress, libvirt_uri, adopt_key)
        vm_fd = open_dir(directory.name, root_fd, directory)
        try:
            return _write_update(gen, directory, vm_fd, given, progress, libvirt_uri, adopt_key)
        finally:
            os.close(vm_fd)
    finally:
        os.close(root_fd)


def clean_root_leftovers(root_fd: int, directory: Path) -> None:
    """Staging and half-deleted directories of this VM, left by a killed run (we hold its lock)."""
    pattern = re.compile(f"({re.escape(NEW_PREFIX)}|{re.escape(DELETING_PREFIX)}){re.escape(directory.name)}"
                         r"\.[0-9a-f]{8}")
    for entry in entries(root_fd, directory.parent):
        if pattern.fullmatch(entry):
            remove_tree_at(root_fd, entry, directory.parent / entry)


def _write_new(gen: Any, directory: Path, root_fd: int, given: Optional[bytes], progress: Progress,
               libvirt_uri: Optional[str], adopt_key: Optional[bytes] = None) -> Written:
    stage = f"{NEW_PREFIX}{directory.name}.{token()}"
    stage_path = directory.parent / stage
    out = Written()
    external: list[Path] = []
    stage_fd = make_dir(root_fd, stage, PRIVATE_DIR, stage_path)
    try:
        keys = _Keys(stage_fd, stage_path, given)
        if adopt_key is not None:
            keys.adopt(adopt_key)
        for image in gen.images:
            final = Path(image.path)
            if final.parent == directory:
                _create(image, keys, out, progress, at=str(stage_path / final.name))
            elif _external_image(image, keys, out, progress):
                external.append(final)
        _share(gen, directory, stage_fd, stage_path, out)
        if gen.plan.seed:
            _seed(gen.plan.seed, directory, stage_path, progress)
        _write_generation(stage_fd, stage_path, 1, gen, out, libvirt_uri)
        symlink_at(stage_fd, "gen-1", CURRENT, stage_path / CURRENT)
        symlink_at(stage_fd, f"{CURRENT}/{DOMAIN_FILE}", DOMAIN_FILE, stage_path / DOMAIN_FILE)
        symlink_at(stage_fd, f"{CURRENT}/{VM_FILE}", VM_FILE, stage_path / VM_FILE)
        fsync_fd(stage_fd, stage_path)
        # The commit point: the VM appears complete, or not at all.
        rename_noreplace(stage, directory.name, root_fd, root_fd, directory)
        fsync_fd(root_fd, directory.parent)
    except BaseException:
        os.close(stage_fd)
        stage_fd = -1
        # An interrupt (Ctrl-C) may land just after the commit rename: then the VM is complete and stays.
        if lstat_at(root_fd, stage, stage_path) is not None:
            _quietly(lambda: remove_tree_at(root_fd, stage, stage_path))
            for path in external:
                _quietly(lambda path=path: os.unlink(path))  # type: ignore[misc]
        raise
    finally:
        if stage_fd >= 0:
            os.close(stage_fd)
    return out


def _write_update(gen: Any, directory: Path, vm_fd: int, given: Optional[bytes], progress: Progress,
                  libvirt_uri: Optional[str], adopt_key: Optional[bytes] = None) -> Written:
    st = os.fstat(vm_fd)
    if st.st_uid not in (0, os.geteuid()):
        raise StoreError(f"VM directory {directory} belongs to uid {st.st_uid}, not to you or root: refusing to "
                         "write into it")
    # 0700, keeping only the group search bit create --define may have given QEMU's group.
    set_mode(vm_fd, PRIVATE_DIR | (stat.S_IMODE(st.st_mode) & 0o010), directory)
    _migrate_plain_files(vm_fd, directory)
    current = current_generation(vm_fd, directory)
    _clean_vm_leftovers(vm_fd, directory, current)
    old = {}
    meta = _read_meta(vm_fd, directory, with_xml=False)
    if meta is not None:
        old = parse_record(meta[0], directory / VM_FILE)
    recorded = {str(d.get("path")): d.get("key") for d in old.get("disks") or [] if isinstance(d, dict)}
    out = Written()
    made: list[tuple[int, str, Path]] = []  # (dir fd or -1, name, path) of images this run created
    keys = _Keys(vm_fd, directory, given)
    new_gen = (current or 0) + 1
    gen_name = f"gen-{new_gen}"
    switched = False
    try:
        if adopt_key is not None:
            keys.adopt(adopt_key)
        for image in gen.images:
            final = Path(image.path)
            if final.parent == directory:
                st_img = lstat_at(vm_fd, final.name, final)
                if st_img is None:
                    _create(image, keys, out, progress)
                    made.append((vm_fd, final.name, final))
                else:
                    _reuse(image, st_img, keys, recorded.get(str(final)), out, progress)
                    _tighten(vm_fd, final.name, final)
            elif _external_image(image, keys, out, progress, recorded.get(str(final))):
                made.append((-1, str(final), final))
        _share(gen, directory, vm_fd, directory, out)
        if gen.plan.seed:  # rewritten on every update, so a changed key or user-data takes effect
            _seed(gen.plan.seed, directory, directory, progress)
        _note_unused_images(old, gen, out)
        _write_generation(vm_fd, directory, new_gen, gen, out, libvirt_uri)
        # The commit point: 'current' names the new generation, in one rename.
        symlink_at(vm_fd, gen_name, CURRENT, directory / CURRENT)
        switched = True
        fsync_fd(vm_fd, directory)
        for name, target in ((DOMAIN_FILE, f"{CURRENT}/{DOMAIN_FILE}"), (VM_FILE, f"{CURRENT}/{VM_FILE}")):
            if lstat_at(vm_fd, name, directory / name) is None:  # a directory without a record before
                symlink_at(vm_fd, target, name, directory / name)
        fsync_fd(vm_fd, directory)
    except BaseException:
        if not switched:
            # An interrupt (Ctrl-C) may land just after the switch's rename: ask the link, not the flag.
            try:
                switched = current_generation(vm_fd, directory) == new_gen
            except VirtscenarioError:
                switched = False
        if not switched:
            _quietly(lambda: remove_tree_at(vm_fd, gen_name, directory / gen_name))
            for dir_fd, name, path in made:
                _quietly(lambda d=dir_fd, n=name, p=path: os.unlink(n, dir_fd=d) if d >= 0 else os.unlink(p))  # type: ignore[misc]
            _quietly(keys.discard_new)
        raise
    if current is not None:
        _quietly(lambda: remove_tree_at(vm_fd, f"gen-{current}", directory / f"gen-{current}"))
    return out


def _quietly(step: Callable[[], Any]) -> None:
    """Cleanup after a failure: its own failure must not hide the first one (the next run cleans up)."""
    try:
        step()
    except (OSError, VirtscenarioError):
        pass


def _write_generation(dir_fd: int, directory: Path, number: int, gen: Any, out: Written,
                      libvirt_uri: Optional[str]) -> None:
    name = f"gen-{number}"
    if lstat_at(dir_fd, name, directory / name) is not None:
        remove_tree_at(dir_fd, name, directory / name)
    gen_fd = make_dir(dir_fd, name, PRIVATE_DIR, directory / name)
    try:
        write_at(gen_fd, DOMAIN_FILE, gen.xml, directory / name / DOMAIN_FILE)
        write_at(gen_fd, VM_FILE, dump_yaml(vm_record(gen, out.sources, libvirt_uri)), directory / name / VM_FILE)
        fsync_fd(gen_fd, directory / name)
    finally:
        os.close(gen_fd)
    fsync_fd(dir_fd, directory)


def _create(image: Any, keys: _Keys, out: Written, progress: Progress, at: Optional[str] = None) -> None:
    from .images import create_image
    passphrase = None
    if image.encrypt:
        source, passphrase = keys.for_new()
        out.sources[image.path] = source
        out.keys[image.path] = passphrase
    create_image(image, passphrase, progress=progress, at=at)
    out.created.append(image.path)


def _reuse(image: Any, st: os.stat_result, keys: _Keys, recorded: Optional[str], out: Written,
           progress: Progress) -> None:
    """Keep an existing image only when qemu-img confirms the plan (format, size, LUKS, its key)."""
    from .images import check_image, mismatch
    path = image.path
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"image {path} is a symbolic link: refusing to use what it points to (remove it)")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"image {path} exists and is not a regular file")
    if progress:
        progress(f"Checking existing image {path}")
    problem = mismatch(path, image.format, image.size, image.encrypt, backing=image.backing)
    if problem:
        raise StoreError(f"existing image {path}: {problem}; remove it to create a new one (its data is lost), "
                         "or keep the settings it was made with")
    if image.encrypt:
        candidates = keys.candidates(recorded)
        if not candidates:
            raise StoreError(f"existing image {path} is encrypted and no passphrase is known for it (no "
                             f"{KEY_FILE}): give the --passphrase-file it was made with")
        for source, key in candidates:
            error = check_image(path, image.format, key)
            if error is None:
                out.sources[path], out.keys[path] = source, key
                break
            if "password" not in error and "keyslot" not in error:
                raise StoreError(f"existing image {path} fails qemu-img check: {error}")
        else:
            tried = " or ".join(KEY_FILE if s == FROM_KEY_FILE else "--passphrase-file" for s, _ in candidates)
            raise StoreError(f"existing image {path} does not open with {tried}: give the --passphrase-file it "
                             "was made with")
    else:
        error = check_image(path, image.format, None)
        if error:
            raise StoreError(f"existing image {path} fails qemu-img check: {error}")
    out.kept.append(path)
    out.notes.append(f"kept existing image {path} (checked: {image.format}"
                     f"{', LUKS, opens with ' + _key_name(out.sources[path]) if image.encrypt else ''})")


def _key_name(source: Optional[str]) -> str:
    return KEY_FILE if source == FROM_KEY_FILE else "--passphrase-file"


def _tighten(dir_fd: int, name: str, path: Path) -> None:
    """Images of older stores were 0644: make them private (ours only; libvirt may own a running one)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        raise failed(exc, "open", path) from None
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)
    except OSError as exc:
        raise failed(exc, "set the mode of", path) from None
    finally:
        os.close(fd)


def _external_image(image: Any, keys: _Keys, out: Written, progress: Progress,
                    recorded: Optional[str] = None) -> bool:
    """An image outside the VM directory (disk.directory): its directory passes the store's trust check;
    it is created under a temporary name and renamed, or reused after the checks. True: created now."""
    from ..safefiles import check_trusted_dir
    final = Path(image.path)
    check_trusted_dir(final.parent, "disk.directory")
    if not os.path.isdir(final.parent):
        _make_dirs(final.parent)
    try:
        dir_fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise failed(exc, "open directory", final.parent) from None
    try:
        _clean_parts(dir_fd, final.parent, {final.name})
        st = lstat_at(dir_fd, final.name, final)
        if st is None:
            _create(image, keys, out, progress)
            return True
        _reuse(image, st, keys, recorded, out, progress)
        return False
    finally:
        os.close(dir_fd)


def _share(gen: Any, directory: Path, dir_fd: int, shown_dir: Path, out: Written) -> None:
    """The virtiofs share: in the VM directory never through a symlink (it would expose its target)."""
    if not gen.share_dir:
        return
    share = Path(gen.share_dir)
    if share == directory / SHARE_DIR:
        st = lstat_at(dir_fd, SHARE_DIR, directory / SHARE_DIR)
        if st is None:
            os.close(make_dir(dir_fd, SHARE_DIR, PRIVATE_DIR, shown_dir / SHARE_DIR))
        elif not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"share directory {directory / SHARE_DIR} is "
                             f"{'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a directory'}: refusing "
                             "to share what it points to with the guest (remove it)")
    else:
        # filesystem.source_dir names the user's own directory (from a trusted settings file or flag).
        try:
            share.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise failed(exc, "create share directory", share) from None


def _seed(seed: Any, directory: Path, written_dir: Path, progress: Progress) -> None:
    """The --cloud-init seed ISO: its own file in the VM directory (never inside a generation, so the
    path in domain.xml stays put), made under a temporary name the next run cleans up."""
    from .cloudinit import write_seed
    final = Path(seed.path)
    if final.parent != directory:
        raise StoreError(f"cloud-init seed {final} is outside the VM directory {directory}")
    if progress:
        progress(f"Writing cloud-init seed {final}")
    write_seed(seed, at=written_dir / final.name)


def _note_unused_images(old: dict[str, Any], gen: Any, out: Written) -> None:
    planned = {d.path for d in gen.disks}
    for disk in old.get("disks") or []:
        if isinstance(disk, dict) and disk.get("created") and str(disk.get("path")) not in planned \
                and os.path.lexists(str(disk.get("path"))):
            out.notes.append(f"image {disk.get('path')} is no longer used by this VM; kept (remove it yourself, "
                             f"its key stays in {KEY_FILE} until the VM is deleted)")


def _migrate_plain_files(vm_fd: int, directory: Path) -> None:
    """A VM written before generations (plain domain.xml and vm.yaml) becomes gen-1 with the same content.

    Each step keeps the old content visible: gen-1 is written, ``current`` made, then each plain
    file is replaced by a symlink to identical bytes.
    """
    st = lstat_at(vm_fd, VM_FILE, directory / VM_FILE)
    if st is None or not stat.S_ISREG(st.st_mode):
        return
    from ..safefiles import MAX_YAML_BYTES
    record_bytes = read_at(vm_fd, VM_FILE, MAX_YAML_BYTES, directory / VM_FILE)
    xml = read_at(vm_fd, DOMAIN_FILE, MAX_XML, directory / DOMAIN_FILE) \
        if lstat_at(vm_fd, DOMAIN_FILE, directory / DOMAIN_FILE) is not None else None
    if current_generation(vm_fd, directory) is None:
        name = "gen-1"
        if lstat_at(vm_fd, name, directory / name) is not None:
            remove_tree_at(vm_fd, name, directory / name)
        gen_fd = make_dir(vm_fd, name, PRIVATE_DIR, directory / name)
        try:
            if xml is not None:
                write_at(gen_fd, DOMAIN_FILE, xml, directory / name / DOMAIN_FILE)
            write_at(gen_fd, VM_FILE, record_bytes, directory / name / VM_FILE)
            fsync_fd(gen_fd, directory / name)
        finally:
            os.close(gen_fd)
        symlink_at(vm_fd, name, CURRENT, directory / CURRENT)
    if xml is not None:
        symlink_at(vm_fd, f"{CURRENT}/{DOMAIN_FILE}", DOMAIN_FILE, directory / DOMAIN_FILE)
    symlink_at(vm_fd, f"{CURRENT}/{VM_FILE}", VM_FILE, directory / VM_FILE)
    fsync_fd(vm_fd, directory)


def _clean_vm_leftovers(vm_fd: int, directory: Path, current: Optional[int]) -> None:
    """What a killed writer left in the VM directory: unused generations, temporary files and images."""
    keep = f"gen-{current}" if current is not None else None
    for entry in entries(vm_fd, directory):
        if (GEN_RE.fullmatch(entry) and entry != keep) or re.fullmatch(r"\..+\.[0-9a-f]{8}\.tmp", entry) \
                or re.fullmatch(r"\..+\.part-[0-9a-f]{8}", entry):
            remove_tree_at(vm_fd, entry, directory / entry)


def _clean_parts(dir_fd: int, directory: Path, names: set[str]) -> None:
    for entry in entries(dir_fd, directory):
        match = re.fullmatch(r"\.(.+)\.part-[0-9a-f]{8}", entry)
        if match and match.group(1) in names:
            unlink_at(dir_fd, entry, directory / entry)


# -- deleting ------------------------------------------------------------------------------
@record
class Removed(Record):
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def remove_vm(directory: Path, record: dict[str, Any], keep_images: bool) -> Removed:
    """Remove the VM's store entry (the caller holds its lock and has undefined it in libvirt).

    Without ``keep_images`` the directory is first renamed aside (it disappears at once), then
    removed, with the images virtscenario created outside it. With ``keep_images`` only the
    record goes (vm.yaml first): images, their key and the share directory stay.
    """
    root_fd = open_root(directory.parent, create=False)
    if root_fd is None:
        raise StoreError(f"store {directory.parent} does not exist")
    out = Removed()
    try:
        clean_root_leftovers(root_fd, directory)
        vm_fd = open_dir(directory.name, root_fd, directory)
        try:
            if keep_images:
                for name in (VM_FILE, DOMAIN_FILE, CURRENT):
                    unlink_at(vm_fd, name, directory / name)
                    fsync_fd(vm_fd, directory)
                _clean_vm_leftovers(vm_fd, directory, None)
                out.removed.append(str(directory / VM_FILE))
                out.kept += [str(directory / e) for e in entries(vm_fd, directory)]
                return out
        finally:
            os.close(vm_fd)
        aside = f"{DELETING_PREFIX}{directory.name}.{token()}"
        rename_noreplace(directory.name, aside, root_fd, root_fd, directory)
        fsync_fd(root_fd, directory.parent)
        remove_tree_at(root_fd, aside, directory.parent / aside)
        fsync_fd(root_fd, directory.parent)
        out.removed.append(str(directory))
        for disk in record.get("disks") or []:
            path = Path(str(disk.get("path"))) if isinstance(disk, dict) else None
            # A pool volume's path is on the VM's host, not here: delete removes it through libvirt.
            if path is None or not disk.get("created") or path.parent == directory or disk.get("pool"):
                continue
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
                    out.removed.append(str(path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise failed(exc, "remove image", path) from None
        return out
    finally:
        os.close(root_fd)


def vm_files(directory: Path) -> list[dict[str, Any]]:
    """Every entry of the VM directory (not following symlinks): name, kind, size, mode."""
    opened = _open_vm(directory)
    if opened is None:
        return []
    root_fd, vm_fd = opened
    out = []
    try:
        for entry in entries(vm_fd, directory):
            st = lstat_at(vm_fd, entry, directory / entry)
            if st is None:
                continue
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else \
                "file" if stat.S_ISREG(st.st_mode) else "other"
            item: dict[str, Any] = {"name": entry, "kind": kind, "size": st.st_size,
                                    "mode": f"{stat.S_IMODE(st.st_mode):04o}"}
            if kind == "symlink":
                item["target"] = _readlink(vm_fd, entry, directory)
            out.append(item)
    finally:
        os.close(vm_fd)
        os.close(root_fd)
    return out

