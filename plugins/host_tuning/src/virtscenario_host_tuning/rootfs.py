"""File operations confined to the host root: the only way the plugin changes a file.

Configuration files (``/etc/...``) and the journal are reached through directory
file descriptors opened one component at a time from the root with
``O_NOFOLLOW|O_DIRECTORY``: a symbolic link anywhere on the way is refused (one
line), so no write, rename or delete can leave the root, whatever was swapped in
after the plan. A file is replaced by write-temp, fsync, rename, fsync-directory;
the temporary file has a fixed name, ``.<name>.virtscenario.tmp`` beside its
target, so a run killed half-way leaves a leftover that the next run (holding the
lock) finds and removes.

Kernel tunables cannot be renamed over: :func:`write_tunable` writes them in
place. Under a fake root their path may go through symbolic links (``/sys/block/sda``
is one on a real host) but only links that stay beneath the root are followed,
resolved here component by component rather than by the kernel.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Iterator, Optional

TMP_SUFFIX = ".virtscenario.tmp"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


class RootError(Exception):
    """A path cannot be used safely (symbolic link, escape, not a directory): one line for the user."""


def temp_name(name: str) -> str:
    """The fixed name of the temporary file (or directory) that becomes ``name``."""
    return f".{name}{TMP_SUFFIX}"


def root_dir(host: Any) -> str:
    return str(host.root) if host.is_fake else "/"


def split(host_path: str) -> list[str]:
    """``/etc/sysctl.d/x.conf`` -> ``["etc", "sysctl.d", "x.conf"]``; only clean absolute paths."""
    parts = host_path.split("/")
    if not host_path.startswith("/") or host_path == "/" or "\0" in host_path \
            or any(p in ("", ".", "..") for p in parts[1:]):
        raise RootError(f"{host_path!r} is not a clean absolute path")
    return parts[1:]


def open_root(host: Any) -> int:
    try:
        return os.open(root_dir(host), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootError(f"cannot open the host root {root_dir(host)}: {exc.strerror}") from None


def _refusal(fd: int, name: str, shown: str) -> RootError:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        return RootError(f"{shown}: {exc.strerror}")
    if stat.S_ISLNK(st.st_mode):
        return RootError(f"{shown} is a symbolic link: refused (virtscenario only writes through real "
                         "directories inside the host root)")
    return RootError(f"{shown} is not a directory")


class Dir:
    """An open directory of the tree (``with Dir(host, "/etc") as d: d.fd``)."""

    def __init__(self, host: Any, host_dir: str, created: Optional[list[str]] = None) -> None:
        """Open ``host_dir`` without following links; with ``created`` (a list), make missing ones."""
        self.fd = open_root(host)
        self.path = "/"
        parts = [] if host_dir == "/" else split(host_dir)
        try:
            for part in parts:
                shown = self.path.rstrip("/") + "/" + part
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
                except FileNotFoundError:
                    if created is None:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=self.fd)
                        created.append(shown)
                    except FileExistsError:
                        pass
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _refusal(self.fd, part, shown) from None
                    raise
                os.close(self.fd)
                self.fd, self.path = nfd, shown
        except BaseException:
            os.close(self.fd)
            raise

    @classmethod
    def adopt(cls, fd: int, path: str) -> Dir:
        """Wrap a directory descriptor opened elsewhere (closed with the Dir)."""
        d = cls.__new__(cls)
        d.fd, d.path = fd, path
        return d

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)

    def lstat(self, name: str) -> Optional[os.stat_result]:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def fsync(self) -> None:
        os.fsync(self.fd)


def _open_parent(host: Any, host_path: str) -> Optional[Dir]:
    """The parent directory of ``host_path``, or None when a component is missing."""
    try:
        return Dir(host, os.path.dirname(host_path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RootError(f"{os.path.dirname(host_path)}: {exc.strerror}") from None


def _regular(d: Dir, name: str, shown: str) -> Optional[os.stat_result]:
    """lstat ``name``: None when missing; refuse anything but a regular file."""
    st = d.lstat(name)
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise RootError(f"{shown} is {what}: refused")
    return st


# -- files ------------------------------------------------------------------------------------------
def stat_file(host: Any, host_path: str) -> Optional[os.stat_result]:
    """The regular file's stat, or None when it (or its directory) does not exist."""
    name = split(host_path)[-1]
    d = _open_parent(host, host_path)
    if d is None:
        return None
    with d:
        return _regular(d, name, host_path)


def read_file(host: Any, host_path: str, limit: int = 16 << 20) -> Optional[bytes]:
    """The bytes of a regular file (None when missing); refuses links, devices, FIFOs."""
    name = split(host_path)[-1]
    d = _open_parent(host, host_path)
    if d is None:
        return None
    with d:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=d.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RootError(f"{host_path} is a symbolic link: refused") from None
            raise RootError(f"cannot read {host_path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RootError(f"{host_path} is not a regular file: refused")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise RootError(f"{host_path} is larger than {limit} bytes")
                chunks.append(chunk)
        finally:
            os.close(fd)


def missing_dirs(host: Any, host_dir: str) -> list[str]:
    """Directories on the way to ``host_dir`` that do not exist yet, deepest first (links refused)."""
    parts = split(host_dir)
    for depth in range(len(parts), 0, -1):
        try:
            with Dir(host, "/" + "/".join(parts[:depth])):
                pass
        except FileNotFoundError:
            continue
        return ["/" + "/".join(parts[:i]) for i in range(len(parts), depth, -1)]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def make_dirs(host: Any, host_dir: str) -> list[str]:
    """``mkdir -p`` through real directories only; returns the directories it created, top first."""
    created: list[str] = []
    with Dir(host, host_dir, created):
        return created


def write_atomic(host: Any, host_path: str, data: bytes, mode: int,
                 owner: Optional[tuple[int, int]] = None) -> None:
    """Replace (or create) a regular file: temp, fsync, rename, fsync the directory.

    The directory must exist. ``owner`` (uid, gid) is given back when it differs from ours.
    """
    name = split(host_path)[-1]
    tmp = temp_name(name)
    with Dir(host, os.path.dirname(host_path)) as d:
        _regular(d, name, host_path)
        _remove_entry(d, tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=d.fd)
        try:
            try:
                if owner is not None and (os.fstat(fd).st_uid, os.fstat(fd).st_gid) != tuple(owner):
                    os.fchown(fd, owner[0], owner[1])
                os.fchmod(fd, mode)  # after chown, which clears set-id bits
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except BaseException:
            _remove_entry(d, tmp)
            raise
        d.fsync()


def unlink(host: Any, host_path: str) -> bool:
    """Remove a regular file; False when it is already gone."""
    name = split(host_path)[-1]
    d = _open_parent(host, host_path)
    if d is None:
        return False
    with d:
        if _regular(d, name, host_path) is None:
            return False
        os.unlink(name, dir_fd=d.fd)
        d.fsync()
        return True


def rmdir(host: Any, host_dir: str) -> bool:
    """Remove an empty directory; False when it is gone or not empty (someone else's files)."""
    name = split(host_dir)[-1]
    d = _open_parent(host, host_dir)
    if d is None:
        return False
    with d:
        st = d.lstat(name)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return False
        try:
            os.rmdir(name, dir_fd=d.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return False
            raise
        d.fsync()
        return True


# -- temporaries ------------------------------------------------------------------------------------
def _remove_entry(d: Dir, name: str) -> bool:
    """Remove ``name`` in ``d`` (a file, a link, or a whole directory tree, never followed)."""
    st = d.lstat(name)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        with Dir.adopt(os.open(name, _DIR_FLAGS, dir_fd=d.fd), f"{d.path.rstrip('/')}/{name}") as sub:
            for child in sub.names():
                _remove_entry(sub, child)
        os.rmdir(name, dir_fd=d.fd)
    else:
        os.unlink(name, dir_fd=d.fd)
    return True


def remove_temp(host: Any, host_path: str) -> bool:
    """Remove the leftover temporary of ``host_path`` (``.<name>.virtscenario.tmp`` beside it)."""
    d = _open_parent(host, host_path)
    if d is None:
        return False
    with d:
        return _remove_entry(d, temp_name(split(host_path)[-1]))


def publish_dir(host: Any, parent: str, name: str, build: Any) -> None:
    """Create ``parent/name`` with its content at once: ``build(dir)`` fills a temporary directory
    that is then renamed into place, so a crash leaves either nothing or the whole of it."""
    tmp = temp_name(name)
    with Dir(host, parent) as d:
        _remove_entry(d, tmp)
        os.mkdir(tmp, 0o755, dir_fd=d.fd)
        try:
            build(f"{d.path.rstrip('/')}/{tmp}")
            _fsync_tree(d, tmp)  # every entry inside is on disk before the rename publishes them
            os.rename(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except BaseException:
            _remove_entry(d, tmp)
            raise
        d.fsync()


def _fsync_tree(d: Dir, name: str) -> None:
    with Dir.adopt(os.open(name, _DIR_FLAGS, dir_fd=d.fd), f"{d.path.rstrip('/')}/{name}") as sub:
        for child in sub.names():
            st = sub.lstat(child)
            if st is not None and stat.S_ISDIR(st.st_mode):
                _fsync_tree(sub, child)
        sub.fsync()


def retire_dir(host: Any, host_dir: str) -> None:
    """Remove a directory tree at once: rename it to its temporary name, then delete that."""
    name = split(host_dir)[-1]
    with Dir(host, os.path.dirname(host_dir)) as d:
        tmp = temp_name(name)
        _remove_entry(d, tmp)
        os.rename(name, tmp, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        d.fsync()
        _remove_entry(d, tmp)
        d.fsync()


def walk_names(host: Any, host_dir: str) -> Iterator[tuple[str, os.stat_result]]:
    """(host path, lstat) of everything under ``host_dir``, links not followed."""
    with Dir(host, host_dir) as d:
        for name in d.names():
            st = d.lstat(name)
            if st is None:
                continue
            path = f"{d.path.rstrip('/')}/{name}"
            yield path, st
            if stat.S_ISDIR(st.st_mode):
                yield from walk_names(host, path)


# -- kernel tunables --------------------------------------------------------------------------------
def _resolve_beneath(host: Any, host_path: str) -> tuple[Dir, str]:
    """(directory, name) of a tunable, following only symbolic links that stay beneath the root."""
    root = root_dir(host)
    todo = split(host_path)
    stack: list[int] = [open_root(host)]
    links = 0
    try:
        while True:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) == 1:
                    raise RootError(f"{host_path} leads outside the host root")
                os.close(stack.pop())
                continue
            st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise RootError(f"{host_path}: too many levels of symbolic links")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):  # absolute: only a link into the root itself stays inside
                    if not (target + "/").startswith(root.rstrip("/") + "/"):
                        raise RootError(f"{host_path} leads outside the host root (link to {target})")
                    while len(stack) > 1:
                        os.close(stack.pop())
                    target = target[len(root.rstrip("/")):]
                todo = [p for p in target.split("/") if p] + todo
                continue
            if not todo:
                return Dir.adopt(stack.pop(), os.path.dirname(host_path)), part
            stack.append(os.open(part, _DIR_FLAGS, dir_fd=stack[-1]))
    except FileNotFoundError:
        raise RootError(f"{host_path}: no such tunable on this host") from None
    except OSError as exc:
        raise RootError(f"{host_path}: {exc.strerror}") from None
    finally:
        for fd in stack:
            os.close(fd)


def write_tunable(host: Any, host_path: str, data: bytes) -> None:
    """Write an existing kernel file in place (never created, never renamed: sysfs/procfs)."""
    if not host.is_fake:
        fd = os.open(host_path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    else:
        d, name = _resolve_beneath(host, host_path)
        with d:
            fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=d.fd)
    try:
        if host.is_fake and not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RootError(f"{host_path} is not a regular file: refused")
        os.write(fd, data)  # one write: sysfs takes a value per write(2)
    finally:
        os.close(fd)
