"""Resolved settings -> VM model: every section's build step, in order.

Scenarios decide values (with reasons) in their plugins; the sections only know how
each key shows up in libvirt's model, so any scenario can use any knob.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Domain
from .sections import SECTIONS

if TYPE_CHECKING:  # pragma: no cover
    from ..settings.types import Settings
    from .context import BuildContext
    from .model import VmPlan


def build_domain(settings: Settings, ctx: BuildContext, plan: VmPlan) -> Domain:
    dom = Domain(name=ctx.vm_name, uuid=plan.identity.uuid)
    for section in SECTIONS:
        section.build(dom, settings, ctx, plan)
    return dom
