"""virtscenario plugin: the built-in ``computation`` scenario.

The decisions live in :mod:`virtscenario_computation.scenario`. This module wires
them into virtscenario's hooks and keeps one promise the settings alone cannot:
the "dedicated vCPU" hint is only given to a guest whose vCPUs really are pinned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from virtscenario.api import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import BuildContext, Domain, Scenario, Settings

VIRTSCENARIO_API = (1, 2)
PLUGIN = "virtscenario-computation"
SCENARIO_NAME = "computation"


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    from .scenario import SCENARIO
    return [SCENARIO]


@hookimpl
def customize_model(domain: Domain, settings: Settings, context: BuildContext) -> None:
    """Drop ``<kvm><hint-dedicated/>`` when the core could not pin the vCPUs.

    The hint tells the guest it is never preempted, so it spins instead of yielding;
    on shared host CPUs that would steal time from everything else.
    """
    if context.scenario.name != SCENARIO_NAME:
        return
    if domain.features.kvm_hint_dedicated and len(domain.cputune.vcpupin) < domain.vcpus:
        domain.features.kvm_hint_dedicated = None
        why = ("pinning needs the host topology: --connect or --host-root" if context.host is None or
               not context.host.cpus else "see the cpu.pinning note for why they are not")
        context.note(f"features.kvm_hint_dedicated dropped: the vCPUs are not pinned to dedicated host CPUs ({why})",
                     source=PLUGIN)
