"""Architecture rules, checked on the source: plugins use the public API only; the core never
imports its own command line (except the API facade, which hands CLI helpers to plugins)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "src" / "virtscenario"
PLUGINS = sorted((ROOT / "plugins").glob("*/src/*"))


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, relative imports resolved against ``package``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names if module == "virtscenario")
    return out


def test_plugins_import_only_the_public_api():
    assert PLUGINS, "no plugin sources found"
    offenders = []
    for src in PLUGINS:
        for path in src.rglob("*.py"):
            package = ".".join(path.relative_to(src.parent).with_suffix("").parts[:-1])
            for module in imported_modules(path, package):
                if module.startswith("virtscenario") and not module.startswith(src.name) \
                        and module not in ("virtscenario.api",):
                    offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == [], "plugins may import only virtscenario.api:\n" + "\n".join(offenders)


def test_core_modules_never_import_the_cli():
    offenders = []
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE.parent)
        if rel.parts[1] == "cli" or rel.name in ("api.py", "__main__.py"):
            continue
        package = ".".join(rel.with_suffix("").parts[:-1])
        for module in imported_modules(path, package):
            if module == "virtscenario.cli" or module.startswith("virtscenario.cli."):
                offenders.append(f"{rel}: {module}")
    assert offenders == [], "only the CLI and the API facade import virtscenario.cli:\n" + "\n".join(offenders)


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself: a private import is found, relative imports are resolved."""
    bad = tmp_path / "mod.py"
    bad.write_text("from virtscenario.domain import model\nfrom ..cli import app\nfrom virtscenario import api\n")
    found = imported_modules(bad, "virtscenario.domain")
    assert {"virtscenario.domain", "virtscenario.cli", "virtscenario.api"} <= found
