"""Run one command line in-process through the click group, the way ``virtscenario`` would.

Unlike :func:`virtscenario.cli.app.main`, nothing here exits the process: every failure
becomes an exit status and one message, which the shell prints as one line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import click

from ...errors import VirtscenarioError


@dataclass(frozen=True)
class Outcome:
    """What a line did: its exit status and, when it failed, the one-line reason (None: already said)."""

    code: int
    message: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.code == 0


def exit_code(value: object) -> int:
    """SystemExit/ctx.exit codes: None is success, an int is itself, anything else (a message) is 1."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int) else 1


def run_cli(args: list[str], debug: bool = False) -> Outcome:
    """``virtscenario ARGS`` in this process; never raises (Ctrl-C included)."""
    from ..app import cli
    try:
        code = cli.main(args=list(args), prog_name="virtscenario", standalone_mode=False)
        return Outcome(code if isinstance(code, int) and not isinstance(code, bool) else 0)
    except click.exceptions.Exit as exc:
        return Outcome(exc.exit_code)
    except click.exceptions.Abort:
        return Outcome(130, "aborted")
    except click.UsageError as exc:
        where = exc.ctx.command_path.replace("virtscenario ", "", 1) if exc.ctx else ""
        hint = f" (see '{where} --help')" if where and where != "virtscenario" else ""
        return Outcome(exc.exit_code, one_line(exc.format_message()) + hint)
    except click.ClickException as exc:
        return Outcome(exc.exit_code, one_line(exc.format_message()))
    except VirtscenarioError as exc:
        return Outcome(getattr(exc, "exit_code", 1), failure(exc, debug))
    except SystemExit as exc:  # a command that exits with a status after printing its own report
        return Outcome(exit_code(exc.code), exc.code if isinstance(exc.code, str) else None)
    except KeyboardInterrupt:
        return Outcome(130, "interrupted")
    except BrokenPipeError:  # our own stdout is gone: nothing more to say, the caller stops
        raise
    except Exception as exc:  # noqa: BLE001 - the shell survives anything a command does
        return Outcome(1, failure(exc, debug, internal=True))


def failure(exc: BaseException, debug: bool, internal: bool = False) -> str:
    """One line for ``exc``; with --debug the traceback goes to stderr first."""
    if debug:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text = one_line(str(exc))
    if internal:
        return f"internal error: {type(exc).__name__}: {text[:300]} (run with --debug for a traceback)"
    return text


def one_line(text: str) -> str:
    """The first non-empty line of ``text`` (click messages can span several)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())
