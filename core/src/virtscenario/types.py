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

    ``name`` (lower case, digits, ``-`` and ``_``, at most 40 characters) is what users
    type; ``summary`` is the one line ``scenarios list`` shows, and the core writes
    ``NAME: SUMMARY`` as the domain's ``<description>``; ``version`` is the scenario's own.
    ``settings`` hold guest choices (any key but ``host.*``); ``host`` holds the host
    requirements (``host.*`` keys) that ``host_plan`` implementations turn into a plan. A
    key may appear once. ``description`` is longer free text about the scenario (kept with it;
    the core neither displays it nor writes it to the XML).
    """

    name: str  # what users type: lower case, digits, - and _, at most 40 characters
    summary: str  # one line: 'scenarios list', and the XML's <description>
    version: str  # the scenario's own version, recorded in <metadata> and vm.yaml
    settings: tuple[Choice, ...] = ()  # guest choices: any key but host.*
    host: tuple[Choice, ...] = ()  # host requirements: host.* keys only
    description: str = ""  # longer free text (not displayed, not in the XML)

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
        """``settings`` then ``host``."""
        return (*self.settings, *self.host)


@frozen_record
class Note(FrozenRecord):
    """Something the pipeline adapted, or a warning the user should read.

    ``create`` prints it on stderr (``Note: ...`` / ``Warning: ...``); ``source`` names who
    said it (``core``, a plugin). Hooks add notes with ``context.note(message, level, source)``.
    """

    level: Literal["info", "warning"]  # info or warning
    message: str  # one line
    source: str = "core"  # who says it: core or a plugin


@frozen_record
class DomainRule(FrozenRecord):
    """A semantic rule beyond the RelaxNG schema.

    ``check(domain, settings)`` yields one message per problem (nothing when the
    domain is fine). ``explanation`` says why the rule exists; it is printed with
    each problem. ``severity='error'`` refuses the domain; ``'warning'`` only notes it.
    """

    name: str  # shown as [rule NAME: ...] with each problem
    explanation: str  # why the rule exists; printed with each problem
    reference: str  # URL or citation; printed with each problem
    check: Callable[[Domain, Settings], Iterable[str]]  # check(domain, settings) yields one message per problem
    severity: Literal["error", "warning"] = "error"  # error refuses the VM; warning becomes a note


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
        """The word ``verify`` shows: ``ok``, ``MISMATCH``, or ``skipped`` (``ok`` is None)."""
        return "skipped" if self.ok is None else "ok" if self.ok else "MISMATCH"


@frozen_record
class CheckResult(FrozenRecord):
    """Outcome of one host check: ``status`` is ``PASS``, ``WARN`` or ``FAIL``.

    ``name`` is the check's name, ``message`` what was found (one line), ``advice`` one
    line saying what to do about a WARN or FAIL (``host check`` prints it after ``->``).
    ``host check`` exits 1 when any result is FAIL.
    """

    name: str  # the check's name
    status: Literal["PASS", "WARN", "FAIL"]
    message: str  # what was found, one line
    advice: str = ""  # what to do about a WARN or FAIL, one line


@frozen_record
class HostCheck(FrozenRecord):
    """A host check contributed by a plugin; ``run(host)`` returns its :class:`CheckResult`.

    ``host`` is a :class:`HostRoot` (it honours ``--host-root``: read through it, never
    through ``open``). ``summary`` says what is checked. The core runs every check in
    its own ``try``: an exception becomes a FAIL naming the plugin, never a crash.
    """

    name: str  # short, unique: 'kvm-device'
    summary: str  # what is checked, one line
    run: Callable[[Any], CheckResult]  # run(host: HostRoot) -> CheckResult


@frozen_record
class HostRequirement(FrozenRecord):
    """A ``host.*`` choice of a scenario, tied to the VM that needs it (``host_plan``'s input).

    ``key``, ``value``, ``rationale`` and ``reference`` come from the scenario's choice (or from
    ``context.require_host``); ``scenario`` and ``vm`` say who asked (``vm`` is ``None`` when a
    scenario is planned without a VM); ``vm_memory_bytes`` is that VM's memory, for sizing
    hugepage pools.
    """

    key: str  # host.*, or memory.hugepages / memory.hugepage_size for a VM backed by hugepages
    value: Any
    rationale: str
    reference: str
    scenario: str  # the scenario that asks
    vm: str | None = None  # the VM that asks; None when planning a scenario without a VM
    vm_memory_bytes: int = 0  # that VM's memory, to size hugepage pools


@frozen_record
class HostChange(FrozenRecord):
    """One knob of a host plan: current value -> target value, and why (what ``host_plan`` yields).

    ``knob`` names it for people (``vm.swappiness``); ``path`` is the absolute host path
    (before ``--host-root`` mapping) the change writes, or ``""`` for advice the user
    carries out (kernel command line). ``current`` is read through the ``host`` argument,
    ``target`` is what the VMs need, both as text. ``reason`` is the rationale and
    ``source`` the scenario (or scenarios) asking. ``reboot_required``: takes effect
    after a reboot; ``advice_only``: shown, never applied; ``conflict``: why two
    requirements could not both be met (empty when they could).
    """

    knob: str  # for people: 'vm.swappiness'
    path: str  # absolute host path written, or '' for advice
    current: str  # read through the host argument
    target: str  # what the VMs need
    reason: str  # the rationale
    source: str  # the scenario(s) asking
    reboot_required: bool = False  # takes effect after a reboot
    advice_only: bool = False  # shown, never applied
    conflict: str = ""  # why two requirements could not both be met; '' when they could

    @property
    def needed(self) -> bool:
        """Whether the host differs from the target."""
        return self.current != self.target
