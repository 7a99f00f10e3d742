"""virtscenario plugin new: the generated distribution installs and its own tests pass."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import tomllib
from virtscenario import API_VERSION, __version__
from virtscenario.errors import ConfigError
from virtscenario.sdk import scaffold
from virtscenario.testing import render_scenario

from .venvs import REPO, Venv


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
    shell_and_actions = {"$VIRTSCENARIO_SOURCE", "${{"}
    leftovers = set(re.findall(r"\$\{\{|\$\w+", "".join(files.values()))) - shell_and_actions
    assert leftovers == set(), f"template placeholders left unsubstituted: {leftovers}"
    namespace: dict[str, Any] = {}
    exec(compile(files["src/virtscenario_lab/__init__.py"], "virtscenario_lab", "exec"), namespace)  # noqa: S102
    scenario = namespace["SCENARIO"]
    assert scenario.name == "lab" and namespace["VIRTSCENARIO_API"] == API_VERSION
    assert all(c.rationale and c.reference.startswith("https://") for c in scenario.choices)
    assert "virtscenario_render" in files["tests/test_lab.py"]
    readme = files["README.md"]
    assert "virt-scenario" not in readme and "github.com" not in readme  # not the upstream project's page
    assert "pip install -e '.[test]'" in readme and "virtscenario plugin check ." in readme
    assert "api-reference.md" in readme and "writing-plugins.md" in readme


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


@pytest.mark.parametrize("name", ["desktop", "securevm", "host_tuning", "core_rules"])
def test_names_of_builtin_distributions_are_refused(name: str, cli, tmp_path: Path) -> None:
    code, out, err = cli("plugin", "new", name, "--dir", str(tmp_path / "p"))
    assert code == 1 and out == ""
    assert err == (f"Error: plugin name {name!r} is taken by virtscenario's own distributions (its scenario, entry "
                   "point or module would clash): choose another\n")
    assert not (tmp_path / "p").exists()


def test_names_of_installed_distributions_are_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "virtscenario_modlab.py").write_text("")  # a module only
    info = site / "virtscenario_distlab-2.0.dist-info"  # a distribution of that name
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: virtscenario-distlab\nVersion: 2.0\n")
    other = site / "someone_else-1.0.dist-info"  # an entry point of that name in another distribution
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: someone-else\nVersion: 1.0\n")
    (other / "entry_points.txt").write_text("[virtscenario]\neplab = someone_else_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    for name, found in (("distlab", "distribution virtscenario-distlab 2.0"),
                        ("eplab", "the plugin 'eplab' of someone-else 1.0"),
                        ("modlab", "the module virtscenario_modlab")):
        code, out, err = cli("plugin", "new", name, "--dir", str(tmp_path / name))
        assert code == 1 and out == "", err
        assert err == f"Error: plugin name {name!r} is taken: {found} is installed, and two plugins of one name " \
                      "clash (scenario, entry point, module); choose another\n"
        assert not (tmp_path / name).exists()
    code, _out, err = cli("plugin", "new", "freelab", "--dir", str(tmp_path / "freelab"))
    assert code == 0, err


def test_one_install_instruction_everywhere(cli, tmp_path: Path) -> None:
    """plugin new's message, the generated README and the tutorial say the same thing."""
    project = tmp_path / "virtscenario-hintlab"
    code, out, err = cli("plugin", "new", "hintlab", "--dir", str(project), "--core-source", "./vendor/core")
    assert code == 0, err
    assert out == f"Created {project}. Next: {scaffold.install_hint(project)}\n"
    assert scaffold.install_hint(project) == f"pip install -e '{project}[test]' && cd '{project}' && pytest"
    readme = (project / "README.md").read_text()
    assert "    pip install -e '.[test]'\n    pytest\n" in readme
    tutorial = (REPO / "docs" / "writing-plugins.md").read_text()
    assert "Next: pip install -e '.../virtscenario-lab[test]' && cd '.../virtscenario-lab' && pytest" in tutorial
    assert "$ pip install -e '.[test]'" in tutorial
    assert "plugins install -e" not in tutorial  # one way for plugin authors


def test_core_source_for_ci(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _out, err = cli("plugin", "new", "srclab", "--dir", str(tmp_path / "a"),
                          "--core-source", "virtscenario @ git+https://example.org/v.git@v1#subdirectory=core")
    assert code == 0 and err == ""
    flow = (tmp_path / "a" / ".github/workflows/test.yml").read_text()
    assert "VIRTSCENARIO_SOURCE: ${{ vars.VIRTSCENARIO_SOURCE || 'virtscenario @ git+https://example.org/v.git@v1" \
           "#subdirectory=core' }}" in flow
    monkeypatch.setenv("VIRTSCENARIO_SOURCE", "./vendor/virtscenario/core")
    assert cli("plugin", "new", "srclab", "--dir", str(tmp_path / "b"))[0] == 0
    assert "|| './vendor/virtscenario/core' }}" in (tmp_path / "b" / ".github/workflows/test.yml").read_text()
    monkeypatch.delenv("VIRTSCENARIO_SOURCE")
    code, _out, err = cli("plugin", "new", "srclab", "--dir", str(tmp_path / "c"))
    assert code == 0
    assert err.startswith("Note: set VIRTSCENARIO_SOURCE in ")  # this core came from a wheel: CI cannot use it
    code, _out, err = cli("plugin", "new", "srclab", "--dir", str(tmp_path / "d"), "--core-source", "it's")
    assert code == 1 and "without quotes" in err and not (tmp_path / "d").exists()


def test_core_source_from_a_vcs_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """PEP 610: pip records where a VCS install came from; that is what CI can use."""
    from importlib import metadata

    class Dist:
        def read_text(self, name: str) -> str:
            assert name == "direct_url.json"
            return json.dumps({"url": "https://example.org/virtscenario.git", "subdirectory": "core",
                               "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "v0.1"}})

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist())
    assert scaffold.core_source() == "virtscenario @ git+https://example.org/virtscenario.git@abc123" \
                                     "#subdirectory=core"
    Dist.read_text = lambda self, name: json.dumps({"url": "file:///tmp/x.whl", "archive_info": {}})  # type: ignore
    assert scaffold.core_source() == ""
