"""Render a :class:`~virtscenario.domain.model.Domain` into an lxml tree.

No string templates: every element is built with lxml by its section, in the element
order libvirt itself uses when it formats a domain, so output is deterministic and
diffs against ``virsh dumpxml`` stay readable.
"""

from __future__ import annotations

from typing import Callable

from lxml import etree

from .model import Domain
from .sections import (
    clock,
    cpu,
    devices,
    disks,
    display,
    features,
    filesystem,
    firmware,
    hostdevs,
    lifecycle,
    memory,
    nics,
    numa,
    security,
    vm,
)

Renderer = Callable[[etree._Element, Domain], None]

#: Children of <domain>, in libvirt's order (domain_conf.c virDomainDefFormatInternal).
DOMAIN_ORDER: tuple[Renderer, ...] = (
    vm.render_head, memory.render_memory, memory.render_backing, cpu.render_vcpus, cpu.render_tuning,
    numa.render_numatune, firmware.render, features.render, cpu.render_cpu, clock.render, lifecycle.render_events,
    lifecycle.render_pm,
)
#: Children of <devices>, in libvirt's order.
DEVICES_ORDER: tuple[Renderer, ...] = (
    vm.render_emulator, disks.render, devices.render_controllers, filesystem.render, nics.render,
    devices.render_consoles, devices.render_channels, display.render_inputs, devices.render_tpms,
    display.render_graphics, display.render_sounds, display.render_videos, hostdevs.render, devices.render_watchdogs,
    memory.render_balloon, devices.render_rngs, devices.render_panics,
)
#: After </devices>.
TAIL_ORDER: tuple[Renderer, ...] = (security.render,)


def render_domain(dom: Domain) -> etree._Element:
    root = etree.Element("domain", type=dom.type)
    for render in DOMAIN_ORDER:
        render(root, dom)
    devs = etree.SubElement(root, "devices")
    for render in DEVICES_ORDER:
        render(devs, dom)
    for render in TAIL_ORDER:
        render(root, dom)
    return root


def to_bytes(root: etree._Element) -> bytes:
    """Pretty-printed, deterministic serialisation (no XML declaration, like virsh dumpxml)."""
    etree.indent(root, space="  ")
    return etree.tostring(root, pretty_print=True, encoding="utf-8")
