"""Fresh virtual environments holding the core, for tests that install real distributions.

Sources are copied to a temporary directory before building, so no ``build/`` or
``*.egg-info`` lands in the repository. Wheels are built without build isolation
inside the venv (which gets setuptools and wheel), which is much faster than an
isolated build per project (PIP_NO_BUILD_ISOLATION=0 in the commands' environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core"
PLUGINS = REPO / "plugins"
DATA = Path(__file__).resolve().parent / "data"
_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


def copy_project(src: Path, dest_root: Path) -> Path:
    dest = dest_root / src.name
    shutil.copytree(src, dest, ignore=_IGNORE)
    return dest


@dataclass
class Venv:
    path: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VIRTSCENARIO_", "PYTHON", "PYTEST")) and k != "VIRTUAL_ENV"}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        # Builds use this venv's setuptools and wheel instead of downloading them into an
        # isolated build environment for every project (pip reads "0" as "no isolation").
        env["PIP_NO_BUILD_ISOLATION"] = "0"
        env.update(extra)
        return env

    def run(self, args: Sequence[str], cwd: Optional[Path] = None, check: bool = False, timeout: float = 300,
            env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
        """Run a command with this venv first on PATH (argv list, no shell)."""
        exe = args[0]
        if (self.bin / exe).exists():
            exe = str(self.bin / exe)
        proc = subprocess.run([exe, *args[1:]], cwd=cwd, env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "pip", *args, "--disable-pip-version-check"], check=True, timeout=600)

    def virtscenario(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(["virtscenario", *args], env=self.env(**env))

    def build_wheels(self, projects: Sequence[Path], workdir: Path) -> dict[str, Path]:
        """Build a wheel of each project (copied first); project dir name -> wheel path."""
        out = workdir / "wheels"
        out.mkdir(parents=True, exist_ok=True)
        src = workdir / "src"
        src.mkdir(parents=True, exist_ok=True)
        copies = [copy_project(p, src) for p in projects]
        before = set(out.glob("*.whl"))
        self.pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), *map(str, copies))
        built = sorted(set(out.glob("*.whl")) - before)
        by_project = {}
        for project in projects:
            dist = project.name
            stem = _dist_name(project).replace("-", "_")
            match = [w for w in built if w.name.startswith(stem + "-")]
            assert len(match) == 1, f"no single wheel for {dist} in {[w.name for w in built]}"
            by_project[dist] = match[0]
        return by_project


def _dist_name(project: Path) -> str:
    import tomllib
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]


def make_venv(path: Path, extra: Sequence[str] = ("pytest",)) -> Venv:
    """A new venv with pip, setuptools and wheel (for builds), the core built from this
    repository as a wheel (not editable), and ``extra`` packages."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
    venv = Venv(path)
    venv.pip("install", "-q", "setuptools>=64", "wheel", *extra)
    venv.timings["venv"] = time.monotonic() - started
    started = time.monotonic()
    wheel = venv.build_wheels([CORE], path.parent / f"{path.name}-build")[CORE.name]
    venv.pip("install", "-q", str(wheel))
    venv.timings["core"] = time.monotonic() - started
    return venv
