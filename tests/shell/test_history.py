"""The history file: where it lives, its modes, and the lines it refuses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from virtscenario.cli.shell.history import file_history, history_path, prepare, worth_keeping


def test_history_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert history_path() == tmp_path / "state" / "virtscenario" / "history"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG spec: ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history_path() == tmp_path / "home" / ".local" / "state" / "virtscenario" / "history"


def test_existing_wide_modes_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "virtscenario" / "history"
    path.parent.mkdir(mode=0o755)
    path.write_text("+scenarios list\n")
    path.chmod(0o644)
    prepare(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == "+scenarios list\n"


def test_a_symlinked_history_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    path = tmp_path / "virtscenario" / "history"
    path.parent.mkdir()
    path.symlink_to(target)
    with pytest.raises(OSError):
        prepare(path)


@pytest.mark.parametrize("line,kept", [
    ("create desktop --name x --passphrase-file /root/pass.txt", True),
    ("create desktop --name x --passphrase-file=/root/pass.txt", True),
    ("set vm.title password=hunter2", False),
    ("set vm.title 'Passphrase: hunter2'", False),
    ("set vm.title secret=x", False),
    (" scenarios list", False),
    ("   ", False),
    ("scenarios list", True),
])
def test_lines_that_are_kept(line: str, kept: bool) -> None:
    assert worth_keeping(line) is kept


def test_file_history_skips_refused_lines(tmp_path: Path) -> None:
    path = tmp_path / "virtscenario" / "history"
    history = file_history(path)
    for line in ("use desktop", "set vm.title password=x", " xml", "create"):
        history.append_string(line)
    kept = [line[1:] for line in path.read_text().splitlines() if line.startswith("+")]
    assert kept == ["use desktop", "create"]
