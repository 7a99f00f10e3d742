"""The README's shell session is what the shell prints, and the shell costs the CLI nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from virtscenario.cli.shell.repl import Leave, Shell

ROOT = Path(__file__).resolve().parents[2]
PROMPT = re.compile(r"^virtscenario( \S+)?> (.*)$")


def _session() -> list[tuple[str, str, list[str]]]:
    """(prompt, line, the output lines the README shows for it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Interactive shell"):]
    block = section[section.index("```text\n") + 8:section.index("\n```", section.index("```text\n"))]
    steps: list[tuple[str, str, list[str]]] = []
    for text in block.splitlines()[1:]:  # after '$ .venv/bin/virtscenario shell'
        match = PROMPT.match(text)
        if match:
            steps.append((text[:len(text) - len(match.group(2))], match.group(2), []))
        else:
            steps[-1][2].append(text)
    return steps


def test_readme_session_is_true(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")  # the width the README's table was printed at
    shell = Shell(chatty=True)
    steps = _session()
    assert [s[1] for s in steps][-1] == "exit" and len(steps) >= 6
    for prompt, line, shown in steps:
        assert shell.prompt() == prompt
        if line == "exit":
            with pytest.raises(Leave):
                shell.execute(line)
            continue
        outcome = shell.execute(line)
        assert outcome.ok, outcome.message
        out = capsys.readouterr().out.replace(str(tmp_path), "/home/me").splitlines()
        expected = [s for s in shown if s != "..."]
        if "..." in shown:
            assert out[:len(expected)] == expected, line
        else:
            assert out == expected, line
    assert (tmp_path / "vms" / "demo" / "domain.xml").is_file()


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["create", "desktop", "--name", "x", "--print-xml"]])
def test_the_cli_never_imports_prompt_toolkit(args: list[str]) -> None:
    code = ("import sys\nfrom virtscenario.cli.app import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('prompt_toolkit', 'virtscenario.cli.shell'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
