"""The README tells the truth: its commands, package lists, CLI overview, links and env vars."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
CLI = str(Path(sys.executable).parent / "virtscenario")


def _blocks(lang: str = "") -> list[str]:
    """Fenced code blocks (info string == lang), in order."""
    blocks, current, info = [], None, ""
    for line in README.splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == lang:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _first_screen_commands() -> list[str]:
    first = _blocks("sh")[0]
    return [line.strip() for line in first.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_first_screen_has_exactly_the_two_commands() -> None:
    head = "\n".join(README.splitlines()[:20])
    commands = _first_screen_commands()
    assert commands[0] in head and commands[1] in head, "the two commands must be on the first screen"
    assert len(commands) == 2
    assert commands[0].startswith("scripts/setup.sh && .venv/bin/virtscenario create desktop ")
    assert commands[1] == "scripts/test.sh"
    for script in ("scripts/setup.sh", "scripts/test.sh", "scripts/libvirtd.sh", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_main_job_command_works_without_a_daemon(tmp_path: Path) -> None:
    """The first command's CLI part, run exactly as written, in an empty directory."""
    argv = shlex.split(_first_screen_commands()[0].split("&&", 1)[1])
    assert argv[0] == ".venv/bin/virtscenario"
    out = tmp_path / argv[argv.index("--output") + 1]
    argv = [CLI, *argv[1:]]
    # An unreachable URI in the environment proves no daemon is asked.
    env = dict(os.environ, LIBVIRT_DEFAULT_URI="qemu+unix:///system?socket=/nonexistent")
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name = argv[argv.index("--name") + 1]
    assert (out / name / "domain.xml").is_file() and (out / name / "vm.yaml").is_file()
    # libvirt needs absolute paths, also when --output is relative.
    from lxml import etree
    for source in etree.parse(str(out / name / "domain.xml")).iterfind("devices/disk/source"):
        assert Path(source.get("file")).is_absolute()
    assert f"Created {name} (scenario desktop" in proc.stdout and "\nNext: " in proc.stdout


def _setup_packages() -> dict[str, tuple[list[str], list[str]]]:
    out = {}
    for family in ("debian", "suse", "fedora"):
        block = re.search(rf"\n    {family}\)\n(.*?);;", SETUP, re.S).group(1)
        base = re.search(r"BASE=\(([^)]*)\)", block).group(1).split()
        daemon = re.search(r"DAEMON=\(([^)]*)\)", block).group(1).split()
        out[family] = (base, daemon)
    return out


@pytest.mark.parametrize("family,label", [("debian", "Debian / Ubuntu"), ("suse", "openSUSE / SLES"),
                                          ("fedora", "Fedora / RHEL")])
def test_package_table_matches_setup_script(family: str, label: str) -> None:
    row = next(line for line in README.splitlines() if line.startswith(f"| **{label}**"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    base, daemon = _setup_packages()[family]
    assert cells[1].strip("`").split() == base
    assert cells[2].strip("`").split() == daemon


def test_command_overview_is_generated_from_the_click_tree() -> None:
    """Both directions: every command of the tree is in the README, and nothing else is.

    The block is regenerated from the click tree (built-in commands and the built-in plugins'
    ones) and compared; ``python -m virtscenario.cli.overview --write README.md`` updates it.
    """
    from virtscenario.cli.app import cli
    from virtscenario.cli.overview import BEGIN, END, leaves, update
    assert README.count(BEGIN) == 1 and README.count(END) == 1
    assert update(README, cli) == README, \
        "README command overview is stale: run python -m virtscenario.cli.overview --write README.md"
    region = README.split(BEGIN, 1)[1].split(END, 1)[0]
    for path, _command in leaves(cli):
        assert f"\nvirtscenario {' '.join(path)} " in region or f"\nvirtscenario {' '.join(path)}\n" in region
    assert len(list(leaves(cli))) >= 25


def test_command_overview_generator_sees_a_new_command() -> None:
    """The comparison can fail: a command added to the tree changes the generated block."""

    from virtscenario.cli.overview import overview

    @click.group()
    def root() -> None:
        """Root."""

    @root.command("frob")
    @click.argument("name")
    @click.option("--level", type=int, metavar="N", multiple=True)
    def frob(name: str, level: tuple[int, ...]) -> None:
        """Frob NAME."""

    assert "virtscenario frob NAME [--level N]...\n# Frob NAME.\n" in overview(root)


def test_documented_environment_variables_exist() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                        for base in ("core/src", "plugins", "scripts")
                        for p in (ROOT / base).rglob("*") if p.suffix in (".py", ".sh"))
    names = set(re.findall(r"`(VIRTSCENARIO_[A-Z_]+)=", README))
    assert len(names) >= 6
    for name in names:
        assert name in sources, f"README documents {name}, which no code reads"


def test_relative_links_exist() -> None:
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell: str) -> None:
    env = dict(os.environ, _VIRTSCENARIO_COMPLETE=f"{shell}_source")
    proc = subprocess.run([CLI], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "_VIRTSCENARIO_COMPLETE" in proc.stdout
    assert f"_VIRTSCENARIO_COMPLETE={shell}_source" in README


def test_completion_offers_scenario_names() -> None:
    env = dict(os.environ, _VIRTSCENARIO_COMPLETE="bash_complete", COMP_WORDS="virtscenario create de",
               COMP_CWORD="2")
    proc = subprocess.run([CLI], env=env, capture_output=True, text=True, timeout=60)
    assert "desktop" in [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]


def test_layout_map_names_every_section_and_its_keys() -> None:
    """A newcomer finds the module owning a key from the README: every section module is listed
    with the key prefixes it owns."""
    from virtscenario.domain.sections import SECTIONS
    block = README[README.index("## Where things live"):README.index("## Documentation")]
    for section in SECTIONS:
        name = section.__name__.rsplit(".", 1)[1]
        assert f"{name}.py" in block, f"README's layout map does not list sections/{name}.py"
        entry = block[block.index(f"{name}.py"):]
        entry = entry[:entry.index(".py", len(name) + 3)] if ".py" in entry[len(name) + 3:] else entry
        for spec in section.SPECS:
            prefix = spec.key.split(".")[0] + "."
            assert spec.key in entry or f"{prefix}*" in entry or f"{spec.key.rsplit('_', 1)[0]}_*" in entry, \
                f"README's entry for sections/{name}.py does not name {spec.key} (or {prefix}*)"
