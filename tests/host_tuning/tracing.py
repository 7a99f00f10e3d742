"""Running the real ``virtscenario`` CLI under strace, and reading what it did to which path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

CLI = str(Path(sys.executable).with_name("virtscenario"))
#: One system call of a ``strace -f -y`` trace: pid, name, arguments (and result).
CALL = re.compile(r"^(\d+) +(\w+)\((.*)$")
_TOKEN = re.compile(r'(?:\d+|AT_FDCWD)<([^>]*)>|"((?:[^"\\]|\\.)*)"')
#: Calls whose only path is their file descriptor (what follows is data, not a name).
FD_ONLY = frozenset({"write", "pwrite64", "writev", "fchmod", "fchown", "ftruncate"})
#: Calls that change the file system.
CHANGING = frozenset({"write", "pwrite64", "writev", "creat", "rename", "renameat", "renameat2", "unlink",
                      "unlinkat", "mkdir", "mkdirat", "rmdir", "fchmod", "fchmodat", "chmod", "fchown",
                      "fchownat", "lchown", "chown", "ftruncate", "truncate", "link", "linkat", "symlink",
                      "symlinkat", "mknod", "mknodat", "utimensat"})
OPEN_CHANGES = re.compile(r"O_(WRONLY|RDWR|CREAT|TRUNC)")


def env(home: Path) -> dict[str, str]:
    """The CLI's environment: no .pyc written mid-run (system call counts must repeat), no user config."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTSCENARIO_", "PYTHON", "XDG_"))}
    out.update(PYTHONDONTWRITEBYTECODE="1", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return out


def cli(tree: Path, command: list[str], environ: dict[str, str], strace: tuple[str, ...] = (),
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*strace, CLI, "--host-root", str(tree), "host", *command], capture_output=True,
                          text=True, env=environ, timeout=120, check=False, input=stdin)


def paths(name: str, args: str) -> list[str]:
    """The absolute paths a traced call names (``-y`` shows each descriptor's path): a name
    relative to a directory descriptor is joined to it, a descriptor alone stands for itself."""
    out: list[str] = []
    directory: Optional[str] = None
    for fd_path, text in _TOKEN.findall(args):
        if fd_path:
            if name in FD_ONLY:
                return [fd_path]
            if directory is not None:
                out.append(directory)
            directory = fd_path
        elif text.startswith("/"):
            out.append(text)
            directory = None  # an absolute name ignores the directory descriptor
        elif directory is not None:
            out.append(os.path.normpath(f"{directory}/{text}") if text else directory)
            directory = None
    if directory is not None:
        out.append(directory)
    return out


def changes(name: str, args: str) -> bool:
    return name in CHANGING or (name.startswith("open") and bool(OPEN_CHANGES.search(args)))
