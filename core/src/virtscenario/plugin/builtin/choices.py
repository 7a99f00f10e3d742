"""Default answers for the single-answer hooks; any plugin can override them (these run last)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from virtscenario import hookimpl
from virtscenario.errors import ConfigError, VirtscenarioError

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.host.hypervisor import DomainCaps
    from virtscenario.settings.types import Settings


@hookimpl(trylast=True)
def select_machine(caps: Optional[DomainCaps], settings: Settings) -> Optional[str]:
    wanted = settings.value("vm.machine")
    if caps is None:
        return wanted
    if wanted == "q35":
        # The canonical name of the q35 alias in domcapabilities is the newest q35.
        from virtscenario.host.hypervisor import newest_q35
        return caps.machine if caps.machine.startswith("pc-q35-") else (newest_q35(caps.machines) or "q35")
    if caps.machines and wanted not in caps.machines:
        from virtscenario.host.hypervisor import newest_q35
        newest = newest_q35(caps.machines) or caps.machine
        raise ConfigError(f"machine {wanted!r} is not offered by this hypervisor (newest q35: {newest})")
    return wanted


@hookimpl(trylast=True)
def select_launch_security(caps: Optional[DomainCaps], settings: Settings) -> Optional[str]:
    wanted = settings.value("launch_security.type")
    if wanted == "none":
        return "none"
    if caps is None:
        if wanted == "auto":
            raise ConfigError("launch_security.type=auto needs --connect to read what the host supports; "
                              "offline, name the type (--set launch_security.type=sev-es)")
        return wanted
    from virtscenario.domain.caps import offered_launch_security
    offered = offered_launch_security(caps)
    if wanted == "auto":
        if not offered:
            raise VirtscenarioError("this host supports no confidential computing "
                                    "(no SEV, SEV-ES, SEV-SNP or TDX in domain capabilities)")
        return offered[0]
    if wanted not in offered:
        have = ", ".join(offered) or "none"
        raise VirtscenarioError(f"launch security {wanted!r} is not supported by this host (supported: {have})")
    return wanted
