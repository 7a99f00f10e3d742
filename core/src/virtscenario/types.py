"""Typed values that plugins contribute and the core hands back.

Everything a plugin returns from a hook is one of these frozen dataclasses, so the
core can validate it, attribute it to its plugin, and report conflicts by name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Optional

from .records import FrozenRecord, frozen_record
from .settings.types import Choice, ResolvedSetting, Settings, SettingSpec

if TYPE_CHECKING:  # pragma: no cover
    from .domain.model import Domain

__all__ = ["CheckResult", "Choice", "DomainRule", "GuestCheck", "HostChange", "HostCheck", "HostRequirement", "Note",
           "ResolvedSetting", "Scenario", "SettingSpec", "Settings"]

_SCENARIO_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


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
        # Misplaced keys first: a guest key in host= is a placement error, not a duplicate.
        for choice in self.settings:
            if choice.key.startswith("host."):
                raise ValueError(f"scenario {self.name!r}: {choice.key!r} belongs in host=, not settings=")
        for choice in self.host:
            if not choice.key.startswith("host."):
                raise ValueError(f"scenario {self.name!r}: {choice.key!r} is a guest setting: it belongs in "
                                 "settings=, not host= (host requirements start with 'host.')")
        seen: set[str] = set()
        for choice in (*self.settings, *self.host):
            if choice.key in seen:
                raise ValueError(f"scenario {self.name!r} sets {choice.key!r} twice")
            seen.add(choice.key)

    @property
    def choices(self) -> tuple[Choice, ...]:
        return (*self.settings, *self.host)


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
class GuestCheck(FrozenRecord):
    """One row of ``virtscenario verify``: what was decided, what the guest sees, and whether they agree.

    ``ok`` is ``None`` when the check does not apply to this guest (it is shown as skipped).
    """

    check: str
    expected: str
    observed: str
    ok: Optional[bool]

    @property
    def status(self) -> str:
        return "skipped" if self.ok is None else "ok" if self.ok else "MISMATCH"


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
