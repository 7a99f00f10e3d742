"""Host directory sharing over virtiofs.

``<devices><filesystem>``. The directory is ``<store>/<name>/share`` unless
``filesystem.source_dir`` names one; the guest mounts it by its tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import KBASE

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

VIRTIOFS_DOC = KBASE + "/virtiofs.html"
#: libvirt accepts <readonly/> on virtiofs from 11.0 (earlier it refuses to start the VM).
READONLY_VIRTIOFS_LIBVIRT = 11_000_000

SPECS = (
    SettingSpec("filesystem.share", "bool", False, "Share a host directory with the guest over virtiofs",
                rationale="off: a share exposes a host directory to the guest; scenarios that exchange files "
                          "with the host turn it on",
                reference=VIRTIOFS_DOC),
    SettingSpec("filesystem.source_dir", "str", None, "Host directory to share (default: <store>/<name>/share)",
                rationale="unset: a directory of the VM's own in the store, so no existing host data is exposed",
                reference=VIRTIOFS_DOC, applies_when=("filesystem.share=on",)),
    SettingSpec("filesystem.target", "str", "host_share", "Mount tag the guest mounts (mount -t virtiofs TAG /mnt)",
                rationale="a fixed, descriptive tag the guest's fstab can name",
                reference=VIRTIOFS_DOC, applies_when=("filesystem.share=on",)),
    SettingSpec("filesystem.readonly", "bool", True, "Share read-only where libvirt supports it",
                rationale="read-only: the guest cannot change host files unless a scenario needs it to",
                reference=VIRTIOFS_DOC, applies_when=("filesystem.share=on",)),
)


@record
class Filesystem(Record):
    """``<filesystem type='mount'>`` shared over virtiofs: host ``source_dir``, guest mount tag ``target_dir``."""

    source_dir: str
    target_dir: str
    driver: str = "virtiofs"
    accessmode: str = "passthrough"
    readonly: bool = False
    queue: Optional[int] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from . import unused
    s = settings.value
    if not (s("filesystem.share") and plan.share_dir):
        for key in ("filesystem.source_dir", "filesystem.target", "filesystem.readonly"):
            unused(ctx, settings, key, "filesystem.share is off")
        return
    readonly = bool(s("filesystem.readonly"))
    version = ctx.libvirt_version
    if readonly and (version is None or version < READONLY_VIRTIOFS_LIBVIRT):
        from ...host.facts import version_text
        readonly = False
        ctx.note(f"filesystem.readonly: virtiofs share {plan.share_dir} is read-write: libvirt "
                 f"{version_text(version)} refuses <readonly/> on virtiofs (supported from libvirt 11.0); "
                 f"mount it read-only in the guest (mount -t virtiofs -o ro {s('filesystem.target')} /mnt)",
                 "warning")
    dom.devices.filesystems.append(Filesystem(source_dir=plan.share_dir, target_dir=s("filesystem.target"),
                                              readonly=readonly))


def render(devices: Element, dom: Domain) -> None:
    from ..xml import num, sub
    for fs in dom.devices.filesystems:
        f = sub(devices, "filesystem", type_="mount", accessmode=fs.accessmode)
        sub(f, "driver", type_=fs.driver, queue=num(fs.queue))
        sub(f, "source", dir=fs.source_dir)
        sub(f, "target", dir=fs.target_dir)
        if fs.readonly:
            sub(f, "readonly")
