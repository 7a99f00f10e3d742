"""The shell: one line at a time, from a terminal (prompt_toolkit) or from a script on stdin.

prompt_toolkit gives line editing, TAB completion, history and Ctrl-C/Ctrl-D handling
without readline code of our own, and is only imported when the shell runs on a terminal.
"""

from __future__ import annotations

import difflib
import os
import shlex
import sys
from typing import Any, Callable, Optional

import click

from ... import __version__
from ...errors import ConfigError, UsageError, VirtscenarioError
from .guided import ALIASES, SHELL_COMMANDS, UPSTREAM_ONLY, VERBS, GuidedState
from .runner import Outcome, failure, run_cli

BANNER = (f"virtscenario {__version__} shell: TAB completes, 'help' lists the commands, 'use SCENARIO' starts "
          "the guided flow, Ctrl-D leaves.")


class Leave(Exception):
    """``exit``/``quit``: end the session."""


class Shell:
    """Runs lines: the shell's own words (guided flow, help, exit) or virtscenario commands."""

    def __init__(self, global_args: Optional[list[str]] = None, debug: bool = False, chatty: bool = True) -> None:
        self.state = GuidedState()
        self.global_args = list(global_args or [])
        self.debug = debug
        self.chatty = chatty  # confirmations of set/use/...: on a terminal only (a script's stdout stays clean)
        self._catalog: Any = None

    def catalog(self) -> Any:
        if self._catalog is None:
            from ...plugin.hooks import Catalog
            self._catalog = Catalog()
        return self._catalog

    def prompt(self) -> str:
        s = self.state
        return f"virtscenario {s.scenario}/{s.vm_name}> " if s.scenario else "virtscenario> "

    def say(self, text: str) -> None:
        if self.chatty:
            click.echo(text)

    # -- one line --------------------------------------------------------------------------------
    def execute(self, line: str) -> Outcome:
        """Run one line. Never raises, except :class:`Leave`."""
        if not line.strip() or line.lstrip().startswith("#"):
            return Outcome(0)
        try:
            words = shlex.split(line)
        except ValueError as exc:  # "No closing quotation"
            return Outcome(2, f"cannot split the line into words: {exc}")
        try:
            return self._dispatch(ALIASES.get(words[0], words[0]), words[1:], words)
        except Leave:
            raise
        except UsageError as exc:
            return Outcome(2, str(exc))
        except VirtscenarioError as exc:
            return Outcome(getattr(exc, "exit_code", 1), failure(exc, self.debug))
        except KeyboardInterrupt:
            return Outcome(130, "interrupted")
        except BrokenPipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - no line may end the shell
            return Outcome(1, failure(exc, self.debug, internal=True))

    def cli(self, args: list[str]) -> Outcome:
        return run_cli(self.global_args + args, self.debug)

    def _dispatch(self, head: str, args: list[str], words: list[str]) -> Outcome:
        own: dict[str, Callable[[list[str]], Outcome]] = {
            "exit": self._exit, "help": self._help, "use": self._use, "set": self._set, "unset": self._unset,
            "show": self._show, "xml": self._xml, "name": self._name, "bootdev": self._bootdev}
        if head in own:
            return own[head](args)
        if head == "create" and self._guided_create(args):
            return self.cli(["create", *self.state.create_args(), *args])
        if head in VERBS:
            return self._verb(head, args)
        if head == "shell" or head.startswith("!"):
            raise ConfigError("you are in virtscenario's shell already; it runs virtscenario commands only "
                              "(upstream's 'shell' and '!' ran system commands)")
        if head in UPSTREAM_ONLY:
            raise ConfigError(f"{head!r} is upstream virt-scenario's: {UPSTREAM_ONLY[head]}")
        if head.startswith("-") or self._is_command(head):
            return self.cli(words)
        if head in self.catalog().scenarios:
            raise ConfigError(f"{head!r} is a scenario: 'use {head}' then 'create' (or 'create {head} --name NAME')")
        known = sorted({*SHELL_COMMANDS, *VERBS, *ALIASES, *self._commands()})
        close = difflib.get_close_matches(head, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; 'help' lists the commands"
        raise UsageError(f"unknown command {head[:60]!r}{hint}")

    # -- the shell's own words ---------------------------------------------------------------------
    def _exit(self, args: list[str]) -> Outcome:
        raise Leave()

    def _use(self, args: list[str]) -> Outcome:
        name = _one(args, "use SCENARIO")
        provided = self.catalog().scenario(name)  # unknown: one line with the closest name
        self.state.scenario = name
        kept = len(self.state.settings) + len(self.state.options)
        self.say(f"Scenario {name}: {provided.scenario.summary}" +
                 (f" ({kept} value(s) set here are kept; 'unset all' forgets them)" if kept else ""))
        return Outcome(0)

    def _set(self, args: list[str]) -> Outcome:
        from .guided import set_key
        if len(args) == 1 and "=" in args[0]:
            key, _, value = args[0].partition("=")
        elif len(args) == 2:
            key, value = args
        else:
            raise UsageError("usage: set KEY VALUE (or set KEY=VALUE; quote a value with spaces)")
        self.say(set_key(self.state, self.catalog().registry, key.strip(), value))
        return Outcome(0)

    def _unset(self, args: list[str]) -> Outcome:
        from .guided import unset
        self.say(unset(self.state, self.catalog().registry, _one(args, "unset KEY|VERB|name|all")))
        return Outcome(0)

    def _show(self, args: list[str]) -> Outcome:
        from .guided import is_setting_prefix, show_text
        # `show PREFIX...` is the guided flow's; `show NAME [--json] [--connect URI]` is the CLI's
        # command for a VM in the store: options or a VM name that is no setting prefix pick it.
        setting = bool(args) and is_setting_prefix(self.catalog().registry, args[0])
        if args and not setting and not any(a.startswith("-") for a in args) and args[0] not in self._vm_names():
            raise UsageError(f"show {' '.join(args)}: no setting key starts with that (see 'settings'), "
                             "and no VM of that name is in the store ('list')")
        if args and not setting:
            given = {a.split("=", 1)[0] for a in args}
            carried = [w for option in ("--output", "--config", "--connect")
                       if option in self.state.options and option not in given
                       for w in (option, self.state.options[option])]
            return self.cli(["show", *args, *carried])
        click.echo(show_text(self.state, self.catalog(), args))
        return Outcome(0)

    def _vm_names(self) -> list[str]:
        from ...vm.store import list_vm_names
        from ..common import vm_store_of
        return list_vm_names(vm_store_of(self.state.options.get("--output"), self.state.options.get("--config")))

    def _xml(self, args: list[str]) -> Outcome:
        return self.cli(["create", *self.state.create_args(), "--print-xml", *args])

    def _name(self, args: list[str]) -> Outcome:
        from .guided import set_name
        if not args:
            click.echo(f"name = {self.state.vm_name or '(not set: the scenario names the VM)'}")
            return Outcome(0)
        self.say(set_name(self.state, _one(args, "name NAME")))
        return Outcome(0)

    def _bootdev(self, args: list[str]) -> Outcome:
        from .guided import boot_device
        self.say(boot_device(self.state, _one(args, "bootdev hd|cdrom")))
        return Outcome(0)

    def _verb(self, name: str, args: list[str]) -> Outcome:
        from .guided import apply_verb, current_value
        verb = VERBS[name]
        if not args:
            click.echo(current_value(self.state, verb))
            return Outcome(0)
        value = _one(args, f"{name} VALUE")
        self.say(apply_verb(self.state, self.catalog().registry, verb, value))
        return Outcome(0)

    def _guided_create(self, args: list[str]) -> bool:
        """``create`` without a scenario argument is the guided flow's; with one, the CLI's."""
        from ..app import cli
        command = cli.get_command(click.Context(cli), "create")
        return command is None or not has_positional(command, args)

    def _help(self, args: list[str]) -> Outcome:
        if not args:
            click.echo(help_text(self._commands_help()))
            return Outcome(0)
        name = ALIASES.get(args[0], args[0])
        if name in SHELL_COMMANDS:
            usage, meaning = SHELL_COMMANDS[name]
            click.echo(f"{usage}\n  {meaning}")
            if name == "create":
                click.echo("create SCENARIO --name NAME [OPTIONS]\n  the command line's create: 'create --help'")
            return Outcome(0)
        if name in VERBS:
            verb = VERBS[name]
            click.echo(f"{name} VALUE  ({verb.target})\n  {verb.meaning}; '{name}' alone shows the value")
            return Outcome(0)
        if self._is_command(name):
            return self.cli([*args, "--help"])
        raise UsageError(f"help {name!r}: no such command; 'help' lists them")

    # -- the CLI's commands ------------------------------------------------------------------------
    def _is_command(self, name: str) -> bool:
        from ..app import cli
        return cli.get_command(click.Context(cli), name) is not None

    def _commands(self) -> list[str]:
        from ..app import cli
        return [n for n in cli.list_commands(click.Context(cli)) if n != "shell"]

    def _commands_help(self) -> list[tuple[str, str]]:
        from ..app import cli
        ctx = click.Context(cli)
        out = []
        for name in self._commands():
            command = cli.get_command(ctx, name)
            out.append((name, command.get_short_help_str(70) if command else ""))
        return out


def has_positional(command: click.Command, args: list[str]) -> bool:
    """Whether ``args`` hold an argument (not an option or an option's value) for ``command``.

    click's resilient parsing stops at the first unknown option, so the words are read here
    with the command's own option table.
    """
    takes_value = {name: not (p.is_flag or p.count) for p in command.params if isinstance(p, click.Option)
                   for name in (*p.opts, *p.secondary_opts)}
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return i + 1 < len(args)
        if not word.startswith("-") or word == "-":
            return True
        if "=" not in word and takes_value.get(word, False):
            i += 1  # skip the option's value
        i += 1
    return False


def _one(args: list[str], usage: str) -> str:
    if len(args) != 1:
        raise UsageError(f"usage: {usage}" + (" (quote a value with spaces)" if len(args) > 1 else ""))
    return args[0]


def help_text(commands: list[tuple[str, str]]) -> str:
    rows = [("Guided flow (upstream virt-scenario's shell):", [SHELL_COMMANDS[n] for n in SHELL_COMMANDS]),
            ("Short verbs, upstream's plus output and connect ('VERB VALUE'; 'VERB' alone shows the value):",
             [(f"{v.name} VALUE", f"{v.target}: {v.meaning}") for v in VERBS.values()]),
            ("Every virtscenario command, as on the command line ('COMMAND --help'):", commands)]
    lines = []
    for title, items in rows:
        width = max(len(u) for u, _ in items)
        lines += [title] + [f"  {u.ljust(width)}  {m}" for u, m in items] + [""]
    lines.append("TAB completes commands, options, scenarios, setting keys and values, VM and host names.")
    return "\n".join(lines)


# -- the two ways to read lines ------------------------------------------------------------------------
def run_script(shell: Shell, text: str) -> int:
    """Lines of a script: stop at the first failing one with its status, naming the line."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            outcome = shell.execute(line)
        except Leave:
            return 0
        if not outcome.ok:
            reason = outcome.message or f"{line.strip()[:80]!r} exited with status {outcome.code}"
            click.echo(f"Error: line {number}: {reason}", err=True)
            return outcome.code
    return 0


def run_terminal(shell: Shell) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.shortcuts import CompleteStyle

    from .complete import Completer
    from .history import file_history, history_path
    history: Any = None
    try:
        history = file_history(history_path())
    except OSError as exc:
        click.echo(f"Warning: no history file ({history_path()}: {exc.strerror or exc}); history is kept "
                   "for this session only", err=True)
    session: Any = PromptSession(history=history, completer=_adapter(Completer(shell.state, shell.catalog)),
                                 complete_style=CompleteStyle.READLINE_LIKE, complete_while_typing=False)
    click.echo(BANNER)
    while True:
        try:
            line = session.prompt(shell.prompt())
        except KeyboardInterrupt:  # Ctrl-C: drop the line, keep the shell
            continue
        except EOFError:  # Ctrl-D
            return 0
        try:
            outcome = shell.execute(line)
        except Leave:
            return 0
        if not outcome.ok and outcome.message:
            click.echo(f"Error: {outcome.message}", err=True)


def _adapter(completer: Any) -> Any:
    """prompt_toolkit's view of :class:`~.complete.Completer`."""
    from prompt_toolkit.completion import Completer as PtCompleter
    from prompt_toolkit.completion import Completion

    class Adapter(PtCompleter):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            found, typed = completer.complete(document.text_before_cursor)
            for c in found:
                yield Completion(c.text, start_position=-len(typed), display_meta=c.meta or None)

    return Adapter()


_running = False


def main(ctx: click.Context) -> int:
    """``virtscenario shell``: a terminal session, or the script on stdin."""
    global _running
    if _running:
        raise UsageError("you are in the shell already")
    root = ctx.find_root().obj or {}
    global_args = (["--debug"] if root.get("debug") else []) + \
        (["--host-root", root["host_root"]] if root.get("host_root") else [])
    debug = bool(root.get("debug")) or os.environ.get("VIRTSCENARIO_DEBUG") == "1"
    interactive = sys.stdin.isatty()
    _running = True
    try:
        if interactive:
            return run_terminal(Shell(global_args, debug, chatty=True))
        return _script_from_stdin(Shell(global_args, debug, chatty=False))
    finally:
        _running = False


def _script_from_stdin(shell: Shell) -> int:
    # Read the whole script first: a command that asks a question (host apply without --yes)
    # then meets end-of-file and aborts, instead of taking the next script line as its answer.
    try:
        stream = getattr(sys.stdin, "buffer", None)
        text = stream.read().decode("utf-8") if stream is not None else sys.stdin.read()
    except UnicodeDecodeError:
        raise ConfigError("the script on stdin is not UTF-8 text") from None
    saved = sys.stdin
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        return run_script(shell, text)
    finally:
        sys.stdin.close()
        sys.stdin = saved
