"""Progress on long steps: shown on a terminal, silent otherwise (issue 17)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect
from virtscenario.cli.progress import Progress

CLI = str(Path(sys.executable).parent / "virtscenario")


def test_a_step_longer_than_a_second_is_drawn_and_finished():
    out = io.StringIO()
    with Progress(out, enabled=True) as progress:
        progress.step("Creating image x.qcow2")
        time.sleep(1.5)
        progress.step("Quick step")  # under a second: never drawn
    text = out.getvalue()
    assert "\rCreating image x.qcow2 ... 1." in text and "Creating image x.qcow2 ... done (1." in text
    assert "Quick step" not in text


def test_a_line_never_wraps_the_terminal():
    # A wrapped line cannot be redrawn with \r: every tick would scroll a row.
    out = io.StringIO()
    progress = Progress(out, enabled=True)
    progress._columns = lambda: 40  # type: ignore[method-assign]
    with progress:
        progress.step("Creating LUKS-encrypted qcow2 image /var/lib/virtscenario/vms/long-name/long-name.qcow2")
        time.sleep(1.5)
    drawn = [part.replace("\x1b[K", "").rstrip("\n") for part in out.getvalue().split("\r") if part]
    assert drawn and all(len(line) <= 39 for line in drawn), drawn
    assert drawn[0].startswith("Creating LUKS-encrypted") and "…" in drawn[0] and drawn[0].endswith(" s")
    assert drawn[-1].endswith(" s)") and "... done (1." in drawn[-1]


def test_nothing_when_not_a_terminal():
    out = io.StringIO()  # isatty() is False
    with Progress(out) as progress:
        progress.step("Creating image x.qcow2")
        time.sleep(1.3)
    assert out.getvalue() == ""


def test_luks_creation_shows_progress_on_a_pty_only(tmp_path):
    env = {**os.environ, "COLUMNS": "120", "XDG_CACHE_HOME": str(tmp_path / "c"), "XDG_CONFIG_HOME": str(tmp_path)}
    args = ["create", "securevm", "--name", "p", "--disk", "size=64M", "--output", str(tmp_path / "pty")]
    child = pexpect.spawn(CLI, args, env=env, encoding="utf-8", timeout=120, dimensions=(24, 250))
    # The image's own path in the store, not the staging directory it is made in.
    child.expect(r"Creating LUKS-encrypted qcow2 image (\S+) .*\.\.\. \d+\.\d s")
    assert child.match.group(1) == str(tmp_path / "pty" / "p" / "p.qcow2")
    child.expect(r"\.\.\. done \(\d+\.\d s\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    piped = subprocess.run([CLI, *args[:-1], str(tmp_path / "pipe")], env=env, capture_output=True, text=True,
                           check=False)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "Creating LUKS" not in piped.stderr + piped.stdout
