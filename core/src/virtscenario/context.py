"""The build context handed to model and XML hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .types import DomainCaps, HostInfo, Note, Scenario


@dataclass
class BuildContext:
    """What the pipeline knows while it builds one VM.

    ``caps`` is ``None`` when generating offline (no ``--connect``); ``host`` is
    ``None`` when nothing is known about the target host. ``libvirt_version`` is
    the target's (``major*1_000_000 + minor*1000 + micro``), or the locally
    installed libvirt's offline, or ``None`` when unknown. Hooks report what
    they adapted with :meth:`note`.
    """

    scenario: Scenario
    vm_name: str
    plugin: str = ""
    caps: Optional[DomainCaps] = None
    host: Optional[HostInfo] = None
    libvirt_version: Optional[int] = None
    vm_dir: Optional[Path] = None
    notes: list[Note] = field(default_factory=list)

    def note(self, message: str, level: str = "info", source: str = "core") -> None:
        self.notes.append(Note(level, message, source))  # type: ignore[arg-type]

    @property
    def offline(self) -> bool:
        return self.caps is None
