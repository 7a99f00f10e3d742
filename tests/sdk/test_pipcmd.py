"""virtscenario plugins install/uninstall: pip for the running environment, PEP 668 refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from virtscenario.errors import ConfigError, VirtscenarioError
from virtscenario.sdk import pipcmd


class PipRecorder(list):
    """Stands in for subprocess.run: records each argv, answers with ``code``."""

    code = 0

    def __call__(self, argv: list[str], check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
        assert "shell" not in kw and isinstance(argv, list)
        self.append(list(argv))
        return subprocess.CompletedProcess(argv, self.code)


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> PipRecorder:
    recorder = PipRecorder()
    monkeypatch.setattr(pipcmd.subprocess, "run", recorder)
    monkeypatch.setattr(pipcmd, "externally_managed", lambda: None)
    return recorder


def test_externally_managed_detection(tmp_path: Path) -> None:
    stdlib = tmp_path / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    assert pipcmd.externally_managed("/usr", "/usr", str(stdlib)) is None
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use apt\n")
    assert pipcmd.externally_managed("/usr", "/usr", str(stdlib)) == stdlib / "EXTERNALLY-MANAGED"
    # PEP 668: the marker does not apply inside a virtual environment.
    assert pipcmd.externally_managed("/home/u/.venv", "/usr", str(stdlib)) is None
    # This test suite runs in a venv.
    assert pipcmd.externally_managed() is None


def test_install_runs_pip_of_this_interpreter(pip_calls: PipRecorder, cli, tmp_path: Path) -> None:
    code, out, err = cli("plugins", "install", "-U", "-e", str(tmp_path), "virtscenario-softrt",
                             "virtscenario-migration==0.1.0")
    assert (code, err) == (0, "")
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "--upgrade", "--editable", str(tmp_path),
                          "virtscenario-softrt", "virtscenario-migration==0.1.0"]]
    assert "virtscenario plugins list" in out
    code, _out, err = cli("plugins", "uninstall", "-y", "virtscenario-softrt")
    assert code == 0
    assert pip_calls[-1] == [sys.executable, "-m", "pip", "uninstall", "--yes", "virtscenario-softrt"]
    cli("plugins", "uninstall", "virtscenario-softrt")
    assert pip_calls[-1] == [sys.executable, "-m", "pip", "uninstall", "virtscenario-softrt"]


def test_pip_failure_is_one_line(pip_calls: PipRecorder, cli) -> None:
    pip_calls.code = 1
    code, _out, err = cli("plugins", "install", "virtscenario-nonexistent")
    assert code == 1
    assert err == "Error: pip install failed (exit 1); nothing else was changed\n"


def test_externally_managed_python_points_to_pipx_or_a_venv(monkeypatch: pytest.MonkeyPatch, cli) -> None:
    called: list[Any] = []
    monkeypatch.setattr(pipcmd.subprocess, "run", lambda *a, **k: called.append(a))
    monkeypatch.setattr(pipcmd, "externally_managed", lambda: Path("/usr/lib/python3.11/EXTERNALLY-MANAGED"))
    code, out, err = cli("plugins", "install", "virtscenario-softrt")
    assert code == 1 and out == "" and called == []
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert "externally managed (PEP 668" in err
    assert "pipx inject virtscenario virtscenario-softrt" in err
    assert "python3 -m venv" in err
    code, _out, err = cli("plugins", "uninstall", "-y", "virtscenario-softrt")
    assert code == 1 and "pipx uninject virtscenario virtscenario-softrt" in err and called == []


@pytest.mark.parametrize(("args", "message"), [
    (("plugins", "install"), "Error: give at least one plugin to install"),
    (("plugins", "uninstall", "-y", "virtscenario"), "Error: refusing to uninstall virtscenario itself"),
    (("plugins", "uninstall", "-y", "VirtScenario[libvirt]"), "Error: refusing to uninstall virtscenario itself"),
])
def test_bad_requests_are_refused(pip_calls: PipRecorder, cli, args: tuple[str, ...], message: str) -> None:
    code, _out, err = cli(*args)
    assert code == 1 and err.startswith(message) and err.count("\n") == 1
    assert pip_calls == []


def test_names_and_missing_pip(monkeypatch: pytest.MonkeyPatch, pip_calls: PipRecorder) -> None:
    with pytest.raises(ConfigError, match="is not a plugin name"):
        pipcmd.install(["--index-url=http://evil"])
    monkeypatch.setattr(pipcmd.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VirtscenarioError, match="pip is not available for .*ensurepip"):
        pipcmd.install(["virtscenario-softrt"])
    assert pip_calls == []
