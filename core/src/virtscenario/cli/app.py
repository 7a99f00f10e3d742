"""The ``virtscenario`` command line (click).

Start-up is kept to the cost of importing click: each built-in command lives in its own
module under :mod:`virtscenario.cli.commands`, imported only when that command runs
(or when help lists them), and plugin commands are loaded only when a name is not
built in. ``--version`` imports nothing else.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
from typing import Callable, Optional

import click

from .. import __version__
from ..errors import VirtscenarioError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Built-in commands: name -> (module, attribute), imported when the command is used.
BUILTIN_COMMANDS = {
    "create": ("virtscenario.cli.commands.create", "create_cmd"),
    "delete": ("virtscenario.cli.commands.vms", "delete_cmd"),
    "host": ("virtscenario.cli.commands.host", "host_group"),
    "hosts": ("virtscenario.fleet.commands", "hosts_group"),
    "list": ("virtscenario.cli.commands.vms", "list_cmd"),
    "migrate-check": ("virtscenario.fleet.commands", "migrate_check"),
    "network": ("virtscenario.cli.commands.network", "network_group"),
    "plugin": ("virtscenario.cli.commands.plugins", "plugin_group"),
    "plugins": ("virtscenario.cli.commands.plugins", "plugins_group"),
    "scenarios": ("virtscenario.cli.commands.scenarios", "scenarios_group"),
    "settings": ("virtscenario.cli.commands.settings", "settings_cmd"),
    "shell": ("virtscenario.cli.commands.shell", "shell_cmd"),
    "show": ("virtscenario.cli.commands.vms", "show_cmd"),
    "validate": ("virtscenario.cli.commands.validate", "validate_cmd"),
    "verify": ("virtscenario.cli.commands.verify", "verify_cmd"),
}


EXAMPLES = "\b\nExamples:"


def examples_last(command: click.Command) -> click.Command:
    """Move a docstring's ``Examples:`` block into the epilog, so ``--help`` ends with it (after the
    options), for this command and every subcommand it already has. Idempotent and cheap."""
    if command.help and not command.epilog:
        text = inspect.cleandoc(command.help)
        head, found, tail = text.partition(EXAMPLES)
        if found:
            command.help, command.epilog = head.rstrip(), f"{EXAMPLES}{tail}"
    for sub in getattr(command, "commands", {}).values():
        examples_last(sub)
    return command


def load_plugin_commands(root: click.Group) -> None:
    """Let plugins add commands (register_commands), once per process."""
    if getattr(root, "_plugins_loaded", False):
        return
    root._plugins_loaded = True  # type: ignore[attr-defined]
    if isinstance(root, LazyGroup):
        for name in BUILTIN_COMMANDS:  # so a plugin can extend a built-in group (host plan, ...)
            root.builtin(name)
    from ..plugin.hooks import Catalog
    catalog = Catalog()
    # Registration first: a plugin a failing register_scenarios/register_settings disables for
    # the run is disabled "with everything it contributed", its commands included.
    catalog.scenarios  # noqa: B018 - runs (and caches) the registration hooks
    catalog.register_commands(root, lambda: _command_tree_undo(root))
    for command in root.commands.values():
        examples_last(command)


def _command_tree_undo(root: click.Group) -> Callable[[], None]:
    """Snapshot the command tree (each group's commands, each command's options) before one plugin's
    register_commands; the returned undo restores it, so a plugin that fails half-way leaves nothing
    (its own commands, subcommands of built-in groups, options on built-in commands) and the other
    plugins' commands stay."""
    commands: list[tuple[click.Group, dict[str, click.Command]]] = []
    params: list[tuple[click.Command, list[click.Parameter]]] = []
    stack: list[click.Command] = [root]
    while stack:
        command = stack.pop()
        params.append((command, list(command.params)))
        if isinstance(command, click.Group):
            commands.append((command, dict(command.commands)))
            stack.extend(command.commands.values())

    def undo() -> None:
        for group, saved in commands:
            group.commands.clear()
            group.commands.update(saved)
        for command, saved_params in params:
            command.params[:] = saved_params
    return undo


class LazyGroup(click.Group):
    """The root group: built-in commands imported on use, plugin commands loaded on demand."""

    def builtin(self, name: str) -> Optional[click.Command]:
        if name not in self.commands and name in BUILTIN_COMMANDS:
            module_name, attr = BUILTIN_COMMANDS[name]
            import importlib
            module = importlib.import_module(module_name)
            self.add_command(examples_last(getattr(module, attr)), name)
        return self.commands.get(name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        command = self.builtin(cmd_name)
        if command is None:
            load_plugin_commands(self)
            command = self.commands.get(cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_plugin_commands(self)
        return sorted(self.commands)


class ExtensibleGroup(click.Group):
    """A built-in group that plugins may add subcommands to (the ``host`` group)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            load_plugin_commands(ctx.find_root().command)  # type: ignore[arg-type]
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_plugin_commands(ctx.find_root().command)  # type: ignore[arg-type]
        return super().list_commands(ctx)


def _list_plugins_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from .commands.plugins import print_plugins
        print_plugins(as_json=False, root=ctx.command)  # type: ignore[arg-type]
        ctx.exit(0)


def _plugins_dir(ctx: click.Context, _param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value:
        # Read by the plugin manager, which is created lazily, after option parsing.
        os.environ["VIRTSCENARIO_PLUGINS_DIR"] = value
    return value


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="virtscenario", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--host-root", type=click.Path(file_okay=False), envvar="VIRTSCENARIO_HOST_ROOT",
              help="Map /proc, /sys, /etc, /dev and the journal under DIR (tests, offline images).")
@click.option("--plugins-dir", type=click.Path(file_okay=False, exists=True), is_eager=True,
              expose_value=False, callback=_plugins_dir,
              help="Also load every *.py in DIR as a plugin (development; VIRTSCENARIO_PLUGINS_DIR).")
@click.option("--list-plugins", is_flag=True, expose_value=False, is_eager=True, callback=_list_plugins_flag,
              help="List plugins and exit.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, host_root: Optional[str]) -> None:
    """Generate libvirt guests and host plans from workload scenarios.

    \b
    Examples:
      virtscenario scenarios list
      virtscenario create desktop --name work --print-xml
      virtscenario create computation --name calc --vcpus 8 --memory 16GiB --define
    """
    # argv: the command as given, so a "Next:" line can repeat it (summary.next_step).
    ctx.obj = {"debug": debug, "host_root": host_root, "argv": (ctx.obj or {}).get("argv")}


examples_last(cli)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: one ``Error:`` line and exit 1 on failure; a traceback only with --debug.

    Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C). Output that
    cannot be written (``> /dev/full``) is a failure too: exit 1, after the work is done.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("VIRTSCENARIO_DEBUG") == "1"
    # A one-shot run allocates objects that nearly all live until it exits, so the cyclic
    # collector's passes over them free nothing and cost ~9 % of `create`'s CPU
    # (docs/performance.md). The long-lived shell turns it back on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _run(args, debug)
    finally:
        if collecting:
            gc.enable()


def _run(args: list[str], debug: bool) -> None:
    try:
        _check_utf8(args)
        # standalone_mode=False returns ctx.exit()'s code instead of exiting: pass it on.
        code = cli.main(args=args, prog_name="virtscenario", standalone_mode=False, obj={"argv": list(args)})
        try:
            sys.stdout.flush()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C inside a command into Abort.
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        _echo_err("Interrupted." if interrupted else "Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VirtscenarioError as exc:
        if debug:
            raise
        _echo_err(f"Error: {exc}")
        sys.exit(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        _echo_err("Interrupted.")
        sys.exit(130)
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(1)
    except OSError as exc:
        if not (isinstance(exc, StdoutError) or _from_stdout(exc)):
            if debug:
                raise
            _internal(exc)
        _echo_err(f"Error: cannot write to standard output: {exc.strerror or exc}")
        _quiet_stdout()
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, never a traceback by default
        if debug:
            raise
        _internal(exc)


def _internal(exc: BaseException) -> None:
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    _echo_err(f"Error: internal error: {type(exc).__name__}: {text} (run with --debug for a traceback)")
    sys.exit(1)


def _check_utf8(args: list[str]) -> None:
    """Arguments that are not UTF-8 (surrogate-escaped by Python) cannot go into XML, YAML or paths we print."""
    for index, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            raw = arg.encode("utf-8", "surrogateescape")  # the bytes as given
            raise VirtscenarioError(f"command-line argument {index} ({repr(raw[:60])[1:]}) is not valid UTF-8 "
                                    f"(byte {len(arg[:exc.start].encode('utf-8', 'surrogateescape')) + 1})") from None


def _echo_err(text: str) -> None:
    # backslashreplace: a message quoting odd input must still print as one line.
    click.echo(text.encode("utf-8", "backslashreplace").decode("utf-8", "replace"), err=True)


class StdoutError(OSError):
    """Standard output could not take what was written to it."""


def _from_stdout(exc: BaseException) -> bool:
    """True when the error came from writing to standard output (click.echo without err=True)."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils" \
                and not frame.f_locals.get("err"):
            return True
        tb = tb.tb_next
    return False


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
