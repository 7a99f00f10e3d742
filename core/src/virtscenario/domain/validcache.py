"""A per-user record of documents libvirt's schema already accepted, so a process that
generates a VM it generated before does not compile the schema again.

Compiling libvirt's RelaxNG grammar costs about 10 ms, a sixth of the CLI's whole start-up;
lxml cannot keep a compiled schema between processes. Validity is a pure function of the
schema files and the document, so it can be remembered:

* the key is a SHA-256 of the schema directory's file names, sizes and mtimes, and of the
  document with every UUID-shaped string and every 52:54:00 MAC replaced by a fixed one of
  the same shape (libvirt's schema constrains them only by those shapes, so the masked
  document is valid exactly when the original is);
* only *valid* documents are recorded; an invalid one is always validated (and reported);
* the file lives in ``$XDG_CACHE_HOME/virtscenario`` (0700), is written atomically (0600),
  holds at most ``MAX_ENTRIES`` keys, and is ignored unless it belongs to the user and
  nobody else may write it. ``VIRTSCENARIO_NO_CACHE=1`` turns it off. Any error reading or
  writing it means "not cached", never a failure.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Optional

MAX_ENTRIES = 512
FILE = "validated-v1"
_UUID = rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_MAC = rb"52:54:00(?::[0-9a-f]{2}){3}"


def _sha256() -> Any:
    """SHA-256 from the interpreter's built-in module: hashlib's OpenSSL import costs ~2 ms."""
    try:
        from _sha2 import sha256  # Python >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[no-redef]
        except ImportError:  # pragma: no cover - a build without the built-in modules
            from hashlib import sha256  # type: ignore[assignment,no-redef]
    return sha256()


def _cache_file() -> Optional[Path]:
    if os.environ.get("VIRTSCENARIO_NO_CACHE", "") not in ("", "0"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "virtscenario" / FILE


def key(schema: Path, document: bytes) -> str:
    digest = _sha256()
    try:
        directory = schema.parent
        for name in sorted(os.listdir(directory)):
            st = os.stat(directory / name)
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    except OSError:
        return ""
    digest.update(str(schema).encode() + b"\0")
    masked = re.sub(_MAC, b"52:54:00:00:00:00", re.sub(_UUID, b"00000000-0000-0000-0000-000000000000", document))
    digest.update(masked)
    return digest.hexdigest()


def _entries(path: Path) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_size > 65 * MAX_ENTRIES:
            return []
        return os.read(fd, st.st_size).decode("ascii", "replace").split()
    finally:
        os.close(fd)


def known_valid(k: str) -> bool:
    path = _cache_file()
    return bool(k and path is not None and k in _entries(path))


def remember(k: str) -> None:
    path = _cache_file()
    if not k or path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        entries = [e for e in _entries(path) if e != k][-(MAX_ENTRIES - 1):] + [k]
        tmp = path.with_name(f".{FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, ("\n".join(entries) + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is a cache miss next time, nothing more
