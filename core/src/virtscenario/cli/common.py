"""What every command shares: notes on stderr, the host root, scenario completion, config checks."""

from __future__ import annotations

import os
from typing import Any, Iterable

import click

from ..errors import VirtscenarioError
from ..terminal import terminal_width, wrap_words


def print_notes(notes: Iterable[Any]) -> None:
    """Notes and warnings on stderr, each wrapped to the terminal (continuation lines indented)."""
    width = 0
    seen = set()
    for note in notes:
        if note.message in seen:
            continue
        seen.add(note.message)
        width = width or terminal_width()
        prefix = "Warning: " if note.level == "warning" else "Note: "
        click.echo("\n".join(wrap_words(prefix + note.message, width)), err=True)


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
    """Shell completion of VM names in the store (``--output``, else the settings file's store)."""
    try:
        from ..vm.store import list_vm_names
        params = ctx.params or {}
        root = vm_store_of(params.get("output"), params.get("config_file"))
        return [click.shell_completion.CompletionItem(n) for n in list_vm_names(root) if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def vm_store_of(output: Any, config_file: Any) -> Any:
    """The store root ``create`` would use with these ``--output`` and ``--config`` values."""
    from ..vm.store import store_root
    if output:
        return store_root(output)
    from ..settings.userfile import load_config
    return store_root(None, load_config(config_file).store)


def setting_items(incomplete: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` completions as (text, help): keys (with their '='), then a key's choices."""
    from ..plugin.hooks import Catalog
    registry = Catalog().registry
    key, eq, value = incomplete.partition("=")
    if not eq:
        return [(s.key + "=", s.help) for s in sorted(registry, key=lambda s: s.key) if s.key.startswith(key)]
    spec = registry.find(key)
    return [(f"{key}={v}", "") for v in value_choices(spec) if v.startswith(value)] if spec else []


def value_choices(spec: Any) -> tuple[str, ...]:
    """The values worth offering for a setting: its choices, or on/off for a boolean."""
    if spec.kind == "choice":
        return tuple(spec.choices)
    return ("on", "off") if spec.kind == "bool" else ()


def complete_settings(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of ``--set KEY=VALUE``: setting keys, then the key's allowed values."""
    try:
        return [click.shell_completion.CompletionItem(text, help=help or None)
                for text, help in setting_items(incomplete)]
    except Exception:  # noqa: BLE001
        return []

