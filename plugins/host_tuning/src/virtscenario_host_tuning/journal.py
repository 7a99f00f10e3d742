"""The host journal: its format, validation, checksum, and crash-safe storage.

``/var/lib/virtscenario/host-journal.json`` (under the host root), mode 0600::

    {"format": "virtscenario-host-journal", "version": 2,
     "root": {"dev": 2049, "ino": 131074} | null,
     "state": "applying" | "applied" | "failed" | "revert-incomplete",
     "applies": [{"scenario": "desktop", "vms": [], "persist": true, "backend": "files",
                  "time": "2024-05-01T10:00:00Z"}],
     "created_dirs": ["/var/lib/virtscenario"],
     "entries": [
       {"kind": "tunable", "path": "/proc/sys/vm/swappiness", "before": "60\\n", "restore": "60\\n",
        "applied": "10"},
       {"kind": "file", "path": "/etc/fstab", "existed": true, "before_b64": "IyAv...", "mode": 420,
        "uid": 0, "gid": 0, "created_dirs": []},
       {"kind": "file", "path": "/etc/sysctl.d/90-virtscenario.conf", "existed": false,
        "before_b64": null, "mode": null, "uid": null, "gid": null, "created_dirs": ["/etc/sysctl.d"]},
       {"kind": "mount", "path": "/dev/hugepages1G", "created_dir": true}],
     "checksum": "sha256:<hex>"}

``checksum`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, ASCII)
of every other field: a journal damaged on disk or edited by hand is refused as a
whole before anything is restored. It guards against damage, not against root
(who can recompute it). ``root`` binds the journal to the tree it was written
for (device and inode of the --host-root directory; null on the host itself),
so a journal seen from another tree is refused. Every field is checked (types,
ranges, which paths an entry may name), and the first wrong one is named.

Storage: the journal is replaced by write-temp-fsync-rename. When its directory
does not exist, the missing directories are built under a temporary name with
the journal inside and renamed into place in one step; ``remove`` does the
reverse, so a crash never leaves a journal directory without a journal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from . import rootfs, sysfs

FORMAT = "virtscenario-host-journal"
VERSION = 2
STATES = ("applying", "applied", "failed", "revert-incomplete")
MAX_BYTES = 16 << 20
MAX_TUNABLE = 1 << 16
NAME = "host-journal.json"

#: The files an entry may name: the ones the plugin writes, nothing else under /etc.
FILE_PATHS = re.compile(r"/etc/(fstab|sysctl\.d/90-virtscenario\.conf|tmpfiles\.d/virtscenario\.conf"
                        r"|udev/rules\.d/60-virtscenario-io-scheduler\.rules|modprobe\.d/virtscenario-sev\.conf"
                        r"|tuned/virtscenario-[A-Za-z0-9_.+-]+/tuned\.conf"
                        r"|driverctl\.d/pci-[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])")
TUNABLE_PREFIXES = ("/proc/sys/", "/sys/")


class JournalError(Exception):
    """The journal cannot be used; the message is one line and names what is wrong."""


@dataclass(frozen=True)
class TunableEntry:
    path: str
    before: str           # exact bytes read before the first change (UTF-8)
    restore: str          # what to write back: ``before``, or the selected word of a selection file
    applied: Optional[str] = None
    kind: str = field(default="tunable", init=False)


@dataclass(frozen=True)
class FileEntry:
    path: str
    existed: bool
    before: Optional[bytes] = None
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None
    created_dirs: tuple[str, ...] = ()  # deepest first
    kind: str = field(default="file", init=False)


@dataclass(frozen=True)
class MountEntry:
    path: str
    created_dir: bool
    kind: str = field(default="mount", init=False)


@dataclass(frozen=True)
class PciDriverEntry:
    """A PCI device handed to vfio-pci: what it was bound to and its driver_override before."""

    path: str             # /sys/bus/pci/devices/DOMAIN:BUS:SLOT.FUNCTION
    address: str
    driver: str           # the driver it was bound to ("" for none)
    override: str         # driver_override's exact text before ("(null)\n" when unset)
    module_loaded: bool   # whether vfio-pci was loaded before
    kind: str = field(default="pci-driver", init=False)


Entry = Union[TunableEntry, FileEntry, MountEntry, PciDriverEntry]
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
DRIVER_NAME = re.compile(r"[A-Za-z0-9_.-]{0,64}")


@dataclass(frozen=True)
class ApplyRecord:
    scenario: str
    vms: tuple[str, ...]
    persist: bool
    backend: str
    time: str


@dataclass(frozen=True)
class Journal:
    root: Optional[tuple[int, int]]
    state: str
    applies: tuple[ApplyRecord, ...]
    created_dirs: tuple[str, ...]
    entries: tuple[Entry, ...]


# -- location and identity --------------------------------------------------------------------------
def path() -> str:
    from . import engine
    return engine.JOURNAL  # looked up at each call: tests point it elsewhere


def root_identity(host: Any) -> Optional[tuple[int, int]]:
    """(st_dev, st_ino) of a --host-root tree; None for the host itself (or a root that is ``/``)."""
    if not host.is_fake:
        return None
    st = os.stat(rootfs.root_dir(host))
    return None if (st.st_dev, st.st_ino) == _slash() else (st.st_dev, st.st_ino)


def _slash() -> tuple[int, int]:
    st = os.stat("/")
    return st.st_dev, st.st_ino


# -- JSON -------------------------------------------------------------------------------------------
def _entry_json(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, TunableEntry):
        return {"kind": "tunable", "path": entry.path, "before": entry.before, "restore": entry.restore,
                "applied": entry.applied}
    if isinstance(entry, FileEntry):
        return {"kind": "file", "path": entry.path, "existed": entry.existed,
                "before_b64": None if entry.before is None else base64.b64encode(entry.before).decode(),
                "mode": entry.mode, "uid": entry.uid, "gid": entry.gid, "created_dirs": list(entry.created_dirs)}
    if isinstance(entry, PciDriverEntry):
        return {"kind": "pci-driver", "path": entry.path, "address": entry.address, "driver": entry.driver,
                "override": entry.override, "module_loaded": entry.module_loaded}
    return {"kind": "mount", "path": entry.path, "created_dir": entry.created_dir}


def to_json(journal: Journal) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "root": None if journal.root is None else {"dev": journal.root[0], "ino": journal.root[1]},
        "state": journal.state,
        "applies": [{"scenario": a.scenario, "vms": list(a.vms), "persist": a.persist, "backend": a.backend,
                     "time": a.time} for a in journal.applies],
        "created_dirs": list(journal.created_dirs),
        "entries": [_entry_json(e) for e in journal.entries],
    }
    doc["checksum"] = checksum(doc)
    return doc


def checksum(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def dumps(journal: Journal) -> bytes:
    return (json.dumps(to_json(journal), indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode()


# -- validation -------------------------------------------------------------------------------------
class _Invalid(Exception):
    pass


def _fields(obj: Any, where: str, required: dict[str, Any]) -> dict[str, Any]:
    if type(obj) is not dict:
        raise _Invalid(f"{where}: not an object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise _Invalid(f"{where}: missing {', '.join(missing)}")
    extra = sorted(set(obj) - set(required))
    if extra:
        raise _Invalid(f"{where}: unknown field {extra[0]}")
    for key, kinds in required.items():
        if not any(type(obj[key]) is k for k in (kinds if isinstance(kinds, tuple) else (kinds,))):
            raise _Invalid(f"{where}: {key} has the wrong type ({type(obj[key]).__name__})")
    return obj


def _clean_path(value: str, where: str) -> str:
    try:
        rootfs.split(value)
    except rootfs.RootError:
        raise _Invalid(f"{where}: path is not a clean absolute path") from None
    if len(value) > 4096:
        raise _Invalid(f"{where}: path too long")
    return value


def _chain(dirs: list[Any], start: str, where: str) -> tuple[str, ...]:
    """``dirs`` must be ``start`` and its parents, deepest first, without ``/``."""
    expected = start
    for i, d in enumerate(dirs):
        if type(d) is not str or d != expected or d == "/":
            raise _Invalid(f"{where}: created_dirs[{i}] must be {expected!r}")
        expected = os.path.dirname(expected)
    return tuple(dirs)


def _id_int(value: Any, where: str, name: str, bits: int = 32) -> Optional[int]:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value < 2**bits:
        raise _Invalid(f"{where}: {name} out of range")
    return int(value)


def _tunable(raw: dict[str, Any], where: str) -> TunableEntry:
    _fields(raw, where, {"kind": str, "path": str, "before": str, "restore": str, "applied": (str, type(None))})
    path = _clean_path(raw["path"], where)
    if not path.startswith(TUNABLE_PREFIXES):
        raise _Invalid(f"{where}: a tunable must be under /proc/sys or /sys, not {path}")
    before, restore = raw["before"], raw["restore"]
    if len(before) > MAX_TUNABLE or "\0" in before:
        raise _Invalid(f"{where}: before is not a kernel value")
    wanted = (sysfs.selected(before) or "") + "\n" if sysfs.is_selection(before) else before
    if restore != wanted:
        raise _Invalid(f"{where}: restore {restore!r} does not match before {before!r}")
    return TunableEntry(path, before, restore, raw["applied"])


def _file(raw: dict[str, Any], where: str) -> FileEntry:
    nullable_int = (int, type(None))
    _fields(raw, where, {"kind": str, "path": str, "existed": bool, "before_b64": (str, type(None)),
                         "mode": nullable_int, "uid": nullable_int, "gid": nullable_int, "created_dirs": list})
    path = _clean_path(raw["path"], where)
    if not FILE_PATHS.fullmatch(path):
        raise _Invalid(f"{where}: {path} is not a file virtscenario writes")
    if raw["existed"]:
        text = raw["before_b64"]
        if text is None or raw["mode"] is None or raw["created_dirs"]:
            raise _Invalid(f"{where}: a file that existed needs before_b64 and mode, and no created_dirs")
        try:
            before = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _Invalid(f"{where}: before_b64 is not valid base64") from None
        if base64.b64encode(before).decode() != text:
            raise _Invalid(f"{where}: before_b64 is not canonical base64")
        mode = raw["mode"]
        if not 0 <= mode <= 0o777:
            raise _Invalid(f"{where}: mode {mode} is not a permission between 0 and 0o777")
        return FileEntry(path, True, before, mode, _id_int(raw["uid"], where, "uid"),
                         _id_int(raw["gid"], where, "gid"))
    if any(raw[k] is not None for k in ("before_b64", "mode", "uid", "gid")):
        raise _Invalid(f"{where}: a file that did not exist has no before_b64, mode, uid or gid")
    dirs = _chain(raw["created_dirs"], os.path.dirname(path), where)
    if dirs and not (dirs[-1] + "/").startswith("/etc/"):
        raise _Invalid(f"{where}: created_dirs must stay under /etc")
    return FileEntry(path, False, created_dirs=dirs)


def _mount(raw: dict[str, Any], where: str) -> MountEntry:
    _fields(raw, where, {"kind": str, "path": str, "created_dir": bool})
    path = _clean_path(raw["path"], where)
    if not os.path.basename(path).startswith("hugepages"):
        raise _Invalid(f"{where}: {path} is not a hugetlbfs mount point of virtscenario")
    return MountEntry(path, raw["created_dir"])


def _pci_driver(raw: dict[str, Any], where: str) -> PciDriverEntry:
    _fields(raw, where, {"kind": str, "path": str, "address": str, "driver": str, "override": str,
                         "module_loaded": bool})
    path = _clean_path(raw["path"], where)
    address = raw["address"]
    if not PCI_ADDRESS.fullmatch(address) or path != f"/sys/bus/pci/devices/{address}":
        raise _Invalid(f"{where}: {address[:40]!r} is not the PCI address of {path}")
    if not DRIVER_NAME.fullmatch(raw["driver"]):
        raise _Invalid(f"{where}: driver {raw['driver'][:40]!r} is not a driver name")
    override = raw["override"]
    if len(override) > 256 or not DRIVER_NAME.fullmatch(override.strip().replace("(null)", "")):
        raise _Invalid(f"{where}: driver_override {override[:40]!r} is not a driver name")
    return PciDriverEntry(path, address, raw["driver"], override, raw["module_loaded"])


_KINDS: dict[str, Callable[[dict[str, Any], str], Entry]] = {"tunable": _tunable, "file": _file, "mount": _mount,
                                                             "pci-driver": _pci_driver}


def validate(doc: Any, host: Any) -> Journal:
    """The journal, or JournalError naming the first field or entry that is wrong."""
    try:
        return _validate(doc, host)
    except _Invalid as exc:
        raise JournalError(f"the host journal {path()} is invalid: {exc}; nothing was changed") from None


def _validate(doc: Any, host: Any) -> Journal:
    top = _fields(doc, "journal", {"format": str, "version": int, "root": (dict, type(None)), "state": str,
                                   "applies": list, "created_dirs": list, "entries": list, "checksum": str})
    if top["format"] != FORMAT:
        raise _Invalid(f"format is {top['format']!r}, not {FORMAT!r}")
    if top["version"] != VERSION:
        raise _Invalid(f"version {top['version']} (this virtscenario reads version {VERSION})")
    root = None
    if top["root"] is not None:
        ident = _fields(top["root"], "root", {"dev": int, "ino": int})
        root = (_id_int(ident["dev"], "root", "dev", 64) or 0, _id_int(ident["ino"], "root", "ino", 64) or 0)
    if top["state"] not in STATES:
        raise _Invalid(f"state {top['state']!r} is not one of {', '.join(STATES)}")
    applies = []
    for i, raw in enumerate(top["applies"]):
        where = f"applies[{i}]"
        a = _fields(raw, where, {"scenario": str, "vms": list, "persist": bool, "backend": str, "time": str})
        if a["backend"] not in ("files", "tuned") or not all(type(v) is str for v in a["vms"]):
            raise _Invalid(f"{where}: backend or vms is wrong")
        applies.append(ApplyRecord(a["scenario"], tuple(a["vms"]), a["persist"], a["backend"], a["time"]))
    created = _chain(top["created_dirs"], os.path.dirname(path()), "journal")
    entries: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(top["entries"]):
        where = f"entries[{i}]"
        if type(raw) is dict and type(raw.get("path")) is str:
            where += f" ({raw['path'][:200]})"
        kind = raw.get("kind") if type(raw) is dict else None
        if kind not in _KINDS:
            raise _Invalid(f"{where}: kind must be tunable, file, mount or pci-driver")
        entry = _KINDS[kind](raw, where)
        if (entry.kind, entry.path) in seen:
            raise _Invalid(f"{where}: a second entry for the same path")
        seen.add((entry.kind, entry.path))
        entries.append(entry)
    if top["checksum"] != checksum(top):
        raise _Invalid("the checksum does not match the content (damaged, or edited by hand)")
    here = root_identity(host)
    if root != here:
        def show(ident: Optional[tuple[int, int]]) -> str:
            return "the host itself" if ident is None else f"device {ident[0]} inode {ident[1]}"
        raise _Invalid(f"it was written for another tree ({show(root)}), this one is {show(here)}")
    return Journal(root, top["state"], tuple(applies), created, tuple(entries))


# -- storage ----------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load(host: Any) -> Optional[Journal]:
    """The validated journal, None when there is none; JournalError when it cannot be trusted."""
    try:
        raw = rootfs.read_file(host, path(), limit=MAX_BYTES)
    except rootfs.RootError as exc:
        raise JournalError(f"cannot read the host journal: {exc}; nothing was changed") from None
    if raw is None:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        text = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise JournalError(f"the host journal {path()} is invalid: not JSON ({text}); nothing was changed") from None
    return validate(doc, host)


def exists(host: Any) -> bool:
    try:
        return rootfs.stat_file(host, path()) is not None
    except rootfs.RootError as exc:
        raise JournalError(f"cannot read the host journal: {exc}") from None


def save(host: Any, journal: Journal) -> Journal:
    """Write the journal atomically; the directories it needs appear together with it."""
    directory = os.path.dirname(path())
    missing = rootfs.missing_dirs(host, directory)
    if not missing:
        rootfs.write_atomic(host, path(), dumps(journal), 0o600)
        return journal
    journal = Journal(journal.root, journal.state, journal.applies, tuple(missing), journal.entries)
    data = dumps(journal)
    top = missing[-1]
    below = directory[len(top):].strip("/")

    def build(tmp: str) -> None:
        inner = tmp + ("/" + below if below else "")
        rootfs.make_dirs(host, inner)
        rootfs.write_atomic(host, f"{inner}/{NAME}", data, 0o600)

    rootfs.publish_dir(host, os.path.dirname(top), os.path.basename(top), build)
    return journal


def remove(host: Any, journal: Journal) -> None:
    """Delete the journal and the directories created for it (at once when nothing else is in them)."""
    created = list(journal.created_dirs)  # deepest first
    ours = _ours_from(host, created)
    if ours is not None:
        rootfs.retire_dir(host, ours)
        for directory in created[created.index(ours) + 1:]:
            rootfs.rmdir(host, directory)
        return
    rootfs.unlink(host, path())
    for directory in created:
        rootfs.rmdir(host, directory)


def _ours_from(host: Any, created: list[str]) -> Optional[str]:
    """The highest created directory holding nothing but the journal and the directories leading to it."""
    best = None
    for directory in created:  # deepest first
        allowed = {path()} | {d for d in created if d.startswith(directory + "/")}
        try:
            content = list(rootfs.walk_names(host, directory))
        except (FileNotFoundError, rootfs.RootError):
            return best
        if any(p not in allowed or not (stat.S_ISDIR(st.st_mode) or p == path()) for p, st in content):
            return best
        best = directory
    return best


def leftovers(host: Any, journal: Optional[Journal]) -> list[str]:
    """Temporaries a killed run may have left: beside the journal, its directories, journaled files."""
    targets = [path()]
    directory = os.path.dirname(path())
    while directory != "/":
        targets.append(directory)
        directory = os.path.dirname(directory)
    if journal is not None:
        targets += [e.path for e in journal.entries if isinstance(e, FileEntry)]
    removed = []
    for target in targets:
        try:
            if rootfs.remove_temp(host, target):
                removed.append(os.path.join(os.path.dirname(target), rootfs.temp_name(os.path.basename(target))))
        except (FileNotFoundError, rootfs.RootError):
            continue  # gone, or behind a link: restoring that entry reports it
    return removed
