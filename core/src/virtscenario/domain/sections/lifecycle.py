"""What happens when the guest powers off, reboots, crashes or suspends.

``<on_poweroff>``, ``<on_reboot>``, ``<on_crash>`` and ``<pm>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, VIRTINST5

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

EVENTS_DOC = FD + "#events-configuration"
PM_DOC = FD + "#power-management"
ACTIONS = ("destroy", "restart", "preserve", "rename-restart")

SPECS = (
    SettingSpec("vm.on_poweroff", "choice", "destroy", "Action when the guest powers off", ACTIONS,
                rationale="destroy: a guest that powers off stops, libvirt's default",
                reference=EVENTS_DOC),
    SettingSpec("vm.on_reboot", "choice", "restart", "Action when the guest reboots", ACTIONS,
                rationale="restart: a guest that reboots comes back, libvirt's default",
                reference=EVENTS_DOC),
    SettingSpec("vm.on_crash", "choice", "destroy", "Action when the guest crashes",
                (*ACTIONS, "coredump-destroy", "coredump-restart"),
                rationale="destroy: a crashed guest stops, libvirt's default",
                reference=EVENTS_DOC),
    SettingSpec("pm.suspend_to_mem", "bool", False, "Let the guest suspend to RAM",
                rationale="off, as virt-install sets it: with suspend exposed, 'an ACPI shutdown event triggers a "
                          "suspend in the guest, which causes a lot of user confusion'",
                reference=f"{VIRTINST5}/domain/pm.py"),
    SettingSpec("pm.suspend_to_disk", "bool", False, "Let the guest hibernate",
                rationale="off, as virt-install sets it (same ACPI shutdown confusion); a managed save "
                          "(virsh managedsave) keeps a guest's state from the host instead",
                reference=f"{VIRTINST5}/domain/pm.py"),
)


@record
class Pm(Record):
    """``<pm>``: whether the guest may suspend to RAM (S3) or to disk (S4); ``None``: not written."""

    suspend_to_mem: Optional[bool] = None
    suspend_to_disk: Optional[bool] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    s = settings.value
    dom.on_poweroff, dom.on_reboot, dom.on_crash = s("vm.on_poweroff"), s("vm.on_reboot"), s("vm.on_crash")
    dom.pm = Pm(suspend_to_mem=s("pm.suspend_to_mem"), suspend_to_disk=s("pm.suspend_to_disk"))


def render_events(root: Element, dom: Domain) -> None:
    from ..xml import sub
    sub(root, "on_poweroff", dom.on_poweroff)
    sub(root, "on_reboot", dom.on_reboot)
    sub(root, "on_crash", dom.on_crash)


def render_pm(root: Element, dom: Domain) -> None:
    from ..xml import sub, yes
    if dom.pm.suspend_to_mem is None and dom.pm.suspend_to_disk is None:
        return
    pm = sub(root, "pm")
    if dom.pm.suspend_to_mem is not None:
        sub(pm, "suspend-to-mem", enabled=yes(dom.pm.suspend_to_mem))
    if dom.pm.suspend_to_disk is not None:
        sub(pm, "suspend-to-disk", enabled=yes(dom.pm.suspend_to_disk))
