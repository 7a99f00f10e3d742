"""virtscenario host tuning: host checks, and a journaled, revertible host plan for scenarios.

Hook implementations only; each imports its module when called, so loading the
plugin on every CLI run costs nothing but this file.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from virtscenario.api import hookimpl

VIRTSCENARIO_API = (1, 3)  # 1.3: host devices facts (vfio.py)
__version__ = "0.1.0"


@hookimpl
def register_settings() -> Iterable[Any]:
    from virtscenario.api import SettingSpec
    yield SettingSpec("host.hugepages_nodes", "str", None,
                      "NUMA nodes that hold the VM's static hugepages: 'all' (spread evenly) or a node list "
                      "such as 0 or 0-1; unset: the kernel's global pool",
                      rationale="unset: the kernel spreads the global pool over the nodes itself; a node list is "
                                "needed when the VM's memory is bound to those nodes",
                      reference="https://docs.kernel.org/admin-guide/mm/hugetlbpage.html")


@hookimpl
def host_checks() -> Iterable[Any]:
    from .checks import host_checks as checks
    return list(checks())


@hookimpl
def host_plan(requirements: Sequence[Any], host: Any) -> Iterable[Any]:
    from virtscenario.api import HostChange

    from .plan import build_plan
    plan = build_plan(requirements, host)
    # create shows the plan and never stops on it: what the host cannot provide becomes advice.
    refused = [HostChange("refused", "", "-", "-", text, "host_tuning", advice_only=True) for text in plan.refusals]
    return plan.changes + refused


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import register
    register(cli)
