"""``virtscenario shell``: the interactive shell (the work is in :mod:`virtscenario.cli.shell`)."""

from __future__ import annotations

import click


@click.command("shell")
@click.pass_context
def shell_cmd(ctx: click.Context) -> None:
    """Interactive shell with TAB completion.

    Every command works as typed on the command line, and upstream virt-scenario's guided
    flow is there too.

    \b
    Guided flow: use SCENARIO, set KEY VALUE (or upstream's verbs: name, vcpu, memory,
    machine, bootdev, vnet, cdrom, vmimage, diskpath, capacity, format, cache, encryption),
    unset KEY, show, xml, create [--define] [--start]. 'help' lists everything.

    \b
    On a terminal: TAB completes commands, options, scenario names, setting keys and their
    values, VM names in the store and host names in the inventory. History is kept in
    $XDG_STATE_HOME/virtscenario/history (0600). Ctrl-C cancels the line; Ctrl-D or 'exit'
    leaves. A failing line prints one Error: line and the shell goes on.

    \b
    Not a terminal: the lines of stdin run as a script (lines starting with # are comments).
    The first failing line stops it: 'Error: line N: ...' and that line's exit status.
    At the end of the script the exit status is 0.

    \b
    Examples:
      virtscenario shell
      virtscenario shell < commands.txt
      printf 'use desktop\\nname demo\\nvcpu 4\\nxml\\n' | virtscenario shell > demo.xml
    """
    import gc

    from ..shell.repl import main
    gc.enable()  # main() turns the collector off for one-shot runs; a session lives long
    code = main(ctx)
    if code:
        ctx.exit(code)
