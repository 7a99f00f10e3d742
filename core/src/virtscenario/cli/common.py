"""What every command shares: notes on stderr, the host root, scenario completion, config checks."""

from __future__ import annotations

import os
from typing import Any, Iterable

import click

from ..errors import VirtscenarioError


def print_notes(notes: Iterable[Any]) -> None:
    """Notes and warnings on stderr, each wrapped to the terminal (continuation lines indented)."""
    import textwrap

    from .output import terminal_width
    width = terminal_width()
    seen = set()
    for note in notes:
        if note.message in seen:
            continue
        seen.add(note.message)
        prefix = "Warning: " if note.level == "warning" else "Note: "
        click.echo("\n".join(textwrap.wrap(prefix + note.message, width, subsequent_indent="  ",
                                            break_long_words=False, break_on_hyphens=False)), err=True)


def host_root_of(ctx: click.Context) -> Any:
    """The HostRoot of ``--host-root`` (or VIRTSCENARIO_HOST_ROOT), checked to exist."""
    from ..host.root import HostRoot
    root = (ctx.find_root().obj or {}).get("host_root")
    if root and not os.path.isdir(root):
        raise VirtscenarioError(f"--host-root {root}: no such directory")
    return HostRoot.from_env(root)


def complete_scenarios(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of scenario names (never raises: completion must not break the shell)."""
    try:
        from ..plugin.hooks import Catalog
        return [click.shell_completion.CompletionItem(n) for n in Catalog().scenarios if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def complete_vms(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of VM names in the store."""
    try:
        from ..vm.store import list_vm_names, store_root
        root = store_root((ctx.params or {}).get("output"))
        return [click.shell_completion.CompletionItem(n) for n in list_vm_names(root) if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []
