"""What create prints: one screen by default (issue 17), the full explanation on demand, JSON for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "virtscenario")


def create(tmp_path: Path, scenario: str, *args: str, columns: str = "80") -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": columns, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([CLI, "create", scenario, "--name", f"o-{scenario}", "--output", str(tmp_path / "store"),
                           "--disk", "size=1", *args], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("scenario", ["desktop", "computation", "securevm"])
def test_default_output_is_one_screen_at_80_columns(tmp_path, scenario):
    result = create(tmp_path, scenario)
    assert result.returncode == 0, result.stderr
    lines = (result.stderr + result.stdout).splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    # Nothing wider than the terminal, except a path or command that cannot be split.
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), max(lines, key=len)
    out = result.stdout
    assert f"Created o-{scenario} (scenario {scenario}" in out and "domain.xml" in out
    assert "\nNext: " in out and out.index("\nNext: ") > out.index("--explain")  # the last thing said
    assert "--explain" in out


def test_explain_keeps_the_full_table_and_json_parses(tmp_path):
    explained = create(tmp_path, "desktop", "--explain", columns="200")
    assert explained.returncode == 0, explained.stderr
    assert "Settings of o-desktop (scenario desktop" in explained.stdout
    assert "https://libvirt.org/formatdomain.html" in explained.stdout  # references are there
    assert "Host plan (not applied" in explained.stdout
    as_json = create(tmp_path, "desktop", "--json", "--force")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["name"] == "o-desktop" and data["scenario"] == "desktop"
    keys = {s["key"]: s for s in data["settings"]}
    assert keys["disks[0].size"]["layer"] == "flag" and keys["disk.cache"]["rationale"]
    assert all(set(s) >= {"key", "value", "layer", "origin", "source", "rationale", "reference"}
               for s in data["settings"])


def test_quiet_prints_nothing_but_errors(tmp_path):
    quiet = create(tmp_path, "computation", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    again = create(tmp_path, "computation", "--quiet")  # exists without --force: the error still shows
    assert again.returncode == 1 and again.stderr.startswith("Error: VM 'o-computation' already exists")


def test_next_command_of_an_encrypted_vm_repeats_what_the_user_gave(tmp_path):
    # The next step defines the LUKS secrets and starts the VM: the same create again with
    # --force --start. It once dropped --output and the user's values (a different VM).
    import shlex

    result = create(tmp_path, "securevm", "--memory", "2GiB", "--set", "vm.vcpus=1", columns="300")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("Next: "))
    words = shlex.split(line[len("Next: "):])
    assert words[:2] == ["virtscenario", "create"] and words[-2:] == ["--force", "--start"]
    assert words[2:-2] == ["securevm", "--name", "o-securevm", "--output", str(tmp_path / "store"), "--disk",
                           "size=1", "--memory", "2GiB", "--set", "vm.vcpus=1"]
    # Run as told (--print-xml in place of --start, no daemon needed): the same VM, its values kept.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    again = subprocess.run([CLI, *words[1:-1], "--print-xml"], capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr
    assert "<memory unit=\"KiB\">2097152</memory>" in again.stdout and ">1</vcpu>" in again.stdout


def test_explain_fits_80_columns(tmp_path):
    result = create(tmp_path, "desktop", "--explain")
    assert result.returncode == 0, result.stderr
    lines = (result.stderr + result.stdout).splitlines()
    assert "more keys not shown" in result.stdout
    # Nothing wider than the terminal, except a path or URL that cannot be split.
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), max(lines, key=len)


def test_libvirt_refusing_the_define_says_the_vm_is_kept(tmp_path):
    """The store is committed before libvirt defines the domain: a refusal says where the VM is
    and how to go on (test:///default already has a domain named 'test', with another uuid)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    store = tmp_path / "store"
    result = subprocess.run([CLI, "create", "desktop", "--name", "test", "--output", str(store), "--disk", "none",
                             "--connect", "test:///default", "--define"], capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: libvirt refused test: ") and "already exists" in line
    assert line.endswith(f"(the VM is kept in {store / 'test'}: once fixed, the same command with --force; or "
                         f"virtscenario delete test --output {store})")
    assert (store / "test" / "vm.yaml").exists()
