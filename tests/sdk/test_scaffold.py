"""virtscenario plugin new: the generated distribution installs and its own tests pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomllib
from virtscenario import API_VERSION, __version__
from virtscenario.errors import ConfigError
from virtscenario.sdk import scaffold
from virtscenario.testing import render_scenario

from .venvs import Venv


@pytest.mark.parametrize("name", ["lab", "lab_2", "x" * 40])
def test_valid_names(name: str) -> None:
    assert scaffold.check_name(name) == name


@pytest.mark.parametrize("name", ["Lab", "1lab", "lab-x", "", "x" * 41, "lab.x", "_lab"])
def test_invalid_names_are_one_clear_line(name: str, cli, tmp_path: Path) -> None:
    code, out, err = cli("plugin", "new", name, "--dir", str(tmp_path / "p"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"Error: plugin name {name!r} must be lower-case letters, digits and underscores")
    assert not (tmp_path / "p").exists()


def test_generated_files() -> None:
    files = scaffold.render_files("lab")
    assert set(files) == {"pyproject.toml", "README.md", ".gitignore", "src/virtscenario_lab/__init__.py",
                          "tests/test_lab.py", ".github/workflows/test.yml"}
    meta = tomllib.loads(files["pyproject.toml"])
    major, minor = __version__.split(".")[:2]
    assert meta["project"]["name"] == "virtscenario-lab"
    assert meta["project"]["dependencies"] == [f"virtscenario>={major}.{minor},<{int(major) + 1}"]
    assert meta["project"]["entry-points"]["virtscenario"] == {"lab": "virtscenario_lab"}
    assert "$" not in "".join(files.values()), "a template placeholder was left unsubstituted"
    namespace: dict[str, Any] = {}
    exec(compile(files["src/virtscenario_lab/__init__.py"], "virtscenario_lab", "exec"), namespace)  # noqa: S102
    scenario = namespace["SCENARIO"]
    assert scenario.name == "lab" and namespace["VIRTSCENARIO_API"] == API_VERSION
    assert all(c.rationale and c.reference.startswith("https://") for c in scenario.choices)
    assert "virtscenario_render" in files["tests/test_lab.py"]
    assert "pytest" in files[".github/workflows/test.yml"]


def test_generated_module_renders_through_the_pipeline(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(scaffold.render_files("lab")["src/virtscenario_lab/__init__.py"], "m", "exec"), namespace)  # noqa: S102

    class Module:
        __name__ = "virtscenario_lab"
        register_scenarios = staticmethod(namespace["register_scenarios"])

    result = render_scenario("lab", [Module()])
    assert result.validated and result.tree.findtext("vcpu") == "2"


def test_scaffold_default_dir_and_no_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _err = cli("plugin", "new", "lab")
    project = tmp_path / "virtscenario-lab"
    assert code == 0 and f"Created {project}" in out
    assert (project / "src" / "virtscenario_lab" / "__init__.py").is_file()
    assert oct(project.stat().st_mode & 0o777) == "0o755"
    before = (project / "README.md").read_text()
    (project / "README.md").write_text("mine")
    code, _out, err = cli("plugin", "new", "lab")
    assert code == 1 and err == f"Error: {project} already exists and is not empty; choose another --dir\n"
    assert (project / "README.md").read_text() == "mine" and before != "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert scaffold.scaffold("lab", str(empty)) == empty and (empty / "pyproject.toml").is_file()
    with pytest.raises(ConfigError, match="no such directory"):
        scaffold.scaffold("lab", str(tmp_path / "missing" / "x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "virtscenario-lab"]  # no staging dir left


def test_a_failed_scaffold_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = []
    real = Path.write_text

    def failing(self: Path, text: str, *a: Any, **k: Any) -> int:
        writes.append(self)
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        return real(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError):
        scaffold.scaffold("lab", str(tmp_path / "p"))
    assert list(tmp_path.iterdir()) == []


def test_scaffold_installs_and_its_tests_pass(author_venv: Venv, tmp_path: Path) -> None:
    """Generate, install with 'virtscenario plugins install -e', run the generated tests,
    break the scenario to see them fail, then uninstall."""
    project = tmp_path / "virtscenario-scaffoldcheck"
    made = author_venv.virtscenario("plugin", "new", "scaffoldcheck", "--dir", str(project))
    assert made.returncode == 0, made.stderr
    try:
        installed = author_venv.virtscenario("plugins", "install", "-e", str(project))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        tests = author_venv.run(["pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "3 passed" in tests.stdout
        listed = json.loads(author_venv.virtscenario("plugins", "list", "--json").stdout)
        mine = next(p for p in listed if p["name"] == "scaffoldcheck")
        assert (mine["distribution"], mine["status"], mine["builtin"]) == ("virtscenario-scaffoldcheck", "active",
                                                                          False)
        shown = author_venv.virtscenario("scenarios", "show", "scaffoldcheck", "--json")
        assert json.loads(shown.stdout)["scenario"] == "scaffoldcheck"
        # The generated tests can fail: change a decision and run them again (editable install).
        module = project / "src" / "virtscenario_scaffoldcheck" / "__init__.py"
        module.write_text(module.read_text().replace('Choice("vm.vcpus", 2,', 'Choice("vm.vcpus", 3,'))
        broken = author_venv.run(["pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
        assert broken.returncode == 1 and "1 failed, 2 passed" in broken.stdout
    finally:
        removed = author_venv.virtscenario("plugins", "uninstall", "-y", "virtscenario-scaffoldcheck")
    assert removed.returncode == 0, removed.stderr
    listed = json.loads(author_venv.virtscenario("plugins", "list", "--json").stdout)
    assert "scaffoldcheck" not in {p["name"] for p in listed}
