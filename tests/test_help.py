"""Every command's --help ends with two or three real examples, and each example parses.

"Real" is checked by click itself: each example is parsed against the command it names
(every option exists, takes the right number of values, required arguments are there),
and the one thing not checked is that a file named in an example exists here.
"""

from __future__ import annotations

import shlex
from typing import Iterator

import click
import pytest
from click.testing import CliRunner
from virtscenario.cli.app import cli


def _commands(group: click.Group, path: tuple[str, ...] = (), parent: click.Context | None = None
              ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group, info_name=path[-1] if path else "virtscenario", parent=parent)
    yield path, group
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name), ctx)
        else:
            yield (*path, name), command


COMMANDS = list(_commands(cli))


def test_the_tree_is_walked() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    # built-ins, a built-in plugin's subcommands, nested groups
    assert {"", "create", "host", "host apply", "hosts place", "plugin check", "network create"} <= names


def _examples(path: tuple[str, ...]) -> list[str]:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == "Examples:"]
    assert marks, f"'virtscenario {' '.join(path)} --help' has no Examples: block"
    tail = lines[marks[-1] + 1:]
    assert tail and all(line.startswith("    ") and "virtscenario " in line for line in tail), \
        f"'{' '.join(path)} --help' does not end with its examples: {tail}"
    return [line.strip() for line in tail]


def _command_part(example: str) -> str:
    """The virtscenario command of a shell line: ``printf .. | virtscenario shell > x`` -> ``virtscenario shell``."""
    text = example[example.index("virtscenario "):]
    for stop in (" | ", " > ", " < ", " && "):
        text = text.split(stop, 1)[0]
    return text


def _rest(ctx: click.Context) -> list[str]:
    """What a group left for its subcommand (click keeps the subcommand's name apart)."""
    return [*getattr(ctx, "_protected_args", []), *ctx.args]


def _parse(example: str) -> tuple[tuple[str, ...], click.Command]:
    """Parse ``example`` as click would run it; return the command path it names."""
    words = shlex.split(_command_part(example))[1:]
    ctx = cli.make_context("virtscenario", list(words), resilient_parsing=False)
    words = _rest(ctx)
    path: list[str] = []
    command: click.Command = cli
    while isinstance(command, click.Group):
        assert words, f"{example!r} names a group, not a command"
        name, words = words[0], words[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{example!r}: no command {name!r}"
        path.append(name)
        command = sub
        try:
            ctx = command.make_context(name, list(words), parent=ctx)
        except click.BadParameter as exc:
            # A file or directory an example names need not exist on this machine.
            assert isinstance(getattr(exc.param, "type", None), click.Path) and "does not exist" in str(exc), \
                f"{example!r}: {exc.format_message()}"
            return tuple(path), command
        if isinstance(command, click.Group):
            words = _rest(ctx)
    return tuple(path), command


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "virtscenario")
def test_help_ends_with_two_or_three_examples_that_parse(path: tuple[str, ...]) -> None:
    examples = _examples(path)
    assert 2 <= len(examples) <= 3, f"{' '.join(path)}: {len(examples)} examples"
    for example in examples:
        named, _ = _parse(example)
        assert named[:len(path)] == path, f"{example!r} is not an example of '{' '.join(path)}'"


def test_a_wrong_example_is_caught() -> None:
    """The checker itself can fail: an unknown option, a missing argument, an unknown command."""
    for bad in ("virtscenario list --bogus", "virtscenario show", "virtscenario nosuch",
                "virtscenario host plan desktop --vm"):
        with pytest.raises((click.UsageError, AssertionError)):
            _parse(bad)
