"""Time keeping: the guest clock's offset and its timers.

``<clock>`` with ``<timer>`` elements (rtc, pit, hpet, kvmclock, hypervclock).
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, VIRTINST

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

TIME_DOC = FD + "#time-keeping"
TICK = ("catchup", "delay", "merge", "discard")

SPECS = (
    SettingSpec("clock.offset", "choice", "utc", "Guest clock offset", ("utc", "localtime"),
                rationale="utc: Linux and most OSes keep the hardware clock in UTC; only Windows expects "
                          "localtime",
                reference=TIME_DOC),
    SettingSpec("clock.rtc_tickpolicy", "choice", "catchup", "RTC timer tick policy", TICK,
                rationale="catchup: missed RTC ticks are delivered faster until the guest catches up, as "
                          "virt-install configures the RTC",
                reference=f"{VIRTINST}/domain/clock.py"),
    SettingSpec("clock.pit_tickpolicy", "choice", "delay", "PIT timer tick policy", TICK,
                rationale="delay: missed PIT ticks are delivered late rather than in bursts, as virt-install "
                          "configures the PIT",
                reference=f"{VIRTINST}/domain/clock.py"),
    SettingSpec("clock.hpet", "bool", False, "HPET timer",
                rationale="off: every HPET access traps to QEMU; guests time with the TSC or kvmclock instead "
                          "(virt-install also disables it)",
                reference=f"{VIRTINST}/domain/clock.py"),
    SettingSpec("clock.kvmclock", "bool", None, "kvmclock paravirtual clock (unset: hypervisor default)",
                rationale="unset: KVM guests get kvmclock by default",
                reference=TIME_DOC),
)


@record
class Timer(Record):
    """One ``<clock><timer name=...>``: ``present`` turns the timer on or off (``None``: not written), ``tickpolicy``
    says what happens to missed ticks.
    """

    name: str  # rtc|pit|hpet|kvmclock|hypervclock|tsc
    present: Optional[bool] = None
    tickpolicy: Optional[str] = None


@record
class Clock(Record):
    """``<clock offset=...>`` and its timers; ``offset`` is ``utc`` or ``localtime`` (Windows guests)."""

    offset: str = "utc"
    timers: list[Timer] = field(default_factory=list)


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    s = settings.value
    timers = [Timer("rtc", tickpolicy=s("clock.rtc_tickpolicy")),
              Timer("pit", tickpolicy=s("clock.pit_tickpolicy")),
              Timer("hpet", present=bool(s("clock.hpet")))]
    if s("clock.kvmclock") is not None:
        timers.append(Timer("kvmclock", present=bool(s("clock.kvmclock"))))
    if s("features.hyperv"):
        timers.append(Timer("hypervclock", present=True))
    dom.clock = Clock(offset=s("clock.offset"), timers=timers)


def render(root: Element, dom: Domain) -> None:
    from ..xml import sub, yes
    el = sub(root, "clock", offset=dom.clock.offset)
    for t in dom.clock.timers:
        sub(el, "timer", name=t.name, tickpolicy=t.tickpolicy, present=yes(t.present))
