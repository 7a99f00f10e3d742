"""Filesystem steps of the store, through directory file descriptors and never through a symlink.

Every name inside the store is opened relative to an already opened directory with
``O_NOFOLLOW``, so a symlink planted in the store is refused (one line), not followed.
Modes are set with ``fchmod`` after creation, so they do not depend on the umask. Every
``OSError`` becomes a :class:`StoreError` naming what failed and where.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Iterator, Optional

from ..errors import VirtscenarioError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
#: The store root: others may traverse to a path they know (QEMU running as its own user
#: must reach the images) but not list it.
ROOT_DIR = 0o711
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreError(VirtscenarioError):
    """A store operation failed; the message names the operation and the path."""


def failed(exc: OSError, action: str, path: object) -> StoreError:
    if exc.errno == errno.ELOOP:
        return StoreError(f"cannot {action} {path}: it is a symbolic link, and nothing in the store is followed "
                          "through one")
    return StoreError(f"cannot {action} {path}: {exc.strerror or exc}")


def token() -> str:
    return os.urandom(4).hex()  # as secrets.token_hex(4), without importing secrets (hmac, hashlib)


def open_dir(name: str, dir_fd: Optional[int], shown: object) -> int:
    """Open a directory without following a symlink (a symlink is refused with one line)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(name, dir_fd):
            raise StoreError(f"{shown} is a symbolic link: refusing to follow it (nothing in the store is "
                             "followed through a symlink)") from None
        raise failed(exc, "open directory", shown) from None


def _is_symlink(name: str, dir_fd: Optional[int]) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def lstat_at(dir_fd: int, name: str, shown: object) -> Optional[os.stat_result]:
    """lstat, or None when the name does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise failed(exc, "inspect", shown) from None


def make_dir(dir_fd: int, name: str, mode: int, shown: object) -> int:
    """Create a directory with exactly ``mode`` and return it opened."""
    try:
        os.mkdir(name, PRIVATE_DIR, dir_fd=dir_fd)
    except OSError as exc:
        raise failed(exc, "create directory", shown) from None
    fd = open_dir(name, dir_fd, shown)
    set_mode(fd, mode, shown)
    return fd


def set_mode(fd: int, mode: int, shown: object) -> None:
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        raise failed(exc, "set the mode of", shown) from None


def fsync_fd(fd: int, shown: object) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a filesystem that cannot sync a directory
            raise failed(exc, "sync", shown) from None


def write_at(dir_fd: int, name: str, data: bytes, shown: object, mode: int = PRIVATE_FILE) -> None:
    """Write ``name`` atomically: a new file (O_EXCL, O_NOFOLLOW, ``mode``), fsync, rename over, fsync the directory."""
    tmp = f".{name}.{token()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=dir_fd)
    except OSError as exc:
        raise failed(exc, "create", shown) from None
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise failed(exc, "write", shown) from None
        raise
    fsync_fd(dir_fd, shown)


def read_at(dir_fd: int, name: str, limit: int, shown: object) -> bytes:
    """Read a regular file (not through a symlink), at most ``limit`` bytes."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise failed(exc, "read", shown) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{shown} is not a regular file")
        if st.st_size > limit:
            raise StoreError(f"{shown} is {st.st_size} bytes; the limit is {limit}")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise StoreError(f"{shown} grew beyond {limit} bytes while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise failed(exc, "read", shown) from None
    finally:
        os.close(fd)


def symlink_at(dir_fd: int, target: str, name: str, shown: object) -> None:
    """Make ``name`` a symlink to ``target``, atomically replacing what is there."""
    tmp = f".{name}.{token()}.tmp"
    try:
        os.symlink(target, tmp, dir_fd=dir_fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise failed(exc, "switch", shown) from None


def rename_noreplace(src: str, dst: str, src_fd: int, dst_fd: int, shown: object) -> None:
    """rename(2) that never replaces an existing ``dst`` (renameat2 RENAME_NOREPLACE; link/unlink or a
    check under the VM's lock where the kernel or filesystem lacks it)."""
    try:
        if _renameat2(src_fd, src, dst_fd, dst, 1):
            return
        if stat.S_ISDIR(os.stat(src, dir_fd=src_fd, follow_symlinks=False).st_mode):
            if lstat_at(dst_fd, dst, shown) is not None:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
            os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        else:
            os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            os.unlink(src, dir_fd=src_fd)
    except OSError as exc:
        raise failed(exc, "move into place", shown) from None


_RENAMEAT2: list[Any] = []


def _renameat2(src_fd: int, src: str, dst_fd: int, dst: str, flags: int) -> bool:
    """True when done; False when the C library, kernel or filesystem has no renameat2."""
    if not _RENAMEAT2:
        import ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            func = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _RENAMEAT2.append(func)
        except (AttributeError, OSError):  # no renameat2 in this C library (glibc < 2.28, musl < 1.2.?)
            _RENAMEAT2.append(None)
    func = _RENAMEAT2[0]
    if func is None:
        return False
    import ctypes
    if func(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err))


def remove_tree_at(dir_fd: int, name: str, shown: object) -> None:
    """Remove ``name`` (file, symlink or directory tree) without following any symlink."""
    st = lstat_at(dir_fd, name, shown)
    if st is None:
        return
    try:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return
        fd = open_dir(name, dir_fd, shown)
        try:
            for entry in list(_entries(fd)):
                remove_tree_at(fd, entry, f"{shown}/{entry}")
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise failed(exc, "remove", shown) from None


def _entries(fd: int) -> Iterator[str]:
    with os.scandir(fd) as it:
        for entry in it:
            yield entry.name


def entries(fd: int, shown: object) -> list[str]:
    try:
        return sorted(_entries(fd))
    except OSError as exc:
        raise failed(exc, "list", shown) from None


def unlink_at(dir_fd: int, name: str, shown: object) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise failed(exc, "remove", shown) from None

