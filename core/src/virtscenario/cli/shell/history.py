"""Where the shell's history lives, kept private: ``$XDG_STATE_HOME/virtscenario/history``.

Lines may name paths (images, ISOs, passphrase files), so the directory is 0700 and the
file 0600. A line that looks like it carries a secret, or starts with a space (bash's
``HISTCONTROL=ignorespace`` habit), is never written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

#: ``password=...``, ``passphrase: ...``, ``secret=...``; ``--passphrase-file PATH`` names a file, which is fine.
SECRET = re.compile(r"(pass(word|phrase)|secret)(?!-file)\s*[=:]", re.IGNORECASE)


def history_path() -> Path:
    """``$XDG_STATE_HOME/virtscenario/history``; a relative XDG_STATE_HOME is ignored, as the spec says."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "virtscenario" / "history"


def prepare(path: Path) -> Path:
    """Create the directory (0700) and the file (0600); tighten them if they exist with wider modes."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def worth_keeping(line: str) -> bool:
    return bool(line.strip()) and not line.startswith(" ") and not SECRET.search(line)


def file_history(path: Path) -> Any:
    """A prompt_toolkit FileHistory that skips the lines :func:`worth_keeping` refuses."""
    from prompt_toolkit.history import FileHistory

    class PrivateHistory(FileHistory):
        def append_string(self, string: str) -> None:
            if worth_keeping(string):
                super().append_string(string)

    return PrivateHistory(str(prepare(path)))
