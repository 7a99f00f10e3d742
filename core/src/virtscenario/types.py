"""Typed values that plugins contribute and the core hands back.

Everything a plugin returns from a hook is one of these frozen dataclasses, so the
core can validate it, attribute it to its plugin, and report conflicts by name.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping

from .records import FrozenRecord, frozen_record

if TYPE_CHECKING:  # pragma: no cover
    from .model import Domain

_SCENARIO_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


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


@frozen_record
class Scenario(FrozenRecord):
    """A named workload profile: guest settings plus host requirements.

    ``settings`` hold guest choices (any key but ``host.*``); ``host`` holds the
    host requirements (``host.*`` keys) that the host tuning plugin turns into a plan.
    """

    name: str
    summary: str
    version: str
    settings: tuple[Choice, ...] = ()
    host: tuple[Choice, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not _SCENARIO_NAME.match(self.name):
            raise ValueError(f"scenario name {self.name!r} must match {_SCENARIO_NAME.pattern}")
        seen: set[str] = set()
        for choice in (*self.settings, *self.host):
            if choice.key in seen:
                raise ValueError(f"scenario {self.name!r} sets {choice.key!r} twice")
            seen.add(choice.key)
        for choice in self.settings:
            if choice.key.startswith("host."):
                raise ValueError(f"scenario {self.name!r}: {choice.key!r} belongs in host=, not settings=")
        for choice in self.host:
            if not choice.key.startswith("host."):
                raise ValueError(f"scenario {self.name!r}: host requirement {choice.key!r} must start with 'host.'")

    @property
    def choices(self) -> tuple[Choice, ...]:
        return (*self.settings, *self.host)


SettingKind = Literal["bool", "int", "str", "size", "choice"]


@frozen_record
class SettingSpec(FrozenRecord):
    """Declares a setting key: its type, its core default and what it means.

    ``default`` is the core default (lowest precedence); ``None`` means "not set"
    (the corresponding XML is omitted unless a scenario decides it).
    For ``size`` settings ``unit`` is the unit of a bare number; values are bytes.
    For ``choice`` settings ``choices`` lists the accepted strings.
    """

    key: str
    kind: SettingKind
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    unit: str = "MiB"
    minimum: int | None = None
    maximum: int | None = None
    rationale: str = "core default"
    reference: str = "virtscenario docs/settings.md"

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"setting key {self.key!r} must be dotted lower-case")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice setting {self.key!r} needs choices")

    @property
    def type_name(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        return {"bool": "a boolean (on/off, yes/no, true/false)", "int": "an integer",
                "str": "a string", "size": f"a size such as 4GiB (bare numbers are {self.unit})"}[self.kind]


@frozen_record
class ResolvedSetting(FrozenRecord):
    """A setting after precedence: its value and where that value came from."""

    key: str
    value: Any
    source: str
    rationale: str
    reference: str


class Settings(Mapping[str, ResolvedSetting]):
    """Read-only mapping of resolved settings; ``settings["disk.cache"].value``."""

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

    def replace(self, key: str, value: Any, source: str, rationale: str, reference: str) -> Settings:
        items = dict(self._items)
        items[key] = ResolvedSetting(key, value, source, rationale, reference)
        return Settings(items)


@frozen_record
class Note(FrozenRecord):
    """Something the pipeline adapted, or a warning the user should read."""

    level: Literal["info", "warning"]
    message: str
    source: str = "core"


@frozen_record
class DomainRule(FrozenRecord):
    """A semantic rule beyond the RelaxNG schema.

    ``check(domain, settings)`` yields one message per problem (nothing when the
    domain is fine). ``explanation`` says why the rule exists; it is printed with
    each problem. ``severity='error'`` refuses the domain; ``'warning'`` only notes it.
    """

    name: str
    explanation: str
    reference: str
    check: Callable[[Domain, Settings], Iterable[str]]
    severity: Literal["error", "warning"] = "error"


@frozen_record
class HostCpu(FrozenRecord):
    id: int
    core: int
    socket: int
    node: int = 0


@frozen_record
class HostInfo(FrozenRecord):
    """What is known about the host a VM is generated for."""

    arch: str = "x86_64"
    cpu_vendor: str = ""
    cpu_model: str = ""
    cpus: tuple[HostCpu, ...] = ()
    memory_bytes: int = 0
    flags: frozenset[str] = frozenset()
    hugepage_sizes_kib: tuple[int, ...] = ()
    source: str = "unknown"

    @property
    def sockets(self) -> int:
        return len({c.socket for c in self.cpus}) or 0

    @property
    def cores_per_socket(self) -> int:
        if not self.cpus:
            return 0
        return len({(c.socket, c.core) for c in self.cpus}) // max(1, self.sockets)

    @property
    def threads_per_core(self) -> int:
        if not self.cpus:
            return 0
        return len(self.cpus) // max(1, len({(c.socket, c.core) for c in self.cpus}))

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(sorted({c.node for c in self.cpus}))


@frozen_record
class SevCaps(FrozenRecord):
    supported: bool = False
    cbitpos: int | None = None
    reduced_phys_bits: int | None = None
    max_guests: int | None = None
    max_es_guests: int | None = None


@frozen_record
class DomainCaps(FrozenRecord):
    """The parts of ``virConnectGetDomainCapabilities`` the pipeline uses."""

    virt_type: str = "kvm"
    arch: str = "x86_64"
    machine: str = ""
    machines: tuple[str, ...] = ()
    emulator: str = ""
    max_vcpus: int | None = None
    iothreads: bool = True
    firmware: tuple[str, ...] = ()
    loaders: tuple[str, ...] = ()
    secure_boot: bool = False
    cpu_modes: tuple[str, ...] = ()
    host_model: str = ""
    tpm_models: tuple[str, ...] = ()
    tpm_backends: tuple[str, ...] = ()
    tpm_versions: tuple[str, ...] = ()
    memory_sources: tuple[str, ...] = ()
    filesystem_drivers: tuple[str, ...] = ()
    video_models: tuple[str, ...] = ()
    sev: SevCaps = field(default_factory=SevCaps)
    sev_snp: bool = False
    tdx: bool = False
    libvirt_version: int | None = None
    kvm_available: bool = True


@frozen_record
class CheckResult(FrozenRecord):
    """Outcome of one host check: PASS, WARN or FAIL with one line of advice."""

    name: str
    status: Literal["PASS", "WARN", "FAIL"]
    message: str
    advice: str = ""


@frozen_record
class HostCheck(FrozenRecord):
    """A host check contributed by a plugin; ``run(host)`` returns its result.

    ``host`` is a :class:`virtscenario.hostroot.HostRoot`. The core runs every check
    in its own ``try``: an exception becomes a FAIL naming the plugin, never a crash.
    """

    name: str
    summary: str
    run: Callable[[Any], CheckResult]


@frozen_record
class HostRequirement(FrozenRecord):
    """A ``host.*`` choice of a scenario, tied to the VM that needs it."""

    key: str
    value: Any
    rationale: str
    reference: str
    scenario: str
    vm: str | None = None
    vm_memory_bytes: int = 0


@frozen_record
class HostChange(FrozenRecord):
    """One knob of a host plan: current value -> target value, and why.

    ``path`` is the absolute host path (before ``--host-root`` mapping) the change
    writes, or ``""`` for advice the user carries out (kernel command line).
    """

    knob: str
    path: str
    current: str
    target: str
    reason: str
    source: str
    reboot_required: bool = False
    advice_only: bool = False
    conflict: str = ""

    @property
    def needed(self) -> bool:
        return self.current != self.target
