"""The linters the project is held to: ruff on everything, mypy on the core (pinned by scripts/setup.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    assert exe.is_file(), f"{tool} is not installed in {BIN}: run scripts/setup.sh --tests"
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean():
    result = run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_core():
    result = run("mypy")  # files and options come from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
