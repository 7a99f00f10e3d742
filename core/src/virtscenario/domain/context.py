"""The build context handed to model and XML hooks."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..records import Record, record
from ..settings.types import Choice
from ..types import Note, Scenario

if TYPE_CHECKING:  # pragma: no cover
    from ..host.facts import HostInfo
    from ..host.firmware import FirmwareSet
    from ..host.hypervisor import DomainCaps


@record
class BuildContext(Record):
    """What the pipeline knows while it builds one VM.

    ``caps`` is ``None`` when generating offline (no ``--connect``); ``host`` is
    ``None`` when nothing is known about the target host. ``libvirt_version`` is
    the target's (``major*1_000_000 + minor*1000 + micro``), or the locally
    installed libvirt's offline, or ``None`` when unknown. ``firmware`` holds the target
    host's firmware descriptors when they could be read (``--host-root``, or ``--connect``
    to a local libvirt), else ``None``. Hooks report what
    they adapted with :meth:`note`, and host needs they computed (a CPU split, say)
    with :meth:`require_host`: those replace the scenario's value for that key in
    the host plan and in the VM's vm.yaml. A hook that changed in the model what a
    setting decides (softrt's page size, say) records it with :meth:`adapt_setting`,
    so the setting, vm.yaml and the host plan say what the XML says.
    """

    scenario: Scenario  # the Scenario this VM is generated from
    vm_name: str  # the VM's name (--name)
    plugin: str = ""  # the distribution that provides the scenario
    caps: Optional[DomainCaps] = None  # domain capabilities; None offline
    host: Optional[HostInfo] = None  # facts of the target host; None when unknown
    libvirt_version: Optional[int] = None
    firmware: Optional[FirmwareSet] = None  # the host's firmware descriptors, when they can be read
    vm_dir: Optional[Path] = None  # <store>/<name>
    notes: list[Note] = field(default_factory=list)  # use note()
    host_requirements: list[Choice] = field(default_factory=list)  # use require_host()
    adapted: list[tuple[Choice, str]] = field(default_factory=list)  # use adapt_setting(): (choice, source)

    def require_host(self, key: str, value: object, rationale: str, reference: str) -> None:
        """Ask the host for ``key`` (``host.*``) = ``value``, replacing the scenario's value in the host plan
        and vm.yaml (API 1.1)."""
        if not key.startswith("host."):
            raise ValueError(f"host requirement {key!r} must start with 'host.'")
        self.host_requirements.append(Choice(key, value, rationale, reference))

    def adapt_setting(self, key: str, value: object, rationale: str, reference: str, source: str) -> None:
        """Say that the model now decides ``key`` = ``value`` (you changed it there): after
        ``customize_model`` the setting becomes layer ``adapted`` (origin ``source``: your plugin)
        with this rationale, in the settings later hooks see, vm.yaml and the host plan (API 1.3).
        The value is checked like a ``--set`` value. Not for ``host.*`` keys (use :meth:`require_host`)."""
        if key.startswith("host."):
            raise ValueError(f"{key!r} is a host requirement: use require_host")
        self.adapted.append((Choice(key, value, rationale, reference), source))

    def note(self, message: str, level: str = "info", source: str = "core") -> None:
        """Tell the user what a hook adapted (``level`` ``info`` or ``warning``; ``source``: your plugin)."""
        self.notes.append(Note(level, message, source))  # type: ignore[arg-type]

    @property
    def offline(self) -> bool:
        """True without domain capabilities (no ``--connect``)."""
        return self.caps is None
