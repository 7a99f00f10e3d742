"""The CI workflow `plugin new` generates works: its steps run here, in order, as a runner runs them.

The two actions it uses are emulated (checkout: the generated project is the working directory;
setup-python: a fresh venv first on PATH); every ``run:`` step is run with the shell a GitHub
runner uses (``bash --noprofile --norc -eo pipefail``), with the workflow's ``env`` evaluated.
``sudo apt-get`` lines are not run on this shared machine: the test checks instead that they
install the package that ships ``/usr/share/libvirt/schemas/domain.rng`` here. Anything else the
template might grow (another action, another expression) fails the test, so it cannot rot.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from virtscenario.sdk import scaffold

from .venvs import CORE, copy_project

SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
EMULATED_ACTIONS = {"actions/checkout@v4", "actions/setup-python@v5"}
RUNNER_SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def evaluate(value: str, repo_vars: dict[str, str]) -> str:
    """The one expression form the template uses: ``${{ vars.NAME || 'default' }}``."""
    match = re.fullmatch(r"\$\{\{ vars\.(\w+) \|\| '([^']*)' \}\}", value)
    if match is None:
        assert "${{" not in value, f"the test cannot evaluate {value!r}: teach it, or keep the template simple"
        return value
    return repo_vars.get(match.group(1)) or match.group(2)


def package_of(path: str) -> str:
    out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=True).stdout
    return out.split(":", 1)[0]


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    lines = []
    for line in script.splitlines():
        words = shlex.split(line) if line.strip().startswith("sudo ") else []
        if words[:3] == ["sudo", "apt-get", "update"]:
            continue
        if words[:3] == ["sudo", "apt-get", "install"]:
            packages = {w for w in words[3:] if not w.startswith("-")}
            assert package_of(SCHEMA) in packages, f"{line!r} does not install the package that ships {SCHEMA}"
            continue
        assert not words, f"the test does not know how to run {line!r} on a shared machine"
        lines.append(line)
    return subprocess.run([*RUNNER_SHELL, "\n".join(lines)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def test_generated_workflow_runs_step_by_step(tmp_path: Path) -> None:
    source = copy_project(CORE, tmp_path / "core-source")  # "a path in this repository", as the comment offers
    project = scaffold.scaffold("ciflow", str(tmp_path / "virtscenario-ciflow"), source=str(source))
    flow = yaml.safe_load((project / ".github" / "workflows" / "test.yml").read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the key 'on' as True
    assert set(triggers) == {"push", "pull_request"}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTSCENARIO_", "PYTHON", "PYTEST", "PIP_")) and k != "VIRTUAL_ENV"}
    env.update({k: evaluate(str(v), {}) for k, v in flow.get("env", {}).items()})
    assert env["VIRTSCENARIO_SOURCE"] == str(source)
    [job] = flow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    outputs = []
    for step in job["steps"]:
        if "uses" in step:
            assert step["uses"] in EMULATED_ACTIONS, f"the test cannot emulate {step['uses']}"
            if step["uses"].startswith("actions/setup-python"):
                assert step["with"]["python-version"] == "3.11"
                venv = tmp_path / "runner-python"
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
                env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
                env["VIRTUAL_ENV"] = str(venv)
            continue
        result = run_step(step["run"], project, env)
        assert result.returncode == 0, f"step {step.get('name', step['run'])!r} failed:\n{result.stdout}\n" \
                                       f"{result.stderr}"
        outputs.append(result.stdout)
    assert outputs[-2].rstrip().endswith("No problems found.")  # virtscenario plugin check .
    assert re.search(r"=+ 3 passed in ", outputs[-1]), outputs[-1]  # pytest: the generated tests


def test_install_step_fails_clearly_without_a_source(tmp_path: Path) -> None:
    project = scaffold.scaffold("cinosource", str(tmp_path / "p"), source="")
    flow = yaml.safe_load((project / ".github" / "workflows" / "test.yml").read_text())
    assert evaluate(flow["env"]["VIRTSCENARIO_SOURCE"], {}) == ""
    assert evaluate(flow["env"]["VIRTSCENARIO_SOURCE"], {"VIRTSCENARIO_SOURCE": "./v/core"}) == "./v/core"
    [install] = [s for s in flow["jobs"]["test"]["steps"] if "VIRTSCENARIO_SOURCE" in s.get("run", "")]
    env = {"PATH": os.environ["PATH"], "VIRTSCENARIO_SOURCE": ""}
    result = run_step(install["run"], project, env)
    assert result.returncode == 1
    assert result.stdout == "::error::set VIRTSCENARIO_SOURCE at the top of .github/workflows/test.yml: " \
                            "virtscenario is not on PyPI\n"


def test_the_schema_step_fails_without_schemas(tmp_path: Path) -> None:
    flow = yaml.safe_load(scaffold.render_files("cischema")[".github/workflows/test.yml"])
    [schemas] = [s for s in flow["jobs"]["test"]["steps"] if "apt-get" in s.get("run", "")]
    assert f"test -f {SCHEMA}" in schemas["run"]
    missing = schemas["run"].replace(SCHEMA, str(tmp_path / "domain.rng"))
    assert run_step(missing, tmp_path, {"PATH": os.environ["PATH"]}).returncode == 1
