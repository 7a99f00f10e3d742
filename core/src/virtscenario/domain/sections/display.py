"""What a person sees and touches: remote display, video, input devices, sound.

``<devices>`` ``<graphics>``, ``<video>``, ``<input>``, ``<sound>`` and ``<audio>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

GFX_DOC = FD + "#graphical-framebuffers"
INPUT_DOC = FD + "#input-devices"

SPECS = (
    SettingSpec("graphics.type", "choice", "vnc", "Remote display", ("vnc", "spice", "none"),
                rationale="VNC: every viewer speaks it; scenarios for interactive desktops pick SPICE",
                reference=GFX_DOC),
    SettingSpec("graphics.listen", "str", "127.0.0.1", "Listen address, or 'none' for local-only (no TCP)",
                rationale="listening on loopback only: reach it through an SSH tunnel, never exposed "
                          "unauthenticated",
                reference=GFX_DOC, applies_when=("graphics.type!=none",)),
    SettingSpec("graphics.keymap", "str", None, "VNC keymap (unset: the client's keyboard is used)",
                rationale="unset: libvirt documents that a keymap is only needed for clients that do not send "
                          "raw key codes",
                reference=GFX_DOC, applies_when=("graphics.type=vnc",)),
    SettingSpec("video.model", "choice", "virtio", "Video model", ("virtio", "qxl", "vga", "bochs", "none"),
                rationale="virtio-gpu: the paravirtual display current guests drive natively",
                reference=FD + "#video-devices"),
    SettingSpec("video.accel3d", "bool", None, "virtio-gpu 3D acceleration (needs spice with GL)",
                rationale="unset: 3D needs a local SPICE client with OpenGL on the host",
                reference=FD + "#video-devices", applies_when=("video.model=virtio",)),
    SettingSpec("input.tablet", "bool", True, "USB tablet: absolute pointer, no mouse grab under VNC/SPICE",
                rationale="an absolute pointer keeps the viewer's cursor and the guest's in step (virt-install "
                          "adds a tablet to graphical guests)",
                reference=INPUT_DOC, applies_when=("graphics.type!=none",)),
    SettingSpec("input.keyboard", "choice", None, "Extra keyboard device (q35 always has PS/2)",
                ("virtio", "usb", "ps2"),
                rationale="unset: q35's built-in PS/2 keyboard is enough",
                reference=INPUT_DOC),
    SettingSpec("input.mouse", "choice", None, "Extra mouse device", ("virtio", "usb", "ps2"),
                rationale="unset: q35's built-in PS/2 mouse is enough next to the tablet",
                reference=INPUT_DOC),
    SettingSpec("sound.model", "choice", "none", "Sound card", ("ich9", "ich6", "ac97", "none"),
                rationale="none: a sound card only helps a guest someone listens to",
                reference=FD + "#sound-devices"),
)


@record
class Input(Record):
    """``<input type=... bus=...>``: tablet, mouse or keyboard."""

    type: str  # tablet|mouse|keyboard
    bus: str = "virtio"


@record
class Graphics(Record):
    """``<graphics type=...>`` with its ``<listen>``: VNC, SPICE or egl-headless, optionally with OpenGL."""

    type: str  # vnc|spice|none|egl-headless
    listen: Optional[str] = "address"  # address|none|socket
    listen_address: Optional[str] = "127.0.0.1"
    autoport: bool = True
    keymap: Optional[str] = None
    gl: Optional[bool] = None


@record
class Video(Record):
    """``<video><model type=... heads=...>``, with 3D acceleration for virtio-gpu where asked."""

    model: str  # virtio|qxl|vga|bochs|ramfb|none
    heads: int = 1
    primary: bool = True
    accel3d: Optional[bool] = None
    iommu: Optional[bool] = None


@record
class Sound(Record):
    """``<sound model=...>`` and, with ``audio_type``, the ``<audio>`` backend it plays through."""

    model: str  # ich9|ich6|ac97
    audio_type: Optional[str] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    from . import unused
    s = settings.value
    dev = dom.devices
    iommu = True if s("devices.iommu") else None
    gtype = s("graphics.type")
    if gtype != "none":
        if s("input.tablet") and s("usb.controller") != "none":
            dev.inputs.append(Input("tablet", "usb"))
        elif s("input.tablet"):
            unused(ctx, settings, "input.tablet", "the tablet is a USB device and usb.controller is none")
        listen = s("graphics.listen")
        gl = s("video.accel3d")
        if gl and gtype != "spice":
            unused(ctx, settings, "video.accel3d", "OpenGL needs graphics.type=spice")
        dev.graphics.append(Graphics(type=gtype, listen="none" if listen == "none" else "address",
                                     listen_address=None if listen == "none" else listen,
                                     keymap=s("graphics.keymap"), gl=True if gl and gtype == "spice" else None))
        vmodel = s("video.model")
        if s("video.accel3d") is not None and vmodel != "virtio":
            unused(ctx, settings, "video.accel3d", f"3D acceleration is a virtio-gpu feature, not {vmodel}")
        dev.videos.append(Video(model=vmodel, accel3d=s("video.accel3d") if vmodel == "virtio" else None,
                                iommu=iommu if vmodel == "virtio" else None))
    else:
        for key in ("graphics.listen", "graphics.keymap", "video.model", "video.accel3d", "input.tablet"):
            unused(ctx, settings, key, "graphics.type is none")
        dev.videos.append(Video(model="none"))
    if s("input.keyboard"):
        dev.inputs.append(Input("keyboard", s("input.keyboard")))
    if s("input.mouse"):
        dev.inputs.append(Input("mouse", s("input.mouse")))
    if s("sound.model") != "none":
        dev.sounds.append(Sound(s("sound.model")))


def render_inputs(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    for inp in dom.devices.inputs:
        sub(devices, "input", type_=inp.type, bus=inp.bus)


def render_graphics(devices: Element, dom: Domain) -> None:
    from ..xml import sub, yes
    for gfx in dom.devices.graphics:
        g = sub(devices, "graphics", type_=gfx.type, autoport=yes(gfx.autoport) if gfx.type in ("vnc", "spice")
                else None, keymap=gfx.keymap)
        if gfx.listen == "address":
            sub(g, "listen", type_="address", address=gfx.listen_address)
        elif gfx.listen:
            sub(g, "listen", type_=gfx.listen)
        if gfx.gl is not None:
            sub(g, "gl", enable=yes(gfx.gl))


def render_sounds(devices: Element, dom: Domain) -> None:
    from ..xml import sub
    sounds = dom.devices.sounds
    for i, snd in enumerate(sounds, start=1):
        el = sub(devices, "sound", model=snd.model)
        if snd.audio_type:
            sub(el, "audio", id=str(i))
    for i, snd in enumerate(sounds, start=1):
        if snd.audio_type:
            sub(devices, "audio", id=str(i), type_=snd.audio_type)


def render_videos(devices: Element, dom: Domain) -> None:
    from ..xml import driver_iommu, sub, yes
    for vid in dom.devices.videos:
        v = sub(devices, "video")
        driver_iommu(v, vid.iommu)
        mdl = sub(v, "model", type_=vid.model, heads=str(vid.heads) if vid.model != "none" else None,
                  primary=yes(vid.primary) if vid.model != "none" else None)
        if vid.accel3d is not None:
            sub(mdl, "acceleration", accel3d=yes(vid.accel3d))
