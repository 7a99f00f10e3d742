"""Apply and revert, journaled, one run at a time per host tree.

``apply``: under the tree's lock, read the previous state of everything that will
change, save the journal (atomically, :mod:`journal`) **before** the first change,
change things one by one verifying each read-back, and on any failure put back what
this run changed (and the journal as it was). ``revert``: under the lock, restore
every journaled entry, last change first, verify each read-back byte for byte, then
remove the journal; a second revert finds nothing to do.

Crash safety: every file change is write-temp-fsync-rename (:mod:`rootfs`) after its
before-image is journaled, and kernel tunables are written in place after theirs is.
A run killed at any point leaves the journal and at most a temporary file of a fixed
name; ``revert`` removes those temporaries and restores from the before-images,
never from what it finds (a fake tunable truncated by the kill is written back whole).
Restoring is idempotent, so ``revert`` killed half-way is simply run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from . import facts, journal, rootfs, sysfs
from .journal import Entry, FileEntry, Journal, MountEntry, TunableEntry

JOURNAL = "/var/lib/virtscenario/host-journal.json"


class EngineError(Exception):
    """Apply or revert failed; the message is one line for the user, ``exit_code`` the CLI's status."""

    exit_code = 1


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
    mode: int = 0o644  # of a file that does not exist yet (an existing one keeps its own)


def _line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


# -- the lock ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def host_lock(host: Any) -> Iterator[None]:
    """One apply or revert at a time per tree: ``flock`` on the tree's root directory.

    The root is the one place every tree has from the start (a tree without /var/lib
    too), it cannot be redirected by a symbolic link inside the tree, locking it
    creates nothing, and the kernel drops the lock when the holder dies. Every name
    of one tree (a bind mount, ``--host-root /``) reaches the same inode, so the same lock.
    """
    where = rootfs.root_dir(host)
    try:
        fd = rootfs.open_root(host)
    except rootfs.RootError as exc:
        raise EngineError(f"{exc}; nothing changed") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineError(f"another 'virtscenario host apply' or 'revert' is running on this tree (lock on "
                              f"{where}); nothing changed") from None
        except OSError as exc:
            raise EngineError(f"cannot lock {where}: {exc.strerror}; nothing changed") from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


# -- snapshots --------------------------------------------------------------------------------------
def snapshot(host: Any, step: Step) -> Entry:
    """The journal entry of ``step``: the state before it, exactly."""
    if step.kind == "tunable":
        raw = sysfs.read_bytes(host, step.path)
        if raw is None:
            raise EngineError(f"{step.label}: cannot read {step.path}")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise EngineError(f"{step.label}: {step.path} does not hold text") from None
        restore = (sysfs.selected(text) or "") + "\n" if sysfs.is_selection(text) else text
        return TunableEntry(step.path, text, restore)
    if step.kind == "file":
        st = rootfs.stat_file(host, step.path)
        if st is None:
            return FileEntry(step.path, False,
                             created_dirs=tuple(rootfs.missing_dirs(host, os.path.dirname(step.path))))
        if st.st_mode & 0o7000:
            raise EngineError(f"{step.path} has set-id or sticky bits: refused")
        data = rootfs.read_file(host, step.path)
        if data is None:
            raise EngineError(f"{step.path} vanished while it was read")
        return FileEntry(step.path, True, data, st.st_mode & 0o777, st.st_uid, st.st_gid)
    if step.kind == "mount":
        return MountEntry(step.path, created_dir=not os.path.exists(step.path))
    return _kind_module(step.kind).snapshot(host, step)  # type: ignore[no-any-return]


# -- doing ------------------------------------------------------------------------------------------
def do_step(host: Any, step: Step, before: Entry) -> str:
    """Carry out one step and verify it; return the value now in effect."""
    if step.kind == "tunable":
        sysfs.write_value(host, step.path, step.data)
        now = sysfs.current(host, step.path)
        wanted = step.data.decode().strip()
        if now != wanted:
            raise sysfs.WriteError(f"{step.path}: wrote {wanted} but the kernel reports {now}")
        return now or ""
    if step.kind == "file":
        assert isinstance(before, FileEntry)
        rootfs.make_dirs(host, os.path.dirname(step.path))  # journaled as created_dirs
        if before.existed and before.mode is not None and before.uid is not None and before.gid is not None:
            rootfs.write_atomic(host, step.path, step.data, before.mode, (before.uid, before.gid))
        else:
            rootfs.write_atomic(host, step.path, step.data, step.mode)
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


# -- applying ---------------------------------------------------------------------------------------
def apply_steps(host: Any, steps: Sequence[Step], meta: dict[str, Any]) -> Journal:
    """Take the lock, then :func:`apply_locked`."""
    with host_lock(host):
        return apply_locked(host, steps, meta)


def require_finished(previous: Optional[Journal]) -> None:
    """Apply builds only on a finished apply: after a crash or a failed rollback, revert first."""
    if previous is not None and previous.state != "applied":
        raise EngineError(f"the host journal {JOURNAL} is in state {previous.state!r} (an apply or revert was "
                          "interrupted or failed): run 'virtscenario host revert' first; nothing was changed")


def apply_locked(host: Any, steps: Sequence[Step], meta: dict[str, Any]) -> Journal:
    """Journal, then change; roll back this run's changes when one fails. The caller holds the lock."""
    previous = journal.load(host)
    require_finished(previous)
    journal.leftovers(host, previous)
    previous_bytes = rootfs.read_file(host, JOURNAL) if previous is not None else None
    entries: list[Entry] = list(previous.entries) if previous is not None else []
    known = {(e.kind, e.path) for e in entries}
    befores: dict[tuple[str, str], Entry] = {}
    try:
        for step in steps:
            key = (step.kind, step.path)
            if key not in befores:
                befores[key] = snapshot(host, step)
            if key not in known:
                entries.append(befores[key])
                known.add(key)
    except (rootfs.RootError, OSError) as exc:
        raise EngineError(f"{_line(exc)}; nothing was changed") from None
    record = journal.ApplyRecord(str(meta.get("scenario", "")), tuple(meta.get("vms", ())),
                                 bool(meta.get("persist", False)), str(meta.get("backend", "files")),
                                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    current = Journal(journal.root_identity(host), "applying",
                      (previous.applies if previous else ()) + (record,),
                      previous.created_dirs if previous else (), tuple(entries))
    try:
        current = journal.save(host, current)  # before the first change
    except (rootfs.RootError, OSError) as exc:
        raise EngineError(f"cannot write the host journal {JOURNAL}: {_line(exc)}; nothing was changed") from None

    done: list[Entry] = []  # this run's "before" entries, in first-touch order
    applied: dict[str, str] = {}
    try:
        for step in steps:
            before = befores[(step.kind, step.path)]
            if before not in done:
                done.append(before)
            value = do_step(host, step, before)
            if step.kind == "tunable":
                applied[step.path] = value
    except KeyboardInterrupt:
        _roll_back(host, current, done, previous_bytes, "", interrupted=True)
    except Exception as exc:  # noqa: BLE001 - any failure rolls back
        _roll_back(host, current, done, previous_bytes, _line(exc))
    entries = [dataclasses.replace(e, applied=applied[e.path])
               if isinstance(e, TunableEntry) and e.path in applied else e for e in current.entries]
    return journal.save(host, dataclasses.replace(current, state="applied", entries=tuple(entries)))


def _roll_back(host: Any, current: Journal, done: list[Entry], previous_bytes: Optional[bytes],
               message: str, interrupted: bool = False) -> None:
    if interrupted:
        message = "interrupted (Ctrl-C)"
    failures = restore_entries(host, done)[1]
    if failures:
        with contextlib.suppress(Exception):
            journal.save(host, dataclasses.replace(current, state="failed"))
        raise EngineError(f"apply failed: {message}; rolling back also failed ({len(failures)} value(s), first: "
                          f"{failures[0][1]}): the journal keeps them, run 'virtscenario host revert'") from None
    try:
        if previous_bytes is None:
            journal.remove(host, current)
        else:
            rootfs.write_atomic(host, JOURNAL, previous_bytes, 0o600)
    except (rootfs.RootError, OSError) as exc:
        raise EngineError(f"apply failed: {message}; the values were rolled back but the journal could not be "
                          f"put back ({_line(exc)}): run 'virtscenario host revert'") from None
    if interrupted:  # the interrupted exit status (130), as for every command, once the host is clean
        error = EngineError("apply interrupted (Ctrl-C); everything this run changed was rolled back")
        error.exit_code = 130
        raise error from None
    raise EngineError(f"apply failed: {message}; everything this run changed was rolled back") from None


# -- reverting --------------------------------------------------------------------------------------
def restore_entries(host: Any, entries: Sequence[Entry]) -> tuple[list[str], list[tuple[Entry, str]]]:
    """Restore ``entries`` last first. Returns (notes, [(entry, error)])."""
    notes: list[str] = []
    failures: list[tuple[Entry, str]] = []
    for entry in reversed(entries):
        try:
            note = _restore(host, entry)
            if note:
                notes.append(note)
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
            text = _line(exc)
            failures.append((entry, text if text.startswith(entry.path) else f"{entry.path}: {text}"))
    return notes, failures


def _restore(host: Any, entry: Entry) -> str:
    if isinstance(entry, TunableEntry):
        return _restore_tunable(host, entry)
    if isinstance(entry, FileEntry):
        _restore_file(host, entry)
        return ""
    if isinstance(entry, MountEntry):
        return _restore_mount(host, entry)
    return _kind_module(entry.kind).restore(host, entry)  # type: ignore[no-any-return]


def _restore_tunable(host: Any, entry: TunableEntry) -> str:
    before = entry.before.encode()
    if sysfs.read_bytes(host, entry.path) == before:
        return ""  # already as it was (the failed write never took effect, or a revert was interrupted)
    note = ""
    now = sysfs.current(host, entry.path)
    if entry.applied is not None and now != entry.applied:
        note = f"{entry.path} was changed since apply (now {now}); restored anyway"
    restart = _ksm_unmerge(host) if entry.path.endswith("/ksm/merge_across_nodes") else None
    # A kernel file takes the value (the kernel regenerates the brackets of a selection);
    # a fake tree's plain file gets its exact bytes back, whatever a kill left in it.
    sysfs.write_value(host, entry.path, before if host.is_fake else entry.restore.encode())
    if restart is not None:
        sysfs.write_value(host, f"{facts.KSM_DIR}/run", restart)
    after = sysfs.read_bytes(host, entry.path)
    if after != before:
        shown = (after or b"").decode(errors="replace").strip()
        raise sysfs.WriteError(f"restored, but it reads {shown!r} instead of {entry.before.strip()!r}")
    return note


def _restore_file(host: Any, entry: FileEntry) -> None:
    if not entry.existed:
        rootfs.unlink(host, entry.path)
        for directory in entry.created_dirs:  # deepest first; one holding others' files stays
            rootfs.rmdir(host, directory)
        return
    assert entry.before is not None and entry.mode is not None
    st = rootfs.stat_file(host, entry.path)
    owner = (entry.uid if entry.uid is not None else os.getuid(), entry.gid if entry.gid is not None else os.getgid())
    if st is not None and st.st_mode & 0o7777 == entry.mode and (st.st_uid, st.st_gid) == owner \
            and rootfs.read_file(host, entry.path) == entry.before:
        return  # already restored
    rootfs.write_atomic(host, entry.path, entry.before, entry.mode, owner)
    if rootfs.read_file(host, entry.path) != entry.before:
        raise sysfs.WriteError("content differs after restoring")


def _restore_mount(host: Any, entry: MountEntry) -> str:
    if host.is_fake:
        return ""
    if entry.path in facts.hugetlbfs_mounts(host).values():
        result = subprocess.run(["umount", entry.path], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise sysfs.WriteError(f"umount: {(result.stderr or result.stdout).strip()} (a VM still uses it?)")
    if entry.created_dir:
        with contextlib.suppress(OSError):
            os.rmdir(entry.path)
    return ""


def _ksm_unmerge(host: Any) -> Optional[bytes]:
    """Make merge_across_nodes writable: it only changes with no page shared (ksm.rst). Returns the
    ksm/run bytes to put back once it is written (KSM was running or held merged pages), else None."""
    run = f"{facts.KSM_DIR}/run"
    if not sysfs.exists(host, run):
        return None
    now = sysfs.current(host, run)
    shared = sysfs.current(host, f"{facts.KSM_DIR}/pages_shared")
    if now == "2" or (now == "0" and shared == "0"):
        return None  # nothing shared, and ksmd stopped: nothing can become shared before the write
    previous = sysfs.read_bytes(host, run)
    sysfs.write_value(host, run, b"2\n")  # stop ksmd and unmerge every page
    return previous if host.is_fake else f"{now}\n".encode()


def revert(host: Any) -> tuple[int, list[str]]:
    """Take the lock, load the journal, restore it. Returns (entries restored, notes)."""
    with host_lock(host):
        loaded = journal.load(host)
        journal.leftovers(host, loaded)
        if loaded is None:
            return 0, []
        return revert_locked(host, loaded)


def revert_locked(host: Any, loaded: Journal) -> tuple[int, list[str]]:
    """Restore every entry; on failures keep those in the journal and raise. The caller holds the lock."""
    notes, failures = restore_entries(host, loaded.entries)
    if failures:
        failed = [e for e, _msg in failures]
        remaining = tuple(e for e in loaded.entries if e in failed)
        try:
            journal.save(host, dataclasses.replace(loaded, entries=remaining, state="revert-incomplete"))
        except (rootfs.RootError, OSError) as exc:
            raise EngineError(f"{len(failures)} value(s) could not be restored, first: {failures[0][1]}; the "
                              f"journal could not be updated either ({_line(exc)}): it still lists every entry, "
                              "run 'virtscenario host revert' again") from None
        raise EngineError(f"{len(failures)} value(s) could not be restored, first: {failures[0][1]}; they stay in "
                          f"the journal: fix the cause and run 'virtscenario host revert' again")
    try:
        journal.remove(host, loaded)
    except (rootfs.RootError, OSError) as exc:
        raise EngineError(f"everything was restored but the journal could not be removed: {_line(exc)}") from None
    return len(loaded.entries), notes
