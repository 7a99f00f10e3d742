"""One writer per VM: an exclusive ``flock`` on ``<store>/.locks/<name>.lock``.

The lock file lives outside the VM directory so ``delete`` can hold it while it removes
that directory. It is taken without waiting: a second writer gets one line naming the
holder's pid (written into the lock file by the holder) and changes nothing. The kernel
drops the lock when its holder exits, killed or not, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType
from typing import Optional

from .fsutil import PRIVATE_DIR, PRIVATE_FILE, StoreError, failed, fsync_fd, make_dir, open_dir

LOCK_DIR = ".locks"
#: What the holder is doing, as the refusal says it ("VM 'x' is being created by pid N").
DOING = {"create": "created", "delete": "deleted"}


class VmBusy(StoreError):
    """Another process holds the VM's lock."""


class VmLock:
    """``with VmLock(root_fd, root, name, "create"):`` ... (``root_fd``: the opened store root)."""

    def __init__(self, root_fd: int, root: Path, name: str, action: str) -> None:
        self.root_fd, self.root, self.name, self.action = root_fd, root, name, action
        self.fd: Optional[int] = None
        self.locks_fd: Optional[int] = None

    @property
    def path(self) -> Path:
        return self.root / LOCK_DIR / f"{self.name}.lock"

    def __enter__(self) -> VmLock:
        import fcntl
        self.locks_fd = _locks_dir(self.root_fd, self.root)
        for _attempt in range(5):
            fd = _open_lock(self.locks_fd, self.name, self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    pid, doing = holder
                    raise VmBusy(f"VM {self.name!r} is being {doing} by pid {pid}" if pid else
                                 f"VM {self.name!r} is being changed by another process ({self.path} is locked)"
                                 ) from None
                raise failed(exc, "lock", self.path) from None
            # 'delete' removes the lock file while holding it: make sure we locked the file the name
            # still points to, not one unlinked a moment ago.
            try:
                same = os.stat(f"{self.name}.lock", dir_fd=self.locks_fd, follow_symlinks=False).st_ino == \
                    os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                try:
                    # Overwrite, then cut: the file is never empty once a holder has written it.
                    data = f"{os.getpid()} {self.action}\n".encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
                except OSError as exc:
                    self.release()
                    raise failed(exc, "write", self.path) from None
                return self
            os.close(fd)
        raise StoreError(f"cannot lock {self.path}: it keeps being replaced")

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.release()

    def remove(self) -> None:
        """Unlink the lock file (still holding it): for ``delete``, so nothing of the VM is left."""
        if self.fd is not None and self.locks_fd is not None:
            try:
                os.unlink(f"{self.name}.lock", dir_fd=self.locks_fd)
                fsync_fd(self.locks_fd, self.path.parent)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise failed(exc, "remove", self.path) from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None
        if self.locks_fd is not None:
            os.close(self.locks_fd)
            self.locks_fd = None


def _locks_dir(root_fd: int, root: Path) -> int:
    shown = root / LOCK_DIR
    try:
        return open_dir(LOCK_DIR, root_fd, shown)
    except StoreError:
        if os.path.lexists(shown):
            raise
    try:
        return make_dir(root_fd, LOCK_DIR, PRIVATE_DIR, shown)
    except StoreError:
        if os.path.isdir(shown):  # made by a concurrent run
            return open_dir(LOCK_DIR, root_fd, shown)
        raise


def _open_lock(locks_fd: int, name: str, shown: Path) -> int:
    try:
        fd = os.open(f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE,
                     dir_fd=locks_fd)
    except OSError as exc:
        raise failed(exc, "open", shown) from None
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
    except OSError as exc:
        os.close(fd)
        raise failed(exc, "set the mode of", shown) from None
    return fd


def _holder(fd: int) -> tuple[Optional[int], str]:
    """The holder's pid and action, as it wrote them (a new holder writes just after locking)."""
    import time
    for _attempt in range(20):
        try:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            if text:
                return int(text[0]), DOING.get(text[1], "changed") if len(text) > 1 else "changed"
        except (OSError, ValueError):
            break
        time.sleep(0.005)
    return None, "changed"
