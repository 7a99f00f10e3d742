"""Drive ``virtscenario shell`` on a pseudo-terminal (pexpect) or with a script on stdin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pexpect
import pytest

CLI = str(Path(sys.executable).parent / "virtscenario")
#: CSI and OSC sequences, and two-byte escapes: what prompt_toolkit draws the screen with.
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
PROMPT = r"virtscenario( \S+)?> ?"


class Terminal:
    """A shell on a pty. ``expect`` matches the screen's text with the escape sequences removed,
    from where the previous match ended."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.child = pexpect.spawn(CLI, ["shell"], env=env, cwd=str(cwd), encoding="utf-8",
                                   dimensions=(50, 220))
        self.raw = ""
        self.pos = 0

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw).replace("\r", "")

    def _read(self, timeout: float) -> None:
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            pass

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text, self.pos)
            if match:
                self.pos = match.end()
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen; after the last match:\n{self.text[self.pos:]}")
            self._read(0.2)

    def since(self, mark: int) -> str:
        return self.text[mark:]

    def line(self, text: str) -> None:
        """Type ``text`` and Enter, once the prompt is there (typed-ahead text waits for the next prompt)."""
        self.expect(PROMPT)
        self.child.send(text + "\r")

    def tab(self, text: str) -> None:
        """Type ``text`` then TAB, and give the shell the time to complete."""
        self.child.send(text + "\t")
        time.sleep(0.4)

    def leave(self) -> int:
        """Ctrl-D at the prompt. Call it once the last line's output was matched: between prompts the
        terminal is in cooked mode, where Ctrl-D would be the line discipline's, not the shell's."""
        self.expect(PROMPT)
        self.child.sendcontrol("d")
        self.child.expect(pexpect.EOF, timeout=30)
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """The user's directories under tmp_path (the autouse fixture set config and data already)."""
    env = dict(os.environ)
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm-256color",
               # No terminal answers prompt_toolkit's cursor position request here: do not ask.
               PROMPT_TOOLKIT_NO_CPR="1")
    env.pop("VIRTSCENARIO_DEBUG", None)
    return env


@pytest.fixture
def terminal(shell_env: dict[str, str], tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(shell_env, tmp_path)
    yield term
    if term.child.isalive():
        term.child.terminate(force=True)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "state" / "virtscenario" / "history"


def history_lines(path: Path) -> list[str]:
    """The lines the shell kept (prompt_toolkit's format: '+' before each line of an entry)."""
    return [line[1:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("+")]


def run_script(script: str, env: dict[str, str], cwd: Path, args: Optional[list[str]] = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *(args or []), "shell"], input=script, env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
