"""TAB completion for the shell, independent of the terminal library (repl.py adapts it).

CLI lines are completed by click's own completion (the ``shell_complete`` of every
command, option and argument: the same answers bash gets); the guided flow's words are
completed here from the catalog (scenarios, setting keys and their values), the store
(VM names) and the file system.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .guided import ALIASES, BOOT_DEVICES, SHELL_COMMANDS, VERBS, GuidedState

if TYPE_CHECKING:  # pragma: no cover
    from ...plugin.hooks import Catalog


@dataclass(frozen=True)
class Candidate:
    """One completion: the text that replaces the word being typed, and a hint shown beside it."""

    text: str
    meta: str = ""


@dataclass(frozen=True)
class Split:
    """A line cut for completion: the complete words, the word being typed (unquoted) and as typed."""

    words: tuple[str, ...]
    incomplete: str
    raw: str


def split_line(text: str) -> Split:
    """Shell-like words (quotes, backslashes) of ``text``, tolerating an unterminated quote."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                current.append(text[i])
            else:
                current.append(c)
        elif c.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            if not in_word:
                in_word, start = True, i
            if c in "'\"":
                quote = c
            elif c == "\\" and i + 1 < len(text):
                i += 1
                current.append(text[i])
            else:
                current.append(c)
        i += 1
    if in_word:
        return Split(tuple(words), "".join(current), text[start:])
    return Split(tuple(words), "", "")


def path_candidates(incomplete: str, dirs_only: bool = False) -> list[Candidate]:
    """Files and directories starting with ``incomplete`` (``~`` understood, hidden ones on '.')."""
    expanded = os.path.expanduser(incomplete)
    directory, base = os.path.split(expanded)
    try:
        entries = sorted(os.listdir(directory or "."))
    except OSError:
        return []
    typed_dir = incomplete[:len(incomplete) - len(base)]
    out = []
    for entry in entries:
        if not entry.startswith(base) or (entry.startswith(".") and not base.startswith(".")):
            continue
        is_dir = os.path.isdir(os.path.join(directory or ".", entry))
        if dirs_only and not is_dir:
            continue
        out.append(Candidate(typed_dir + entry + ("/" if is_dir else "")))
    return out


def quoted(text: str) -> str:
    """``text`` as one shell word (a path with spaces gets quotes; most values need none)."""
    return text if text and all(c.isalnum() or c in "@%+=:,./-_[]~" for c in text) else shlex.quote(text)


class Completer:
    """Completions for one line of the shell. Never raises: a broken plugin or store gives none."""

    def __init__(self, state: GuidedState, catalog: Callable[[], Catalog]) -> None:
        self.state = state
        self.catalog = catalog

    def complete(self, text: str) -> tuple[list[Candidate], str]:
        """Candidates for the word at the end of ``text``, and that word as typed (what they replace)."""
        split = split_line(text)
        try:
            found = self._candidates(list(split.words), split.incomplete)
        except Exception:  # noqa: BLE001 - completion must never break the line being typed
            found = []
        return [Candidate(quoted(c.text), c.meta) for c in found], split.raw

    # -- dispatch ----------------------------------------------------------------------------------
    def _candidates(self, words: list[str], incomplete: str) -> list[Candidate]:
        if not words:
            if incomplete.startswith("-"):
                return self._click([], incomplete)
            return self._first_words(incomplete)
        head, args = ALIASES.get(words[0], words[0]), words[1:]
        if head == "create":
            return self._click(words, incomplete)
        if head == "xml":
            return self._click(["create", self.state.scenario or "SCENARIO", *args], incomplete)
        guided = {"use": self._use, "set": self._set, "unset": self._unset, "show": self._show,
                  "help": self._help, "name": self._name, "bootdev": self._bootdev}.get(head)
        if guided is not None:
            return guided(args, incomplete)
        if head in VERBS:
            return self._verb(head, args, incomplete) if not args else []
        if head in ("exit",):
            return []
        return self._click(words, incomplete)

    def _first_words(self, incomplete: str) -> list[Candidate]:
        found = {name: help for name, (_usage, help) in SHELL_COMMANDS.items()}
        found.update({name: f"upstream verb: {v.meaning}" for name, v in VERBS.items()})
        found.setdefault("quit", "leave the shell")
        for item in self._click([], incomplete):
            found.setdefault(item.text, item.meta)
        return [Candidate(n, found[n]) for n in sorted(found) if n.startswith(incomplete)]

    # -- guided words ------------------------------------------------------------------------------
    def _use(self, args: list[str], incomplete: str) -> list[Candidate]:
        if args:
            return []
        scenarios = self.catalog().scenarios
        return [Candidate(n, p.scenario.summary) for n, p in scenarios.items() if n.startswith(incomplete)]

    def _keys(self, incomplete: str, only: Iterable[str] = ()) -> list[Candidate]:
        registry = self.catalog().registry
        wanted = set(only)
        return [Candidate(s.key, s.help) for s in sorted(registry, key=lambda s: s.key)
                if s.key.startswith(incomplete) and (not wanted or s.key in wanted)]

    def _values(self, key: str, incomplete: str) -> list[Candidate]:
        from ..common import value_choices
        spec = self.catalog().registry.find(key)
        return [Candidate(v) for v in value_choices(spec) if v.startswith(incomplete)] if spec else []

    def _set(self, args: list[str], incomplete: str) -> list[Candidate]:
        if not args:
            if "=" in incomplete:  # set KEY=VALUE, like --set
                from ..common import setting_items
                return [Candidate(text, help) for text, help in setting_items(incomplete)]
            return self._keys(incomplete)
        return self._values(args[0], incomplete) if len(args) == 1 else []

    def _unset(self, args: list[str], incomplete: str) -> list[Candidate]:
        if args:
            return []
        state = self.state
        names = list(state.settings)
        names += [v.name for v in VERBS.values() if v.option and v.option in state.options]
        names += (["name"] if state.name else []) + ["all"]
        return [Candidate(n) for n in names if n.startswith(incomplete)]

    def _show(self, args: list[str], incomplete: str) -> list[Candidate]:
        return self._keys(incomplete) + (self._name([], incomplete) if not args else [])

    def _help(self, args: list[str], incomplete: str) -> list[Candidate]:
        return self._first_words(incomplete) if not args else []

    def _name(self, args: list[str], incomplete: str) -> list[Candidate]:
        if args:
            return []
        from ...vm.store import list_vm_names
        from ..common import vm_store_of
        root = vm_store_of(self.state.options.get("--output"), self.state.options.get("--config"))
        return [Candidate(n, "in the store") for n in list_vm_names(root) if n.startswith(incomplete)]

    def _bootdev(self, args: list[str], incomplete: str) -> list[Candidate]:
        return [Candidate(d) for d in BOOT_DEVICES if d.startswith(incomplete)] if not args else []

    def _verb(self, name: str, args: list[str], incomplete: str) -> list[Candidate]:
        verb = VERBS[name]
        if verb.path:
            return path_candidates(incomplete, dirs_only=verb.path == "dir")
        if verb.key:
            return self._values(verb.key, incomplete)
        if verb.option == "--force":
            return [Candidate(v) for v in ("on", "off") if v.startswith(incomplete)]
        return []

    # -- CLI lines: click's own completion ---------------------------------------------------------
    def _click(self, words: list[str], incomplete: str) -> list[Candidate]:
        from click.shell_completion import ShellComplete

        from ..app import cli
        prefix = ""
        if incomplete.startswith("-") and "=" in incomplete:  # --set=KEY... : click completes after '='
            prefix = incomplete.split("=", 1)[0] + "="
        items: list[Any] = ShellComplete(cli, {}, "virtscenario", "_VIRTSCENARIO_COMPLETE").get_completions(
            list(words), incomplete)
        out: list[Candidate] = []
        for item in items:
            if item.type in ("file", "dir"):
                out += path_candidates(item.value, dirs_only=item.type == "dir")
            elif item.type == "plain":
                out.append(Candidate(prefix + str(item.value), item.help or ""))
        return out
