"""Apply and revert, journaled.

Order of ``apply``: read the previous state of everything that will change,
write the journal (atomically) **before** the first change, change things one
by one verifying each read-back, and on any failure put back what this run
changed (and the journal as it was). ``revert`` restores every journaled entry,
last change first, verifies each read-back byte for byte against the journal,
removes the files we created (restoring the content of files we replaced) and
deletes the journal; a second revert finds nothing to do.

Journal (``/var/lib/virtscenario/host-journal.json``, mapped by --host-root)::

    {"version": 1, "applies": [{"scenario", "vms", "persist", "backend", "time"}],
     "created_dirs": [...],
     "entries": [
       {"kind": "tunable", "path": "/proc/sys/vm/swappiness", "before": "60\\n", "restore": "60\\n",
        "applied": "10"},
       {"kind": "tunable", "path": ".../transparent_hugepage/enabled", "before": "always [madvise] never\\n",
        "restore": "madvise\\n", "applied": "always"},
       {"kind": "file", "path": "/etc/sysctl.d/90-virtscenario.conf", "existed": false, "before_b64": null,
        "mode": null, "created_dirs": ["/etc/sysctl.d"]},
       {"kind": "mount", "path": "/dev/hugepages1G", "created_dir": true}]}

Byte-exactness: ``before`` holds the exact bytes read. A selection file
(``always [madvise] never``) takes one word, so ``restore`` is the selected word;
after writing it the file is read again and must equal ``before`` byte for byte
(the kernel regenerates the brackets; under --host-root the writer emulates it).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from . import facts, sysfs

JOURNAL = "/var/lib/virtscenario/host-journal.json"
JOURNAL_VERSION = 1


class EngineError(Exception):
    """Apply or revert failed; the message is one line for the user."""


#: Step kinds carried out by other modules of this plugin: kind -> module with ``snapshot(host, step)``,
#: ``do(host, step) -> str`` and ``restore(host, entry) -> str`` (imported when a step or entry needs it).
KIND_MODULES = {"pci-driver": "virtscenario_host_tuning.vfio"}


def _kind_module(kind: str) -> Any:
    if kind not in KIND_MODULES:
        raise EngineError(f"unknown step kind {kind!r}")
    import importlib
    return importlib.import_module(KIND_MODULES[kind])


@dataclass(frozen=True)
class Step:
    """One thing ``apply`` changes: a tunable, a whole file, or a hugetlbfs mount."""

    kind: str  # tunable | file | mount | a KIND_MODULES kind
    path: str
    data: bytes
    label: str
    mode: int = 0o644


# -- journal ----------------------------------------------------------------------------------------
def journal_path(host: Any) -> Path:
    return host.path(JOURNAL)


def load_journal(host: Any) -> Optional[dict[str, Any]]:
    path = journal_path(host)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read the journal {JOURNAL}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict) or data.get("version") != JOURNAL_VERSION \
            or not isinstance(data.get("entries"), list):
        raise EngineError(f"{JOURNAL} is not a virtscenario host journal (version {JOURNAL_VERSION})")
    return data


def _save_journal(host: Any, journal: dict[str, Any]) -> None:
    from virtscenario.api import atomic_write
    atomic_write(journal_path(host), (json.dumps(journal, indent=2, sort_keys=False) + "\n").encode(), mode=0o600)


def _missing_dirs(host: Any, host_path: str) -> list[str]:
    """Parent directories of ``host_path`` that do not exist yet, deepest first."""
    out = []
    parent = os.path.dirname(host_path)
    while parent not in ("/", "") and not host.path(parent).exists():
        out.append(parent)
        parent = os.path.dirname(parent)
    return out


def _remove_dirs(host: Any, dirs: list[str]) -> None:
    for directory in dirs:  # deepest first
        try:
            host.path(directory).rmdir()
        except OSError:
            pass  # not empty any more (someone else's files): leave it


# -- snapshots --------------------------------------------------------------------------------------
def snapshot(host: Any, step: Step) -> dict[str, Any]:
    """The journal entry of ``step``: the state before it, exactly."""
    if step.kind == "tunable":
        raw = sysfs.read_bytes(host, step.path)
        if raw is None:
            raise EngineError(f"{step.label}: cannot read {step.path}")
        text = raw.decode()
        restore = (sysfs.selected(text) or "") + "\n" if sysfs.is_selection(text) else text
        return {"kind": "tunable", "path": step.path, "before": text, "restore": restore}
    if step.kind == "file":
        path = sysfs.mapped(host, step.path)
        if path is None:
            raise EngineError(f"{step.label}: {step.path} leads outside the host root")
        if path.exists():
            return {"kind": "file", "path": step.path, "existed": True,
                    "before_b64": base64.b64encode(path.read_bytes()).decode(),
                    "mode": path.stat().st_mode & 0o7777, "created_dirs": []}
        return {"kind": "file", "path": step.path, "existed": False, "before_b64": None, "mode": None,
                "created_dirs": _missing_dirs(host, step.path)}
    if step.kind == "mount":
        return {"kind": "mount", "path": step.path, "created_dir": not host.path(step.path).exists()}
    return _kind_module(step.kind).snapshot(host, step)  # type: ignore[no-any-return]


# -- doing ------------------------------------------------------------------------------------------
def do_step(host: Any, step: Step) -> str:
    """Carry out one step and verify it; return the value now in effect."""
    if step.kind == "tunable":
        sysfs.write_value(host, step.path, step.data)
        now = sysfs.current(host, step.path)
        wanted = step.data.decode().strip()
        if now != wanted:
            raise sysfs.WriteError(f"{step.path}: wrote {wanted} but the kernel reports {now}")
        return now or ""
    if step.kind == "file":
        from virtscenario.api import atomic_write
        atomic_write(host.path(step.path), step.data, mode=step.mode)
        return ""
    if step.kind == "mount":
        _mount(host, step)
        return "mounted"
    return _kind_module(step.kind).do(host, step)  # type: ignore[no-any-return]


def _mount(host: Any, step: Step) -> None:
    if host.is_fake:  # the planner never asks for this; a mount would escape the host root
        raise EngineError(f"{step.path}: cannot mount under --host-root")
    os.makedirs(step.path, exist_ok=True)
    cmd = ["mount", "-t", "hugetlbfs"]
    if step.data:
        cmd += ["-o", step.data.decode()]
    cmd += ["hugetlbfs", step.path]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise sysfs.WriteError(f"mount {step.path}: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    if step.path not in facts.hugetlbfs_mounts(host).values():
        raise sysfs.WriteError(f"mount {step.path}: not in /proc/mounts after mounting")


@contextlib.contextmanager
def host_lock(host: Any) -> Iterator[None]:
    """One apply or revert at a time: an advisory flock on /var/lib (or the host root).

    A directory that always exists is locked, rather than a lock file, so the lock
    neither writes to the host nor races with revert removing the journal directory.
    """
    target = host.path("/var/lib")
    if not target.is_dir():
        target = host.path("/")
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineError(f"another 'virtscenario host apply' or 'revert' is running (lock on {target}); "
                              "nothing changed") from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


def apply_steps(host: Any, steps: list[Step], meta: dict[str, Any]) -> dict[str, Any]:
    """Journal, then change; roll back this run's changes when one fails. Returns the journal."""
    with host_lock(host):
        return _apply_steps(host, steps, meta)


def _apply_steps(host: Any, steps: list[Step], meta: dict[str, Any]) -> dict[str, Any]:
    previous = load_journal(host)
    journal_file = journal_path(host)
    previous_bytes = journal_file.read_bytes() if journal_file.exists() else None
    journal: dict[str, Any] = previous or {"version": JOURNAL_VERSION, "applies": [], "entries": [],
                                           "created_dirs": _missing_dirs(host, JOURNAL)}
    known = {(e["kind"], e["path"]) for e in journal["entries"]}
    befores: dict[tuple[str, str], dict[str, Any]] = {}
    for step in steps:
        key = (step.kind, step.path)
        if key not in befores:
            befores[key] = snapshot(host, step)
        if key not in known:
            journal["entries"].append(befores[key])
            known.add(key)
    journal["applies"].append({**meta, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    journal["state"] = "applying"
    _save_journal(host, journal)  # before the first change

    done: list[dict[str, Any]] = []  # this run's "before" entries, in first-touch order
    try:
        for step in steps:
            key = (step.kind, step.path)
            if befores[key] not in done:
                done.append(befores[key])
            value = do_step(host, step)
            if step.kind == "tunable":
                for entry in journal["entries"]:
                    if entry["kind"] == "tunable" and entry["path"] == step.path:
                        entry["applied"] = value
    except Exception as exc:  # noqa: BLE001 - any failure rolls back
        failures = restore_entries(host, done)[1]
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if failures:
            journal["state"] = "failed"
            _save_journal(host, journal)
            raise EngineError(f"apply failed: {message}; rolling back also failed ({len(failures)} value(s), first: "
                              f"{failures[0][1]}): the journal keeps them, run 'virtscenario host revert'") from None
        if previous_bytes is None:
            journal_file.unlink()
            _remove_dirs(host, journal.get("created_dirs", []))
        else:
            from virtscenario.api import atomic_write
            atomic_write(journal_file, previous_bytes, mode=0o600)
        raise EngineError(f"apply failed: {message}; everything this run changed was rolled back") from None
    journal["state"] = "applied"
    _save_journal(host, journal)
    return journal


# -- reverting --------------------------------------------------------------------------------------
def restore_entries(host: Any, entries: list[dict[str, Any]]) -> tuple[list[str], list[tuple[dict[str, Any], str]]]:
    """Restore ``entries`` last first. Returns (notes, [(entry, error)])."""
    notes: list[str] = []
    failures: list[tuple[dict[str, Any], str]] = []
    for entry in reversed(entries):
        try:
            note = _restore(host, entry)
            if note:
                notes.append(note)
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failures.append((entry, text if text.startswith(entry["path"]) else f"{entry['path']}: {text}"))
    return notes, failures


def _restore(host: Any, entry: dict[str, Any]) -> str:
    kind, path = entry["kind"], entry["path"]
    if kind == "tunable":
        if sysfs.read_bytes(host, path) == entry["before"].encode():
            return ""  # already as it was (e.g. the write that failed never took effect)
        note = ""
        now = sysfs.current(host, path)
        if entry.get("applied") is not None and now != entry["applied"]:
            note = f"{path} was changed since apply (now {now}); restored anyway"
        if path.endswith("/ksm/merge_across_nodes"):
            _ksm_unmerge(host)
        sysfs.write_value(host, path, entry["restore"].encode())
        after = sysfs.read_bytes(host, path)
        if after != entry["before"].encode():
            shown = (after or b"").decode(errors="replace").strip()
            raise sysfs.WriteError(f"restored, but it reads {shown!r} instead of {entry['before'].strip()!r}")
        return note
    if kind == "file":
        file_path = host.path(path)
        if entry["existed"]:
            from virtscenario.api import atomic_write
            data = base64.b64decode(entry["before_b64"])
            atomic_write(file_path, data, mode=int(entry["mode"]))
            if file_path.read_bytes() != data:
                raise sysfs.WriteError("content differs after restoring")
        else:
            if file_path.exists():
                file_path.unlink()
            _remove_dirs(host, entry.get("created_dirs", []))
        return ""
    if kind == "mount":
        if host.is_fake:
            return ""
        if path in facts.hugetlbfs_mounts(host).values():
            result = subprocess.run(["umount", path], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise sysfs.WriteError(f"umount: {(result.stderr or result.stdout).strip()} (a VM still uses it?)")
        if entry.get("created_dir"):
            try:
                os.rmdir(path)
            except OSError:
                pass
        return ""
    if kind not in KIND_MODULES:
        raise EngineError(f"unknown journal entry kind {kind!r}")
    return _kind_module(kind).restore(host, entry)  # type: ignore[no-any-return]


def _ksm_unmerge(host: Any) -> None:
    run = f"{facts.KSM_DIR}/run"
    if sysfs.exists(host, run) and sysfs.current(host, run) != "2":
        sysfs.write_value(host, run, b"2\n")  # merge_across_nodes only changes with no page shared


def revert(host: Any) -> tuple[int, list[str]]:
    """Restore the journal. Returns (entries restored, notes); raises when some could not be restored."""
    with host_lock(host):
        return _revert(host)


def _revert(host: Any) -> tuple[int, list[str]]:
    journal = load_journal(host)
    if journal is None or not journal["entries"]:
        return 0, []
    entries = journal["entries"]
    notes, failures = restore_entries(host, entries)
    if failures:
        failed = [e for e, _msg in failures]
        journal["entries"] = [e for e in entries if e in failed]
        journal["state"] = "revert-incomplete"
        _save_journal(host, journal)
        raise EngineError(f"{len(failures)} value(s) could not be restored, first: {failures[0][1]}; they stay in "
                          f"the journal: fix the cause and run 'virtscenario host revert' again")
    journal_path(host).unlink()
    _remove_dirs(host, journal.get("created_dirs", []))
    return len(entries), notes
