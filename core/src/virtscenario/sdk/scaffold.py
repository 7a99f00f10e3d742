"""``virtscenario plugin new NAME``: generate a plugin distribution that installs and passes its tests."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template
from typing import Optional

from .. import API_VERSION, __version__
from ..errors import ConfigError

#: NAME becomes the scenario name, the entry-point name and the module ``virtscenario_NAME``,
#: so it must be a lower-case Python identifier (and fit the scenario-name limit of 40).
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: template file -> path in the generated project (``$module`` is substituted).
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "module.py.tmpl": "src/$module/__init__.py",
    "test_plugin.py.tmpl": "tests/test_$name.py",
    "ci.yml.tmpl": ".github/workflows/test.yml",
}


#: The scenarios of the built-in distributions.
BUILTIN_SCENARIOS = frozenset({"desktop", "computation", "securevm"})
#: Names the distributions of this repository already use (scenario, entry point, module).
TAKEN = BUILTIN_SCENARIOS | frozenset({"host_tuning", "testing", "softrt", "migration", "core_rules", "core_choices",
                                       "api", "plugin", "cli", "sdk"})


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"plugin name {name[:60]!r} must be lower-case letters, digits and underscores, starting "
                          "with a letter, at most 40 characters (it names the scenario and the module "
                          "virtscenario_NAME)")
    if name in TAKEN:
        raise ConfigError(f"plugin name {name!r} is taken by virtscenario's own distributions (its scenario, entry "
                          "point or module would clash): choose another")
    return name


def check_not_installed(name: str) -> None:
    """Refuse a name an installed distribution already uses: its distribution, entry point or module."""
    import importlib.util
    from importlib import metadata

    from ..plugin.discovery import entry_points
    from ..plugin.manager import ENTRY_POINT_GROUP
    dist = f"virtscenario-{name}"
    try:
        found = f"distribution {dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        found = ""
    if not found:
        owner = next((ep for ep in entry_points(ENTRY_POINT_GROUP) if ep.name == name), None)
        found = f"the plugin {name!r} of {owner.dist_name} {owner.dist_version}".rstrip() if owner else ""
    if not found and importlib.util.find_spec(f"virtscenario_{name}") is not None:
        found = f"the module virtscenario_{name}"
    if found:
        raise ConfigError(f"plugin name {name!r} is taken: {found} is installed, and two plugins of one name "
                          "clash (scenario, entry point, module); choose another")


def install_hint(path: Path) -> str:
    """The one way to install a new plugin for development, as every message and document says it."""
    return f"pip install -e '{path}[test]' && cd '{path}' && pytest"


def core_source() -> str:
    """Where CI can install this core from: the PEP 610 record of a VCS install (``pip install
    git+URL``), else ``""`` (a wheel or a local directory exists only on this machine)."""
    import json
    from importlib import metadata
    try:
        text = metadata.distribution("virtscenario").read_text("direct_url.json")
        data = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, ValueError):
        return ""
    vcs = data.get("vcs_info") if isinstance(data, dict) else None
    if not vcs or not data.get("url"):
        return ""
    spec = f"virtscenario @ {vcs.get('vcs', 'git')}+{data['url']}"
    if vcs.get("commit_id"):
        spec += f"@{vcs['commit_id']}"
    if data.get("subdirectory"):
        spec += f"#subdirectory={data['subdirectory']}"
    return spec


def check_source(source: str) -> str:
    if any(c in source for c in "'\n\r"):
        raise ConfigError("--core-source must be one line without quotes (a pip requirement or a path)")
    return source.strip()


def _core_range() -> str:
    """The dependency a plugin declares: this core's minor version up to the next major."""
    major, minor = (int(p) for p in __version__.split(".")[:2])
    return f"virtscenario>={major}.{minor},<{major + 1}"


def render_files(name: str, source: str = "") -> dict[str, str]:
    """Relative path -> content of every file of the generated project.

    ``source`` is the pip requirement CI installs the core from (see :func:`core_source`).
    """
    from importlib.resources import files
    check_name(name)
    values = {
        "name": name,
        "module": f"virtscenario_{name}",
        "dist": f"virtscenario-{name}",
        "requirement": _core_range(),
        "api": f"({API_VERSION[0]}, {API_VERSION[1]})",
        "core_source": check_source(source),
    }
    templates = files("virtscenario.sdk") / "templates"
    out: dict[str, str] = {}
    for template, target in FILES.items():
        text = (templates / template).read_text(encoding="utf-8")
        out[Template(target).substitute(values)] = Template(text).substitute(values)
    return out


def scaffold(name: str, directory: Optional[str] = None, source: Optional[str] = None) -> Path:
    """Write the project into ``directory`` (default ``./virtscenario-NAME``); never overwrite.

    ``source``: where the generated CI installs the core from (default: :func:`core_source`).
    The files are written to a temporary sibling directory that is renamed into
    place at the end, so a failure leaves nothing half-written.
    """
    check_name(name)
    check_not_installed(name)
    contents = render_files(name, core_source() if source is None else source)
    target = Path(directory or f"virtscenario-{name}").expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; choose another --dir")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent}: no such directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for rel, text in contents.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; a project directory is a normal one
        if target.exists():
            target.rmdir()  # empty (checked above): replaced by the staged tree
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
