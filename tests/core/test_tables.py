"""Tables fit the terminal (issue 17): no line wider than it, names never cut, reasons readable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from virtscenario.cli.output import STACK_INDENT, table
from virtscenario.sdk.fakehost import make_fake_host

CLI = str(Path(sys.executable).parent / "virtscenario")
REASON = ("qemu-guest-agent: clean shutdown, filesystem freeze for consistent snapshots, guest addresses in "
          "'virsh domifaddr' [https://libvirt.org/formatdomain.html#channel]")


@pytest.mark.parametrize("width", [40, 80, 250])
def test_an_all_empty_column_is_allowed(width: int) -> None:
    # The shell's "*" mark column is empty on every row until something is set.
    lines = table(["", "KEY", "WHY"], [["", "disk.cache", REASON], ["", "vm.vcpus", "two"]], width=width).splitlines()
    assert any(line.split()[:1] == ["disk.cache"] for line in lines)
    assert max(len(line) for line in lines) <= width


def test_a_squeezed_free_text_column_goes_under_its_row() -> None:
    rows = [["channel.guest_agent", "on", "scenario desktop (virtscenario-desktop 0.1.0)", REASON],
            ["clock.hpet", "off", "default", "no HPET: Windows and Linux use better clocks"]]
    lines = table(["KEY", "VALUE", "SOURCE", "WHY"], rows, width=80).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[1] == f"{STACK_INDENT}WHY"
    assert lines[3].startswith("channel.guest_agent ")  # the name whole, on its own line
    under = [line for line in lines if line.startswith(STACK_INDENT)][1:]
    assert " ".join(line.strip() for line in under).startswith(REASON)  # every word of it, in order
    # wide enough: one row per line, the reason in its own column
    wide = table(["KEY", "VALUE", "SOURCE", "WHY"], rows, width=250).splitlines()
    assert len(wide) == 4 and wide[2].endswith(REASON)


def test_peer_columns_are_not_stacked_and_the_first_keeps_its_names() -> None:
    rows = [["channel.guest_agent", "on*", "on*", "off*", "on*"], ["clock.pit_tickpolicy", "delay*", "delay*",
                                                                   "delay*", "delay"]]
    lines = table(["SETTING", "COMPUTATION", "DESKTOP", "SECUREVM", "TESTING"], rows, width=72).splitlines()
    assert max(len(line) for line in lines) <= 72
    assert len(lines) == 4 and lines[3].startswith("clock.pit_tickpolicy ")


def test_a_narrow_terminal_still_never_gets_a_wider_line() -> None:
    rows = [["x" * 50, "y" * 40, REASON]]
    for width in (40, 60, 80):
        assert max(len(line) for line in table(["A", "B", "C"], rows, width=width).splitlines()) <= width


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("host")
    make_fake_host(root, cpus=8)
    return root


@pytest.mark.parametrize("args", [
    ["scenarios", "show", "desktop"], ["scenarios", "show", "computation", "--all"], ["scenarios", "compare"],
    ["plugins", "list"], ["settings"], ["host", "check"], ["host", "plan", "computation"],
    ["host", "plan", "desktop"],
], ids=lambda a: " ".join(a))
def test_commands_fit_80_columns(args: list[str], fake_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "80", "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([CLI, "--host-root", str(fake_root), *args], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode in (0, 1), result.stderr  # host check may FAIL on a fake host: still a table
    lines = result.stdout.splitlines()
    assert len(lines) > 3
    # A single word longer than the terminal (a path) cannot be wrapped; it starts its own line.
    too_wide = [line for line in lines if len(line) > 80 and " " in line.strip()]
    assert not too_wide, too_wide[0]


def test_fleet_reports_fit_80_columns(tmp_path, monkeypatch):
    """hosts check / place / migrate-check lines reached 159 characters: they wrap under themselves."""
    from virtscenario.fleet.report import fit
    long = ("  firmware: efi (secure boot); virtiofs: yes; TPM: tpm-tis, tpm-crb (backends: passthrough, emulator, "
            "external)")
    lines = fit(long + "\n  short line", 80).splitlines()
    assert all(len(line) <= 80 for line in lines) and lines[-1] == "  short line"
    assert lines[0].startswith("  firmware:") and lines[1].startswith("    ")  # continuation under its line
    assert " ".join(" ".join(lines[:-1]).split()) == " ".join(long.split())
