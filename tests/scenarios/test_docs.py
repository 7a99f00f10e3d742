"""docs/scenarios.md is the output of ``virtscenario scenarios compare --format markdown``.

It replaces upstream's hand-written DEFAULT_SETTINGS.md, so it must never drift: this
test runs the installed command (the built-in plugins only, whatever else is
installed) and compares. Regenerate with
``VIRTSCENARIO_REGEN_DOCS=1 pytest tests/scenarios/test_docs.py`` or
``.venv/bin/virtscenario scenarios compare --format markdown > docs/scenarios.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"
REGEN = os.environ.get("VIRTSCENARIO_REGEN_DOCS") == "1"


def _cli(*args: str, env: dict[str, str]) -> str:
    script = Path(sys.executable).with_name("virtscenario")
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "virtscenario"]
    result = subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_docs_scenarios_md_is_current() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTSCENARIO_")}
    plugins = json.loads(_cli("plugins", "list", "--json", env=env))
    active = {p["name"] for p in plugins if p["status"] == "active"}
    assert {"desktop", "computation", "securevm", "testing"} <= active, \
        "the scenario plugins are not installed: pip install -e plugins/scenario_{desktop,computation,securevm,testing}"
    third_party = [p["name"] for p in plugins if not p["builtin"]]
    if third_party:
        env["VIRTSCENARIO_DISABLE_PLUGINS"] = ",".join(third_party)
    expected = _cli("scenarios", "compare", "--format", "markdown", env=env)
    if REGEN:
        DOC.write_text(expected)
    assert DOC.is_file(), f"{DOC} is missing: VIRTSCENARIO_REGEN_DOCS=1 writes it"
    assert DOC.read_text() == expected, \
        "docs/scenarios.md is stale: regenerate it with `virtscenario scenarios compare --format markdown`"
    assert "| setting | computation | desktop | securevm | testing |" in expected
