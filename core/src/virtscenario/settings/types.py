"""Typed setting values: what a scenario decides (Choice), what a key is (SettingSpec),
and what the resolution produced (ResolvedSetting, Settings).

Provenance is data: :attr:`ResolvedSetting.layer` says which layer decided a value and
:attr:`ResolvedSetting.origin` names it (the scenario, plugin, file or flag); ``source``
is the same fact worded for people and is never parsed.
"""

from __future__ import annotations

import re
from typing import Any, ItemsView, Iterator, KeysView, Literal, Mapping, Optional, ValuesView

from ..records import FrozenRecord, frozen_record

_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
#: An ``applies_when`` condition: ``key=value``, ``key!=value``, values separated by ``|``.
CONDITION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+!?=[^=|]+(\|[^=|]+)*$")
#: A per-device key: ``disks[1].cache`` overrides ``disk.cache`` for the second disk.
DEVICE_KEY = re.compile(r"^(?P<kind>[a-z]+)\[(?P<index>\d+)\]\.(?P<name>[a-z0-9_]+)$")

#: Which layer decided a value, lowest precedence first. ``adapted`` is the core fitting a
#: value to the hypervisor (KVM unavailable -> qemu), after every other layer.
Layer = Literal["default", "scenario", "plugin", "file", "flag", "adapted"]
LAYERS: tuple[str, ...] = ("default", "scenario", "plugin", "file", "flag", "adapted")
#: Layers in which the user decided the value.
USER_LAYERS = frozenset({"file", "flag"})


@frozen_record
class Choice(FrozenRecord):
    """One decision of a scenario: a setting key, its value, why, and where that is documented.

    ``reference`` is a URL or a citation (``libvirt formatdomain: Hard drives, ...``).
    A choice without a rationale or a reference is refused: we do not emit what we
    cannot justify.
    """

    key: str  # a setting key ('virtscenario settings' lists them)
    value: Any  # as the user would write it: 'none', 4, '4GiB', True
    rationale: str  # required: why this value, for this scenario
    reference: str  # required: URL or citation saying so

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"setting key {self.key!r} must be dotted lower-case, e.g. 'disk.cache'")
        if not self.rationale.strip() or not self.reference.strip():
            raise ValueError(f"setting {self.key!r} needs both a rationale and a reference")


SettingKind = Literal["bool", "int", "str", "size", "choice"]


@frozen_record
class SettingSpec(FrozenRecord):
    """Declares a setting key: its type, its default and what it means.

    ``key`` is dotted lower case (``lab.ttl_days``); ``kind`` is ``bool``, ``int``,
    ``str``, ``size`` or ``choice``; ``help`` is the one line ``virtscenario settings``
    shows. ``default`` is the lowest-precedence value; ``None`` means "not set" (the XML
    is omitted unless a scenario decides it). For ``size`` settings ``unit`` is the unit
    of a bare number and values are bytes; for ``choice`` settings ``choices`` lists
    the accepted strings, e.g. ``choices=("slow", "fast")`` (a value is given as one of
    them: ``--set lab.mode=fast``, ``Choice("lab.mode", "fast", ...)``). ``minimum`` and
    ``maximum`` bound ``int`` (and ``size``, in bytes) values. ``rationale`` and
    ``reference`` explain the default the way a :class:`Choice` explains a scenario's
    value: both are required (API 1.2) and shown wherever the default is in effect.

    Where a default row is shown (``scenarios show``, ``create``; API 1.2, optional):
    ``applies_when`` lists conditions such as ``"graphics.type!=none"`` or
    ``"memory.source=file|memfd"`` (all must hold) under which the key has an effect;
    ``scenarios`` names the scenarios a *plugin's* setting belongs to besides the
    plugin's own scenarios and any scenario that sets it (``"*"``: every scenario).
    A value someone set is always shown; ``scenarios show --all`` shows everything.
    """

    key: str  # dotted lower case: 'lab.ttl_days'
    kind: SettingKind  # bool, int, str, size or choice
    default: Any  # lowest precedence; None: not set
    help: str  # one line for 'virtscenario settings'
    choices: tuple[str, ...] = ()  # choice kind: the accepted strings
    unit: str = "MiB"  # size kind: the unit of a bare number
    minimum: Optional[int] = None  # int and size kinds (bytes for size)
    maximum: Optional[int] = None
    rationale: str = ""  # required (API 1.2): why this default
    reference: str = ""  # required (API 1.2): where that is documented
    applies_when: tuple[str, ...] = ()  # conditions under which the key has an effect (display only)
    scenarios: tuple[str, ...] = ()  # a plugin setting's scenarios besides the plugin's own ("*": all)

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"setting key {self.key!r} must be dotted lower-case")
        for cond in self.applies_when:
            if not CONDITION.match(cond):
                raise ValueError(f"setting {self.key!r}: applies_when {cond!r} is not KEY=VALUE[|VALUE...] "
                                 "or KEY!=VALUE[|VALUE...]")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice setting {self.key!r} needs choices")
        if not self.rationale.strip() or not self.reference.strip():
            raise ValueError(f"setting {self.key!r}: its default needs a rationale and a reference "
                             "(why this default, and where that is documented)")

    @property
    def type_name(self) -> str:
        """The type in words, as error messages and ``virtscenario settings`` say it."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        return {"bool": "a boolean (on/off, yes/no, true/false)", "int": "an integer",
                "str": "a string", "size": f"a size such as 4GiB (bare numbers are {self.unit})"}[self.kind]


@frozen_record
class ResolvedSetting(FrozenRecord):
    """A setting after precedence: its value, and which layer decided it and why.

    ``layer`` is one of :data:`LAYERS`; ``origin`` names the decider within the layer
    (``core``, the scenario's name, a plugin's name, a file's path, a flag such as
    ``--disk``). ``source`` words the same for people; code decides on ``layer`` and
    ``origin`` only.
    """

    key: str
    value: Any  # typed: sizes in bytes, None when unset
    source: str  # for people only, e.g. 'scenario lab (virtscenario-lab 0.1.0)': never parse it
    rationale: str  # why the deciding layer chose the value
    reference: str
    layer: Layer = "default"  # default, scenario, plugin, file, flag or adapted
    origin: str = ""  # core, the scenario, plugin, file path or flag

    @property
    def by_user(self) -> bool:
        """Whether the user decided the value (layer ``file`` or ``flag``)."""
        return self.layer in USER_LAYERS


class Settings(Mapping[str, ResolvedSetting]):
    """Read-only mapping of resolved settings; ``settings["disk.cache"].value``.

    Besides the declared keys it holds per-device overrides such as ``disks[0].cache``
    (see :meth:`device_value`).
    """

    def __init__(self, items: Mapping[str, ResolvedSetting]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> ResolvedSetting:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # The dict's own views and lookups: Mapping's generic ones go through __getitem__ per
    # key, and every VM build walks the ~110 settings several times.
    def items(self) -> ItemsView[str, ResolvedSetting]:
        """``(key, ResolvedSetting)`` pairs, declared keys first, then per-device overrides."""
        return self._items.items()

    def values(self) -> ValuesView[ResolvedSetting]:
        """Every ``ResolvedSetting``, in the order of :meth:`items`."""
        return self._items.values()

    def keys(self) -> KeysView[str]:
        """Every key, in the order of :meth:`items`."""
        return self._items.keys()

    def get(self, key: str, default: Any = None) -> Any:
        """The ``ResolvedSetting`` of ``key``, or ``default`` (use :meth:`value` for the value itself)."""
        return self._items.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def value(self, key: str, default: Any = None) -> Any:
        """The resolved value of ``key`` (sizes in bytes, ``None`` when unset), or ``default`` for an unknown key."""
        item = self._items.get(key)
        return default if item is None else item.value

    def device_value(self, kind: str, index: int, name: str, base: str) -> Any:
        """``kind[index].name`` when the user set it for that device, else the setting ``base``."""
        item = self._items.get(f"{kind}[{index}].{name}")
        return self.value(base) if item is None else item.value

    def replace(self, key: str, value: Any, source: str, rationale: str, reference: str,
                layer: Layer = "adapted", origin: str = "core") -> Settings:
        """A copy with ``key`` decided anew (the core's adaptations use it; hooks receive settings read-only)."""
        items = dict(self._items)
        items[key] = ResolvedSetting(key, value, source, rationale, reference, layer, origin)
        return Settings(items)

    def with_items(self, extra: Mapping[str, ResolvedSetting]) -> Settings:
        """A copy with ``extra`` added or replaced."""
        items = dict(self._items)
        items.update(extra)
        return Settings(items)
