"""Typed setting values: what a scenario decides (Choice), what a key is (SettingSpec),
and what the resolution produced (ResolvedSetting, Settings).

Provenance is data: :attr:`ResolvedSetting.layer` says which layer decided a value and
:attr:`ResolvedSetting.origin` names it (the scenario, plugin, file or flag); ``source``
is the same fact worded for people and is never parsed.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Literal, Mapping, Optional

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

    key: str
    value: Any
    rationale: str
    reference: str

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"setting key {self.key!r} must be dotted lower-case, e.g. 'disk.cache'")
        if not self.rationale.strip() or not self.reference.strip():
            raise ValueError(f"setting {self.key!r} needs both a rationale and a reference")


SettingKind = Literal["bool", "int", "str", "size", "choice"]


@frozen_record
class SettingSpec(FrozenRecord):
    """Declares a setting key: its type, its default and what it means.

    ``default`` is the lowest-precedence value; ``None`` means "not set" (the XML is
    omitted unless a scenario decides it). For ``size`` settings ``unit`` is the unit
    of a bare number and values are bytes; for ``choice`` settings ``choices`` lists
    the accepted strings. ``rationale`` and ``reference`` explain the default the
    way a :class:`Choice` explains a scenario's value: both are required (API 1.2).

    Where a default row is shown (``scenarios show``, ``create``; API 1.2, optional):
    ``applies_when`` lists conditions such as ``"graphics.type!=none"`` or
    ``"memory.source=file|memfd"`` (all must hold) under which the key has an effect;
    ``scenarios`` names the scenarios a *plugin's* setting belongs to besides the
    plugin's own scenarios and any scenario that sets it (``"*"``: every scenario).
    A value someone set is always shown; ``scenarios show --all`` shows everything.
    """

    key: str
    kind: SettingKind
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    unit: str = "MiB"
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    rationale: str = ""
    reference: str = ""
    applies_when: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()

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
    value: Any
    source: str
    rationale: str
    reference: str
    layer: Layer = "default"
    origin: str = ""

    @property
    def by_user(self) -> bool:
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

    def value(self, key: str, default: Any = None) -> Any:
        item = self._items.get(key)
        return default if item is None else item.value

    def device_value(self, kind: str, index: int, name: str, base: str) -> Any:
        """``kind[index].name`` when the user set it for that device, else the setting ``base``."""
        item = self._items.get(f"{kind}[{index}].{name}")
        return self.value(base) if item is None else item.value

    def replace(self, key: str, value: Any, source: str, rationale: str, reference: str,
                layer: Layer = "adapted", origin: str = "core") -> Settings:
        items = dict(self._items)
        items[key] = ResolvedSetting(key, value, source, rationale, reference, layer, origin)
        return Settings(items)

    def with_items(self, extra: Mapping[str, ResolvedSetting]) -> Settings:
        items = dict(self._items)
        items.update(extra)
        return Settings(items)
