"""docs/writing-plugins.md: every fenced block is executed or checked, in order.

Block kinds (the first word of the info string is the language GitHub renders):

* ``console``: lines starting with ``$ `` are commands (argv, no shell; leading
  ``NAME=value`` words set environment variables; ``cd DIR`` changes directory).
  The lines after a command are its expected output: each must appear, in order,
  in stderr followed by stdout, with runs of whitespace compared as one space and
  ``...`` matching anything. A command whose expected output has an ``Error:`` line
  must exit 1, any other must exit 0.
* ``python file=PATH`` (any language): write the block to PATH.
* ``python verbatim=PATH``: PATH (as generated) must be exactly the block.
* ``toml excerpt=PATH``: every line of the block appears in PATH, in order.

Any other block fails the test, so nothing on the page goes unchecked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from .venvs import REPO, Venv

DOC = REPO / "docs" / "writing-plugins.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.M | re.S)


@dataclass
class Block:
    info: str
    body: str
    line: int

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    def option(self, name: str) -> str | None:
        for word in self.info.split()[1:]:
            key, _eq, value = word.partition("=")
            if key == name:
                return value
        return None


def blocks(text: str) -> list[Block]:
    return [Block(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _norm(text: str) -> str:
    return " ".join(text.split())


def expect_lines(output: str, expected: list[str], where: str) -> None:
    lines = [_norm(line) for line in output.splitlines()]
    pos = 0
    for want in expected:
        if not want.strip() or want.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in _norm(want).split("...")))
        for index in range(pos, len(lines)):
            if pattern.search(lines[index]):
                pos = index + 1
                break
        else:
            raise AssertionError(f"{where}: expected line {want!r} not found (in order) in:\n{output}")


def run_console(venv: Venv, block: Block, state: dict[str, Path]) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"line {block.line}: output before any command"
            commands[-1][1].append(line)
    for command, expected in commands:
        where = f"docs line {block.line}: $ {command}"
        words = shlex.split(command)
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, _eq, value = words.pop(0).partition("=")
            env[key] = value
        if words[0] == "cd":
            state["cwd"] = (state["cwd"] / words[1]).resolve()
            continue
        proc = venv.run(words, cwd=state["cwd"], env=venv.env(**env), timeout=600)
        wants_error = any(line.startswith("Error:") for line in expected)
        assert proc.returncode == (1 if wants_error else 0), \
            f"{where}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        expect_lines(proc.stderr + "\n" + proc.stdout, expected, where)


def test_every_block_of_the_tutorial_works(author_venv: Venv, tmp_path: Path) -> None:
    found = blocks(DOC.read_text())
    assert len(found) >= 10
    state = {"cwd": tmp_path}
    try:
        for block in found:
            target = block.option("file") or block.option("verbatim") or block.option("excerpt")
            if block.kind == "console":
                run_console(author_venv, block, state)
            elif block.option("file"):
                path = state["cwd"] / target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block.body)
            elif block.option("verbatim"):
                assert (state["cwd"] / target).read_text() == block.body, f"docs line {block.line}: {target} differs"
            elif block.option("excerpt"):
                expect_lines((state["cwd"] / target).read_text(), block.body.splitlines(), f"docs line {block.line}")
            else:
                pytest.fail(f"docs line {block.line}: block {block.info!r} is neither run nor checked")
    finally:
        author_venv.run(["pip", "uninstall", "-y", "virtscenario-lab"])


def test_links_resolve() -> None:
    text = DOC.read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert "plugin-hooks.md" in links
    for link in links:
        if "://" not in link:
            assert (DOC.parent / link).exists(), link
    assert "writing-plugins.md" in (DOC.parent / "plugin-hooks.md").read_text()


def test_the_runner_can_fail() -> None:
    with pytest.raises(AssertionError, match="not found"):
        expect_lines("a\nb c\n", ["b   c", "a"], "test")
    expect_lines("Note: x\n<domain type=\"kvm\">\n  <name>y</name>\n", ["x", "...", "<name>...</name>"], "test")
