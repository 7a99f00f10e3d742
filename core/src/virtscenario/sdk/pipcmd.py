"""``virtscenario plugins install/uninstall``: pip for the environment virtscenario runs in.

pip runs as ``[sys.executable, "-m", "pip", ...]`` (an argv list, no shell), so a
plugin lands next to the core that will load it, whichever venv or pipx
environment that is. A distribution's Python marked externally managed (PEP 668)
is refused with one line pointing to pipx or a venv.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, VirtscenarioError

CORE_DISTRIBUTION = "virtscenario"


def externally_managed(prefix: Optional[str] = None, base_prefix: Optional[str] = None,
                       stdlib: Optional[str] = None) -> Optional[Path]:
    """The PEP 668 marker that forbids pip here, or None.

    PEP 668: the marker is ``EXTERNALLY-MANAGED`` in the stdlib directory, and it
    does not apply inside a virtual environment (``sys.prefix != sys.base_prefix``).
    """
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    if prefix != base_prefix:
        return None
    marker = Path(stdlib or sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
    return marker if marker.is_file() else None


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if not name.strip() or name.startswith("-"):
            raise ConfigError(f"{name!r} is not a plugin name (give distribution names such as virtscenario-softrt)")


def _refuse_if_managed(action: str, names: Sequence[str]) -> None:
    marker = externally_managed()
    if marker is None:
        return
    joined = " ".join(names) or "NAME"
    raise VirtscenarioError(
        f"{sys.executable} is externally managed (PEP 668, {marker}), so pip may not {action} here: "
        f"if virtscenario came from pipx run 'pipx {'inject' if action == 'install' else 'uninject'} "
        f"virtscenario {joined}', otherwise install virtscenario in a venv "
        f"('python3 -m venv ~/.venvs/virtscenario && ~/.venvs/virtscenario/bin/pip install virtscenario {joined}')")


def _pip(args: list[str]) -> int:
    if importlib.util.find_spec("pip") is None:
        raise VirtscenarioError(f"pip is not available for {sys.executable} (run '{sys.executable} -m ensurepip', "
                                "or use 'pipx inject virtscenario NAME')")
    return subprocess.run([sys.executable, "-m", "pip", *args], check=False).returncode


def install(names: Sequence[str], upgrade: bool = False, editables: Sequence[str] = ()) -> None:
    """pip install NAMES (and ``-e`` paths) into this environment; raise on failure."""
    if not names and not editables:
        raise ConfigError("give at least one plugin to install (a distribution name, a wheel, or -e PATH)")
    _check_names(names)
    _refuse_if_managed("install", [*names, *editables])
    args = ["install"]
    if upgrade:
        args.append("--upgrade")
    for path in editables:
        args += ["--editable", str(Path(path).expanduser().absolute())]
    args += list(names)
    code = _pip(args)
    if code:
        raise VirtscenarioError(f"pip install failed (exit {code}); nothing else was changed")


def uninstall(names: Sequence[str], yes: bool = False) -> None:
    """pip uninstall NAMES from this environment; the core itself is refused."""
    _check_names(names)
    core = [n for n in names if n.lower().replace("_", "-").split("[")[0] == CORE_DISTRIBUTION]
    if core:
        raise ConfigError("refusing to uninstall virtscenario itself from its own command "
                          "(use pip or pipx directly)")
    _refuse_if_managed("uninstall", names)
    code = _pip(["uninstall", *(["--yes"] if yes else []), *names])
    if code:
        raise VirtscenarioError(f"pip uninstall failed (exit {code})")
