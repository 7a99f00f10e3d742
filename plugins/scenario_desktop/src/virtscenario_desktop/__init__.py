"""virtscenario plugin: the built-in ``desktop`` scenario.

The decisions live in :mod:`virtscenario_desktop.scenario`. This module only wires
them into virtscenario's hooks and adds what the core model has no field for
(SPICE USB redirection). Imports stay lazy: this module is loaded on every CLI run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from virtscenario.api import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from virtscenario.api import BuildContext, Scenario, Settings, SettingSpec

VIRTSCENARIO_API = (1, 2)
PLUGIN = "virtscenario-desktop"
USB_REDIRECT = "desktop.usb_redirect"


@hookimpl
def register_scenarios() -> Iterable[Scenario]:
    from .scenario import SCENARIO
    return [SCENARIO]


@hookimpl
def register_settings() -> Iterable[SettingSpec]:
    from virtscenario.api import SettingSpec
    return [SettingSpec(USB_REDIRECT, "int", 0,
                        "SPICE USB redirection channels (usbredir): USB devices plugged into the viewer's machine "
                        "appear in the guest", minimum=0, maximum=8,
                        rationale="off unless a scenario with a SPICE display asks for it",
                        reference="https://libvirt.org/formatdomain.html#redirected-devices")]


@hookimpl
def postprocess_xml(root: Any, settings: Settings, context: BuildContext) -> None:
    """Add ``<redirdev bus='usb' type='spicevmc'/>`` channels (the model has no field for them)."""
    count = settings.value(USB_REDIRECT, 0)
    if not count:
        return
    if settings.value("graphics.type") != "spice" or settings.value("usb.controller") == "none":
        context.note(f"{USB_REDIRECT}={count} ignored: USB redirection needs graphics.type=spice and a USB "
                     "controller", source=PLUGIN)
        return
    from lxml import etree
    devices = root.find("devices")
    # libvirt formats redirdevs after video (and hostdevs); keep that order so diffs
    # against 'virsh dumpxml' stay small.
    anchor = devices.findall("video")
    index = devices.index(anchor[-1]) + 1 if anchor else len(devices)
    for offset in range(count):
        devices.insert(index + offset, etree.Element("redirdev", bus="usb", type="spicevmc"))
