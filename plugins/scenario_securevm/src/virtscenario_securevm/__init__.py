"""virtscenario plugin: the built-in ``securevm`` scenario.

The decisions live in :mod:`virtscenario_securevm.scenario`. This module wires
them into virtscenario's hooks, and gives the scenario's ``launch_security.type=auto``
its offline meaning:

* connected (``--connect``): the core picks the strongest type in the domain
  capabilities (SEV-SNP > SEV-ES > SEV, TDX) or refuses in one line when there is none;
* offline: the domain capabilities are unknown, so ``auto`` becomes SEV with the SEV-ES
  policy (``sev-es``), the strongest type libvirt 9.0's schema accepts.

Either way the core then fits the type to the host's firmware descriptors: SEV-ES only
when a descriptor offers ``amd-sev-es``, and SEV when none does or when the descriptors
cannot be read (no ``--host-root``, a remote ``--connect``), each said in a note.

Only the scenario's own ``auto`` is translated: a user who asks for ``auto`` offline
(``--set``, a settings file) still gets the core's "needs --connect" error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from virtscenario.api import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import DomainCaps, Scenario, Settings

VIRTSCENARIO_API = (1, 2)  # ResolvedSetting.layer/origin
SCENARIO_NAME = "securevm"


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    from .scenario import SCENARIO
    return [SCENARIO]


@hookimpl(tryfirst=True)
def select_launch_security(caps: Optional[DomainCaps], settings: Settings) -> Optional[str]:
    """Offline, the securevm scenario's ``auto`` is ``sev-es``; everything else is the core's decision."""
    item = settings.get("launch_security.type")
    if caps is not None or item is None or item.value != "auto":
        return None
    if (item.layer, item.origin) != ("scenario", SCENARIO_NAME):
        return None
    from .scenario import OFFLINE_LAUNCH_SECURITY
    return OFFLINE_LAUNCH_SECURITY
