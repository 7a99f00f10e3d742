"""Fixtures for the SDK tests.

The two third-party plugins are not installed by the default setup: the
in-process unit tests import them from their source trees and register them with
virtscenario.testing's fixtures, exactly as a plugin author's tests would. The
tests that need real installs build wheels into fresh venvs (tests/sdk/venvs.py).
"""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from .venvs import PLUGINS, Venv, make_venv

for _src in (PLUGINS / "scenario_softrt" / "src", PLUGINS / "scenario_migration" / "src"):
    if str(_src) not in sys.path:
        sys.path.insert(0, str(_src))


@pytest.fixture(scope="session")
def author_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    """A fresh venv with the core (built from this repository) and pytest, as a plugin author has.

    Shared by the scaffold and tutorial tests; each removes what it installs.
    """
    venv = make_venv(tmp_path_factory.mktemp("author") / "venv")
    yield venv


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli(*args) -> (exit code, stdout, stderr)``: the real entry point, in-process, installed plugins."""
    from virtscenario.cli.app import main

    def invoke(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return invoke
