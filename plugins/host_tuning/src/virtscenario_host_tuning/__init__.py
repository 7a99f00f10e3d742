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
