"""virtscenario: scenario-driven libvirt guests and KVM host tuning.

Importing this package is deliberately cheap: nothing is imported (``--version`` stops
here); pluggy comes with the first use of the ``hookimpl`` marker. Plugin authors import
from :mod:`virtscenario.api`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: Version of the plugin API (:mod:`virtscenario.api`). The major number changes
#: when a hook or a public type changes incompatibly; the minor when one is added.
#: 1.1 added BuildContext.require_host and api.read_host. 1.2 added provenance as data
#: (ResolvedSetting.layer/origin), the store, resolution and host helpers a host-side
#: plugin needs (see virtscenario.api), and required rationales on SettingSpec. 1.3 added the
#: host devices facts (read_host_devices, pci_problems) a VFIO host plan checks devices with,
#: the verify_checks hook with GuestCheck, and resolve_host_uris (inventory names).
API_VERSION = (1, 3)

PROJECT_NAME = "virtscenario"


def __getattr__(name: str) -> Any:
    """``hookimpl``, the marker for plugin hook implementations (``@hookimpl def register_scenarios():``),
    made on first use so that importing the package does not import pluggy."""
    if name == "hookimpl":
        import pluggy
        marker = pluggy.HookimplMarker(PROJECT_NAME)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["API_VERSION", "PROJECT_NAME", "__version__", "hookimpl"]
