"""The domain as a whole: type (kvm or TCG), name, uuid, title, description, metadata, emulator.

``<domain type>``, ``<name>``, ``<uuid>``, ``<title>``, ``<description>``, ``<metadata>``
and ``<devices><emulator>``. The identity (uuid, MACs, secret uuids) comes from the
plan, so regenerating a VM keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

METADATA_NS = "urn:virtscenario:domain:1"

SPECS = (
    SettingSpec("vm.virt_type", "choice", "kvm", "Domain type: kvm (hardware) or qemu (TCG emulation)",
                ("kvm", "qemu"),
                rationale="KVM runs guest code on the CPU; TCG emulates every instruction and is only a "
                          "fallback (--connect adapts to qemu when the hypervisor has no KVM)",
                reference=FD + "#element-and-attribute-overview"),
    SettingSpec("vm.emulator", "str", None, "Emulator binary; unset lets libvirt choose",
                rationale="unset: libvirt uses the emulator its capabilities report for the arch and domain "
                          "type, which is what an installed QEMU provides",
                reference=FD + "#devices"),
    SettingSpec("vm.migratable", "bool", False,
                "The VM is meant to live-migrate: rules refuse what ties it to one host",
                rationale="off: most VMs stay on their host; a migration scenario turns it on and the "
                          "migratable-vm rule then refuses host-bound devices and settings",
                reference="https://libvirt.org/migration.html"),
    SettingSpec("vm.title", "str", None, "Short title shown by virsh list --title",
                rationale="unset: the VM's name identifies it; a title is for people and optional",
                reference=FD + "#general-metadata"),
)


@record
class Metadata(Record):
    """Recorded under ``<metadata><virtscenario:scenario xmlns:virtscenario=...>``."""

    scenario: str = ""
    scenario_version: str = ""
    plugin: str = ""
    core_version: str = ""
    os_uri: str = ""  # libosinfo's id of the guest OS (os.id), rendered by guestos


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from ... import __version__
    s = settings.value
    dom.uuid = plan.identity.uuid
    dom.type = s("vm.virt_type")
    dom.title = s("vm.title")
    # The core writes <description> (and <metadata>): a plugin adds to them, never a second one.
    dom.description = f"{ctx.scenario.name}: {ctx.scenario.summary}"
    dom.metadata = Metadata(ctx.scenario.name, ctx.scenario.version, ctx.plugin, __version__)
    dom.devices.emulator = s("vm.emulator")
    if s("vm.migratable"):
        # The migratable-vm rule refuses what blocks migration; say what was checked when nothing did.
        ctx.note("vm.migratable=on: checked that no host device, virtiofs share, launch security, "
                 "host-passthrough CPU, pinning or hugepage/locked memory ties this VM to its host")


def render_head(root: Element, dom: Domain) -> None:
    from ..xml import sub
    sub(root, "name", dom.name)
    sub(root, "uuid", dom.uuid)
    if dom.title:
        sub(root, "title", dom.title)
    if dom.description:
        sub(root, "description", dom.description)
    md = dom.metadata
    if md.scenario:
        from lxml import etree
        meta = sub(root, "metadata")
        vs = etree.SubElement(meta, f"{{{METADATA_NS}}}scenario", nsmap={"virtscenario": METADATA_NS})
        vs.set("name", md.scenario)
        vs.set("version", md.scenario_version)
        if md.plugin:
            vs.set("plugin", md.plugin)
        if md.core_version:
            vs.set("generator", f"virtscenario {md.core_version}")
        from .guestos import render_metadata
        render_metadata(meta, dom)


def render_emulator(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    if dom.devices.emulator:
        sub(devices, "emulator", dom.devices.emulator)
