"""Every host file access goes through a HostRoot, so ``--host-root DIR`` can
redirect ``/proc``, ``/sys``, ``/etc``, ``/dev``, ``/run`` and ``/var`` into a fake tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


class HostRoot:
    """Maps absolute host paths under an optional root directory.

    With ``root=None`` paths are used as they are (the real host). With a root,
    ``/proc/sys/vm/swappiness`` becomes ``ROOT/proc/sys/vm/swappiness`` and nothing
    outside ROOT is read or written.
    """

    def __init__(self, root: Optional[str | os.PathLike[str]] = None) -> None:
        self.root = Path(root).resolve() if root else None

    @classmethod
    def from_env(cls, root: Optional[str] = None) -> HostRoot:
        """``root``, else ``$VIRTSCENARIO_HOST_ROOT``, else the real host."""
        return cls(root or os.environ.get("VIRTSCENARIO_HOST_ROOT") or None)

    @property
    def is_fake(self) -> bool:
        """True under ``--host-root`` (a copy or a test tree), False on the real host."""
        return self.root is not None

    def path(self, host_path: str) -> Path:
        """The local path of the absolute host path ``host_path``.

        :raises ValueError: a relative path, or one whose ``..`` would leave the root.
        """
        if not host_path.startswith("/"):
            raise ValueError(f"host path must be absolute: {host_path!r}")
        if self.root is None:
            return Path(host_path)
        mapped = (self.root / host_path.lstrip("/")).resolve() if ".." in host_path else \
            self.root / host_path.lstrip("/")
        if self.root not in (mapped, *mapped.parents):
            raise ValueError(f"{host_path!r} escapes the host root")
        return mapped

    def exists(self, host_path: str) -> bool:
        """Whether the file or directory exists on the host."""
        return self.path(host_path).exists()

    def read(self, host_path: str, default: Optional[str] = None) -> str:
        """The text of a host file (``/proc/sys/vm/swappiness`` -> ``"60\\n"``: strip it yourself).

        :param default: returned when the file cannot be read; without it the ``OSError`` propagates.
        """
        try:
            return self.path(host_path).read_text()
        except OSError:
            if default is None:
                raise
            return default

    def read_bytes(self, host_path: str) -> bytes:
        """The bytes of a host file; ``OSError`` propagates."""
        return self.path(host_path).read_bytes()

    def listdir(self, host_path: str) -> list[str]:
        """The sorted entry names of a host directory; ``[]`` when it is missing or unreadable."""
        try:
            return sorted(os.listdir(self.path(host_path)))
        except OSError:
            return []

    def is_root_user(self) -> bool:
        """Whether we may change the host: euid 0 on a real host; a fake root is writable by its owner."""
        return True if self.is_fake else os.geteuid() == 0

    def __repr__(self) -> str:
        return f"HostRoot({str(self.root) if self.root else '/'})"
