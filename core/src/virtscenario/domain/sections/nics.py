"""Network interfaces: where they connect, their model and virtio-net queue pairs.

``<devices><interface>``. ``--network network=default,queues=4`` is parsed here and
becomes the per-device settings ``networks[0].queues`` (and ``.model``), layer ``flag``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import FrozenRecord, Record, frozen_record, record
from ...settings.types import ResolvedSetting, SettingSpec
from .refs import FD

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.registry import SettingRegistry
    from ...settings.types import Settings
    from ...vm.identity import Identity
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

NIC_DOC = FD + "#network-interfaces"

SPECS = (
    SettingSpec("network.model", "choice", "virtio", "NIC model", ("virtio", "e1000e", "e1000", "rtl8139"),
                rationale="virtio-net: the paravirtual NIC with the least emulation, supported by every current "
                          "Linux and by the virtio-win drivers",
                reference=NIC_DOC),
    SettingSpec("network.queues", "int", 1, "virtio-net queue pairs (0: one per vCPU, at most 8)",
                minimum=0, maximum=256,
                rationale="1: one queue pair is enough until a guest pushes traffic from several vCPUs at once",
                reference=FD + "#setting-nic-driver-specific-options", applies_when=("network.model=virtio",)),
    SettingSpec("network.default", "str", "network=default", "Network used when no --network is given",
                rationale="libvirt's NAT network 'default', which virt-install also uses when the host has no "
                          "bridge",
                reference="https://github.com/virt-manager/virt-manager/blob/v5.0.0/virtinst/devices/interface.py "
                          "(set_default_source)"),
)

NET_OPTIONS = ("network", "bridge", "model", "mac", "queues")
DEVICE_KEYS = ("model", "queues")


@frozen_record
class NetArg(FrozenRecord):
    kind: str  # network|bridge|user
    source: str = ""
    model: Optional[str] = None
    mac: Optional[str] = None
    queues: Optional[str] = None


def parse_network(text: str) -> Optional[NetArg]:
    """``network=NAME``, ``bridge=NAME``, ``user``, or ``none`` (returns None)."""
    from ...errors import ConfigError
    from ...settings.cliargs import option_pairs
    head = text.split(",", 1)[0].strip()
    if head == "none":
        if "," in text:
            raise ConfigError(f"--network {text!r}: 'none' takes no options")
        return None
    rest = text.split(",", 1)[1] if "," in text else ""
    if head == "user":
        opts = option_pairs(rest, ("model", "mac"), "--network")
        return NetArg("user", "", opts.get("model"), _mac(opts.get("mac"), text))
    opts = option_pairs(text, NET_OPTIONS, "--network")
    kinds = [k for k in ("network", "bridge") if k in opts]
    if len(kinds) != 1:
        raise ConfigError(f"--network {text!r}: give exactly one of network=NAME, bridge=NAME, user or none")
    source = opts[kinds[0]]
    if "/" in source or any(ord(c) < 32 for c in source):
        raise ConfigError(f"--network {text!r}: {source!r} is not a valid {kinds[0]} name")
    return NetArg(kinds[0], source, opts.get("model"), _mac(opts.get("mac"), text), opts.get("queues"))


def _mac(mac: Optional[str], text: str) -> Optional[str]:
    from ...errors import ConfigError
    if mac is None:
        return None
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ConfigError(f"--network {text!r}: {mac!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    if int(parts[0], 16) & 1:
        raise ConfigError(f"--network {text!r}: {mac!r} is a multicast address")
    return mac.lower()


def device_settings(specs: list[NetArg], registry: SettingRegistry,
                    settings: Settings) -> dict[str, ResolvedSetting]:
    """``networks[i].model`` and ``networks[i].queues`` for every option a ``--network`` gave."""
    from ...settings.resolve import device_overrides
    out = device_overrides(specs, DEVICE_KEYS, "network", "networks", "--network", "interface", registry, settings)
    if any(key.endswith(".queues") and item.value == 0 for key, item in out.items()):
        from ...errors import ConfigError
        raise ConfigError("--network queues= must be between 1 and 256 (network.queues=0 means one per vCPU)")
    return out


@frozen_record
class NetPlan(FrozenRecord):
    """One network interface as planned from ``--network`` or ``network.default``, its MAC from the identity."""

    kind: str  # network|bridge|user
    source: str
    model: str
    mac: str
    queues: int


def plan_nets(specs: Optional[list[NetArg]], settings: Settings, identity: Identity,
              ctx: BuildContext) -> list[NetPlan]:
    """Every interface of the VM, from ``--network`` options (None: network.default)."""
    from . import unused
    if specs is None:
        default = parse_network(settings.value("network.default"))
        specs = [default] if default else []
    else:
        unused(ctx, settings, "network.default", "it is used only when no --network is given")
    plans = []
    for i, spec in enumerate(specs):
        model = settings.device_value("networks", i, "model", "network.model")
        queues = settings.device_value("networks", i, "queues", "network.queues")
        plans.append(NetPlan(spec.kind, spec.source, model, spec.mac or identity.mac(i), queues))
    return plans


@record
class Interface(Record):
    """One ``<interface type=...>``: where it connects (``source``), MAC, model, virtio-net queue pairs, boot order."""

    type: str  # network|bridge|user|direct
    source: str = ""  # network name, bridge name, or host interface for direct
    mac: str = ""
    model: str = "virtio"
    queues: Optional[int] = None
    iommu: Optional[bool] = None
    boot_order: Optional[int] = None


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    iommu = True if settings.value("devices.iommu") else None
    for net in plan.nets:
        queues = net.queues or min(dom.vcpus, 8)  # 0: one pair per vCPU, at most 8
        if net.model != "virtio" and queues > 1:
            ctx.note(f"network.queues={queues}: multiqueue is a virtio-net feature, not {net.model}")
        if net.kind == "user" and net.model == "virtio" and queues > 1:
            # libvirt refuses to start it: "multiqueue is not supported for network interfaces of type user".
            ctx.note(f"network.queues: user networking (slirp) has a single queue; the {queues} queues apply "
                     "to network= and bridge= interfaces only")
            queues = 1
        dom.devices.interfaces.append(Interface(
            type=net.kind, source=net.source, mac=net.mac, model=net.model,
            queues=queues if net.model == "virtio" and queues > 1 else None,
            iommu=iommu if net.model == "virtio" else None))


def render(devices: Element, dom: Domain) -> None:
    from ..xml import num, on, sub
    for nic in dom.devices.interfaces:
        el = sub(devices, "interface", type_=nic.type)
        if nic.mac:
            sub(el, "mac", address=nic.mac)
        if nic.type == "network":
            sub(el, "source", network=nic.source)
        elif nic.type == "bridge":
            sub(el, "source", bridge=nic.source)
        elif nic.type == "direct":
            sub(el, "source", dev=nic.source, mode="bridge")
        sub(el, "model", type_=nic.model)
        if nic.queues or nic.iommu is not None:
            sub(el, "driver", queues=num(nic.queues), iommu=on(nic.iommu))
        if nic.boot_order is not None:
            sub(el, "boot", order=str(nic.boot_order))
