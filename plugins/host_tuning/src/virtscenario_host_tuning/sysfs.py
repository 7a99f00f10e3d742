"""Reading and writing kernel tunables (procfs/sysfs) through a HostRoot.

Reads go through ``host.path()`` so ``--host-root DIR`` keeps them inside DIR; under
a fake root a path whose symlinks lead out of DIR counts as missing. Writes go
through :func:`rootfs.write_tunable`, which resolves the path itself and follows
only links that stay beneath the root.

Selection files (``always [madvise] never``) take one word and show the
selected one in brackets. A fake tree is plain files, so :func:`write_value`
emulates the kernel there: it moves the brackets (and refuses a word that is
not offered, as the kernel does with EINVAL). That keeps plan -> apply ->
revert on a fake tree byte-identical to what the kernel would show.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

_SELECTED = re.compile(r"\[([^\]\s]+)\]")


def mapped(host: Any, host_path: str) -> Optional[Path]:
    """The mapped path, or None when a fake tree's symlinks would leave the root."""
    path = host.path(host_path)
    if host.is_fake:
        real = Path(os.path.realpath(path))
        if host.root not in (real, *real.parents):
            return None
    return path


def read_text(host: Any, host_path: str) -> Optional[str]:
    path = mapped(host, host_path)
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_bytes(host: Any, host_path: str) -> Optional[bytes]:
    path = mapped(host, host_path)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def exists(host: Any, host_path: str) -> bool:
    path = mapped(host, host_path)
    return path is not None and path.exists()


def listdir(host: Any, host_path: str) -> list[str]:
    path = mapped(host, host_path)
    if path is None:
        return []
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def is_selection(text: str) -> bool:
    return bool(_SELECTED.search(text))


def selected(text: Optional[str]) -> Optional[str]:
    """``always [madvise] never`` -> ``madvise``; a plain value -> itself stripped."""
    if text is None:
        return None
    match = _SELECTED.search(text)
    return match.group(1) if match else text.strip()


def options(text: Optional[str]) -> list[str]:
    """Words a selection file offers: ``none [mq-deadline] kyber`` -> [none, mq-deadline, kyber]."""
    if not text:
        return []
    return [w.strip("[]") for w in text.split()]


def current(host: Any, host_path: str) -> Optional[str]:
    """The effective value of a tunable, or None when the file is missing/unreadable."""
    return selected(read_text(host, host_path))


class WriteError(Exception):
    """A tunable could not be written or the kernel did not take the value (one-line message)."""


def write_value(host: Any, host_path: str, data: bytes) -> None:
    """Write ``data`` to an existing tunable, in place (never create, never rename: sysfs)."""
    from . import rootfs
    old = read_text(host, host_path) if host.is_fake else None
    if old is None and not exists(host, host_path):
        raise WriteError(f"{host_path}: no such tunable on this host")
    if old is not None:  # a fake tree: emulate the kernel
        word = data.decode().strip()
        if is_selection(old) and not is_selection(data.decode()):
            offered = options(old)
            if word not in offered:
                raise WriteError(f"{host_path}: {word!r} is not one of {' '.join(offered)}")
            data = (" ".join(f"[{w}]" if w == word else w for w in offered) + "\n").encode()
    try:
        rootfs.write_tunable(host, host_path, data)
    except rootfs.RootError as exc:
        raise WriteError(str(exc)) from None
    except OSError as exc:
        raise WriteError(f"{host_path}: {exc.strerror or exc}") from None
