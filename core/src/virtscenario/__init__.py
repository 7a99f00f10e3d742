"""virtscenario: scenario-driven libvirt guests and KVM host tuning.

Importing this package is deliberately cheap: it pulls in pluggy for the
``hookimpl`` marker and nothing else (no lxml, no libvirt, no plugins).
Plugin authors import from :mod:`virtscenario.api`.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Version of the plugin API (:mod:`virtscenario.api`). The major number changes
#: when a hook or a public type changes incompatibly; the minor when one is added.
#: 1.1 added BuildContext.require_host and api.read_host. 1.2 added provenance as data
#: (ResolvedSetting.layer/origin), the store, resolution and host helpers a host-side
#: plugin needs (see virtscenario.api), and required rationales on SettingSpec. 1.3 added the
#: host devices facts (read_host_devices, pci_problems) a VFIO host plan checks devices with.
API_VERSION = (1, 3)

PROJECT_NAME = "virtscenario"

#: Marker for plugin hook implementations: ``@hookimpl def register_scenarios(): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["API_VERSION", "PROJECT_NAME", "__version__", "hookimpl"]
