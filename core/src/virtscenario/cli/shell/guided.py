"""The guided flow of upstream virt-scenario's shell, on our keys and options.

``use SCENARIO``, then values (``set KEY VALUE`` or upstream's short verbs), then ``show``,
``xml`` and ``create``. The state only accumulates what ``create`` would be given on its
command line: ``--set KEY=VALUE`` items and a few dedicated options (``--disk``,
``--cdrom``, ``--network``...). ``xml`` and ``create`` run the real ``create`` with them, so
the shell never decides anything the CLI would not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional

from ...errors import ConfigError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ...plugin.hooks import Catalog
    from ...settings.registry import SettingRegistry

PathKind = Literal["", "file", "dir"]


@dataclass(frozen=True)
class Verb:
    """An upstream short verb: the setting key or the ``create`` option it sets."""

    name: str
    meaning: str
    key: str = ""  # a setting key...
    option: str = ""  # ...or a create option
    template: str = "{}"  # how the value becomes the option's value ("path={}" for --disk)
    path: PathKind = ""  # the value names a file (which must exist) or a directory (created when needed)
    bare_gib: bool = False  # a bare number is GiB, as upstream's isdigit() verbs read it

    @property
    def target(self) -> str:
        return self.key or self.option


#: Upstream virt-scenario's shell verbs and two of ours (output, connect), in help order.
VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("vcpu", "number of vCPUs", key="vm.vcpus"),
    Verb("memory", "guest memory; a bare number is GiB as in upstream (4 = 4GiB)", key="vm.memory", bare_gib=True),
    Verb("machine", "machine type (q35, pc, pc-q35-7.2...)", key="vm.machine"),
    Verb("vnet", "libvirt network for the NIC", option="--network", template="network={}"),
    Verb("cdrom", "ISO to attach; it boots first", option="--cdrom", path="file"),
    Verb("vmimage", "use this existing image instead of creating one", option="--disk", template="path={}",
         path="file"),
    Verb("diskpath", "directory for new images", key="disk.directory", path="dir"),
    Verb("capacity", "size of the new image; a bare number is GiB", key="disk.size", bare_gib=True),
    Verb("format", "image format", key="disk.format"),
    Verb("cache", "disk cache mode", key="disk.cache"),
    Verb("encryption", "LUKS-encrypt the new qcow2 image (on/off)", key="disk.encryption"),
    Verb("conf", "settings file (YAML; upstream's virtscenario.yaml is read too)", option="--config", path="file"),
    Verb("overwrite", "regenerate an existing VM, keeping its uuid, MACs and images (on/off)", option="--force"),
    Verb("output", "store root for create", option="--output", path="dir"),
    Verb("connect", "libvirt URI to check capabilities against and to define on", option="--connect"),
)}

#: Upstream verbs with no equivalent here, and what to do instead (one line each).
UPSTREAM_ONLY = {
    "mode": "create never changes the host: 'host plan SCENARIO' shows the host part, 'host apply' applies it",
    "force_sev": "not needed: securevm takes the strongest SEV/TDX the host offers ('host check' shows it)",
    "hvconf": "the host inventory is hosts.yaml (upstream's virthosts.yaml is read too): 'hosts list'",
    "hvlist": "use 'hosts list'",
    "hvselect": "use 'connect URI' (or 'hosts list' for the inventory's URIs)",
    "info": "use 'host check'",
    "shell": "this shell runs virtscenario commands only",
}

BOOT_DEVICES = ("hd", "cdrom")

#: The shell's own commands: usage and meaning (the verbs above come after them in 'help').
SHELL_COMMANDS: dict[str, tuple[str, str]] = {
    "use": ("use SCENARIO", "choose the scenario (values set so far are kept)"),
    "set": ("set KEY VALUE", "set a setting, as create's --set KEY=VALUE ('settings' lists the keys)"),
    "unset": ("unset KEY|VERB|name|all", "forget a value set here: the scenario or the default decides again"),
    "show": ("show [PREFIX...]", "the resolved settings with their source and reason; * marks yours "
                                 "('show NAME' shows a VM of the store, as on the command line)"),
    "xml": ("xml [CREATE OPTIONS]", "the domain XML (create --print-xml); writes nothing"),
    "create": ("create [--define] [--start] [CREATE OPTIONS]", "create the VM from what is set here"),
    "name": ("name NAME", "VM name (default: the scenario's name)"),
    "bootdev": ("bootdev hd|cdrom", "boot device: an attached CD-ROM boots first, else the disk"),
    "help": ("help [COMMAND]", "this list, or one command's help (also ?)"),
    "exit": ("exit", "leave the shell (also quit, Ctrl-D)"),
}
#: Other words the shell answers to itself.
ALIASES = {"quit": "exit", "?": "help"}


@dataclass
class GuidedState:
    """What the guided flow has gathered so far (mutable: it is the session)."""

    scenario: Optional[str] = None
    name: Optional[str] = None
    #: setting key -> raw value, given to create as ``--set KEY=VALUE``
    settings: dict[str, str] = field(default_factory=dict)
    #: create option -> value ("" for a flag such as --force)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def vm_name(self) -> Optional[str]:
        """The VM name: set with ``name``, else the scenario's name (upstream's default)."""
        return self.name or self.scenario

    def create_args(self) -> list[str]:
        """``create`` arguments for the current state (without ``create`` itself)."""
        if self.scenario is None:
            raise ConfigError("no scenario chosen: 'use SCENARIO' first ('scenarios list' shows them)")
        args = [self.scenario, "--name", str(self.vm_name)]
        for key, value in self.settings.items():
            args += ["--set", f"{key}={value}"]
        for option, value in self.options.items():
            args += [option] if value == "" else [option, value]
        return args


def parse_value(verb: Verb, value: str) -> str:
    """The raw value a verb stores: bare numbers become GiB, paths must exist."""
    if verb.bare_gib and re.fullmatch(r"\d+", value.strip()):
        return value.strip() + "GiB"
    if verb.path:
        path = os.path.expanduser(value)
        # Files must exist now (as upstream checked); directories are created by create.
        if verb.path == "file" and not os.path.isfile(path):
            raise ConfigError(f"{verb.name} {value}: no such file")
        if verb.path == "dir" and os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{verb.name} {value}: not a directory")
        return os.path.abspath(path)
    return value


def set_key(state: GuidedState, registry: SettingRegistry, key: str, value: str) -> str:
    """``set KEY VALUE``: checked now (type, bounds, choices), so ``create`` fails on nothing new."""
    from ...settings.display import display_value
    spec = registry.spec(key)  # unknown key: one line with the closest key
    typed = registry.coerce(key, value)
    state.settings.pop(key, None)
    state.settings[key] = value
    return f"{key} = {display_value(spec, typed) if typed is not None else 'unset (no value)'}"


def apply_verb(state: GuidedState, registry: SettingRegistry, verb: Verb, value: str) -> str:
    """Upstream's ``VERB VALUE``: set the key or the create option; returns the confirmation."""
    raw = parse_value(verb, value)
    if verb.key:
        return set_key(state, registry, verb.key, raw)
    if verb.option == "--force":
        from ...settings.registry import parse_bool
        on = parse_bool(value)
        if on is None:
            raise ConfigError(f"overwrite {value!r}: expected on or off")
        if on:
            state.options["--force"] = ""
        else:
            state.options.pop("--force", None)
        return f"overwrite = {'on' if on else 'off'} ({'' if on else 'no '}--force)"
    state.options[verb.option] = verb.template.format(raw)
    return f"{verb.name} = {raw} ({verb.option} {state.options[verb.option]})"


def set_name(state: GuidedState, value: str) -> str:
    from ...vm.names import check_vm_name
    state.name = check_vm_name(value)
    return f"name = {value}"


def boot_device(state: GuidedState, value: str) -> str:
    """Upstream's ``bootdev``: here the boot order follows the devices, so only check and explain."""
    cdrom = "--cdrom" in state.options
    if value == "hd":
        if cdrom:
            raise ConfigError("bootdev hd: an attached CD-ROM boots first; 'unset cdrom' to boot from the disk")
        return "bootdev = hd (the disk boots; it does whenever no CD-ROM is attached)"
    if value == "cdrom":
        if not cdrom:
            raise ConfigError("bootdev cdrom: attach the ISO with 'cdrom FILE' first; an attached CD-ROM boots first")
        return "bootdev = cdrom (the attached CD-ROM boots first)"
    if value in ("network", "floppy"):
        raise ConfigError(f"bootdev {value}: not supported; the CD-ROM boots first when one is attached "
                          "('cdrom FILE'), otherwise the disk")
    raise ConfigError(f"bootdev {value!r}: expected one of {', '.join(BOOT_DEVICES)}")


def unset(state: GuidedState, registry: SettingRegistry, what: str) -> str:
    """``unset KEY|VERB|name|all``: back to what the scenario (or the default) decides."""
    if what == "all":
        state.settings.clear()
        state.options.clear()
        state.name = None
        return "every value set in this shell is unset"
    if what == "name":
        state.name = None
        return f"name unset (the VM is named {state.vm_name or 'after the scenario'})"
    verb = VERBS.get(what)
    if verb is not None:
        what = verb.target
    if what in state.settings:
        del state.settings[what]
        return f"{what} unset"
    if what in state.options:
        del state.options[what]
        return f"{what} unset"
    if verb is None and what not in registry and not what.startswith("-"):
        registry.spec(what)  # an unknown key: the registry's message names the closest one
    raise ConfigError(f"unset {what}: it was not set in this shell (see 'show')")


def current_value(state: GuidedState, verb: Verb) -> str:
    """``VERB`` without a value: what is set now."""
    if verb.key:
        value = state.settings.get(verb.key)
        return f"{verb.name} ({verb.key}) = {value}" if value is not None else \
            f"{verb.name} ({verb.key}) is not set here: the scenario or the default decides ('show {verb.key}')"
    if verb.option in state.options:
        return f"{verb.name} = {state.options[verb.option] or 'on'} ({verb.option})"
    return f"{verb.name} is not set"


def is_setting_prefix(registry: SettingRegistry, word: str) -> bool:
    """Whether ``show WORD`` names settings (a key, or a prefix such as ``disk`` or ``disk.``)."""
    stem = word.rstrip(".") + "."
    return any(spec.key == word or spec.key.startswith(stem) for spec in registry)


def show_text(state: GuidedState, catalog: Catalog, prefixes: list[str]) -> str:
    """``show [PREFIX...]``: the resolved settings as ``scenarios show`` has them, this shell's marked."""
    from ...settings.cliargs import parse_sets
    from ...settings.resolve import resolve_scenario
    from ...settings.userfile import load_config
    from ..output import hidden_footer, settings_rows, table, terminal_width, wrapped
    if state.scenario is None:
        raise ConfigError("no scenario chosen: 'use SCENARIO' first ('scenarios list' shows them)")
    config = load_config(state.options.get("--config"))
    cli = parse_sets(f"{k}={v}" for k, v in state.settings.items())
    provided, settings = resolve_scenario(catalog, state.scenario, config, cli)
    sc = provided.scenario
    lines = [f"{sc.name} {sc.version} ({provided.distribution}): {sc.summary}",
             f"VM {state.vm_name}" + ("" if state.name else " (the scenario's name; 'name NAME' to change it)")]
    lines += [f"  {option} {value}".rstrip() for option, value in state.options.items()]
    rows = []
    listed, hidden = settings_rows(settings, catalog.registry, sc, provided.plugin, show_all=bool(prefixes))
    for row in listed:
        if prefixes and not any(row[0] == p or row[0].startswith(p.rstrip(".") + ".") for p in prefixes):
            continue
        mark = "*" if settings[row[0]].layer == "flag" else ""
        rows.append([mark, row[0], row[1], row[2], f"{row[3]} [{row[4]}]"])
    if prefixes and not rows:
        raise UsageError(f"show {' '.join(prefixes)}: no setting key starts with that (see 'settings'), "
                         "and no VM of that name is in the store ('list')")
    lines += ["", table(["", "KEY", "VALUE", "SOURCE", "WHY"], rows),
              "", "* set in this shell ('unset KEY' goes back to the scenario's value)"]
    if not prefixes and hidden:
        lines += wrapped(hidden_footer(hidden).replace("--all lists every key", "'show PREFIX' lists any key"),
                         terminal_width())
    return "\n".join(lines)
