"""``virtscenario shell < script``: the lines run in order; the first failing one stops it."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from .conftest import run_script


def test_a_script_runs_its_lines_and_prints_only_their_output(shell_env: dict[str, str], tmp_path: Path) -> None:
    script = "# a comment\nuse desktop\nname demo\nvcpu 4\n\nset disk.cache writeback\nxml\n"
    proc = run_script(script, shell_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = etree.fromstring(proc.stdout.encode())  # nothing but the XML on stdout: no prompt, no echo
    assert root.findtext("name") == "demo" and root.findtext("vcpu") == "4"
    assert root.find("devices/disk/driver").get("cache") == "writeback"
    assert "Error" not in proc.stderr


def test_the_first_failing_line_stops_the_script(shell_env: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = f"use desktop\nname demo\nset disk.cachee none\ncreate --output {store}\nscenarios list\n"
    proc = run_script(script, shell_env, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "Error: line 3: unknown setting 'disk.cachee'; did you mean 'disk.cache'?\n"
    assert proc.stdout == "" and not store.exists()


def test_a_usage_error_exits_2_with_its_line(shell_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_script("scenarios list\ncreate desktop --nam x\nsettings\n", shell_env, tmp_path)
    assert proc.returncode == 2
    error = proc.stderr.splitlines()
    assert len(error) == 1 and error[0].startswith("Error: line 2: No such option") and "--nam" in error[0]
    assert "(see 'create --help')" in error[0]
    assert "desktop" in proc.stdout and "KEY" not in proc.stdout  # line 1 ran, line 3 did not


def test_a_command_failing_with_a_status_names_its_line(shell_env: dict[str, str], tmp_path: Path) -> None:
    """host check on a host without virtualization prints its report, then exits 1 by itself."""
    from tests.host_tuning import fakehost
    root = fakehost.build(tmp_path / "host", fakehost.no_virt())
    proc = run_script("host check\nscenarios list\n", shell_env, tmp_path, ["--host-root", str(root)])
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "computation" not in proc.stdout
    assert proc.stderr.splitlines()[-1] == "Error: line 1: 'host check' exited with status 1"


def test_a_question_never_takes_the_next_line_as_its_answer(shell_env: dict[str, str], tmp_path: Path) -> None:
    from tests.host_tuning import fakehost
    root = fakehost.build(tmp_path / "host", fakehost.amd_sev())
    swappiness = root / "proc" / "sys" / "vm" / "swappiness"
    before = swappiness.read_text()
    proc = run_script("host apply desktop\ny\n", shell_env, tmp_path, ["--host-root", str(root)])
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("Error: line 1: no answer (stdin is closed or not a terminal)")
    assert swappiness.read_text() == before


def test_exit_ends_a_script_with_status_0(shell_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_script("settings --json\nexit\nfrobnicate\n", shell_env, tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.lstrip().startswith("[")


def test_python_m_virtscenario_shell(shell_env: dict[str, str], tmp_path: Path) -> None:
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "virtscenario", "shell"], input="use nosuch\n", env=shell_env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: line 1: unknown scenario 'nosuch'")
