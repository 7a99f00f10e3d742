"""The public plugin API: the one module a plugin imports from.

Everything here is covered by ``API_VERSION`` (major: incompatible change,
minor: additions). A plugin may declare ``VIRTSCENARIO_API = (1, 0)`` at module
level; a plugin needing a newer minor or another major is reported as
``incompatible`` instead of being loaded. Importing this module is cheap (no lxml,
no libvirt).
"""

from __future__ import annotations

from . import API_VERSION, __version__, hookimpl, model
from .build import housekeeping_split
from .context import BuildContext
from .errors import ConfigError, VirtscenarioError
from .hostinfo import format_cpulist, parse_cpulist, read_host
from .hostroot import HostRoot
from .model import Domain
from .types import (
                    CheckResult,
                    Choice,
                    DomainCaps,
                    DomainRule,
                    HostChange,
                    HostCheck,
                    HostCpu,
                    HostInfo,
                    HostRequirement,
                    Note,
                    ResolvedSetting,
                    Scenario,
                    Settings,
                    SettingSpec,
                    SevCaps,
)
from .units import format_size, parse_size

__all__ = [
    "API_VERSION", "BuildContext", "CheckResult", "Choice", "ConfigError", "Domain", "DomainCaps", "DomainRule",
    "HostChange", "HostCheck", "HostCpu", "HostInfo", "HostRequirement", "HostRoot", "Note", "ResolvedSetting",
    "Scenario", "SettingSpec", "Settings", "SevCaps", "VirtscenarioError", "__version__", "format_cpulist",
    "format_size", "hookimpl", "housekeeping_split", "model", "parse_cpulist", "parse_size", "read_host",
]
