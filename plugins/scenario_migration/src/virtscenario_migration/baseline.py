"""A CPU definition every host of a pool can run: libvirt's hypervisor CPU baseline.

For each URI: open it, read its domain capabilities, take its ``host-model`` CPU
(what that hypervisor can give a guest); then ask the first hypervisor for the
baseline of all of them (``virConnectBaselineHypervisorCPU``, what ``virsh
hypervisor-cpu-baseline`` does with several domcapabilities files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from virtscenario.api import VirtscenarioError

#: VIR_CONNECT_BASELINE_CPU_MIGRATABLE: drop features that block migration (e.g. invtsc).
BASELINE_MIGRATABLE = 2
_Q35 = re.compile(r"^pc-q35-(\d+)\.(\d+)$")


@dataclass(frozen=True)
class HostCpu:
    uri: str
    machine: str  # the newest versioned q35 this hypervisor offers (domcapabilities <machine>)
    cpu_xml: str  # its host-model CPU as a <cpu> element


@dataclass(frozen=True)
class Baseline:
    model: str
    features: tuple[tuple[str, str], ...]  # (name, policy)
    machine: Optional[str]  # the oldest of the hosts' newest q35: one versioned machine they all run
    hosts: tuple[HostCpu, ...]
    xml: str


def parse_hosts(text: str) -> list[tuple[str, str]]:
    """``migration.hosts``: comma-separated host inventory names or libvirt URIs -> (as given, URI) pairs.

    Names are resolved through the host inventory (``virtscenario hosts list``; docs/fleet.md),
    read only when a name needs it.
    """
    from virtscenario.api import ConfigError, resolve_host_uris
    items = [u.strip() for u in text.split(",") if u.strip()]
    if not items:
        raise VirtscenarioError("migration.hosts is empty: give comma-separated host inventory names or libvirt URIs")
    for item in items:
        if any(ord(c) < 33 for c in item):
            raise VirtscenarioError(f"migration.hosts: {item!r} is neither a host name nor a libvirt URI")
    try:
        uris = resolve_host_uris(items)
    except ConfigError as exc:
        raise VirtscenarioError(f"migration.hosts: {exc}") from None
    seen: dict[str, str] = {}
    for item, uri in zip(items, uris):
        if uri in seen:
            same = f" ({uri})" if uri not in (item, seen[uri]) else ""
            raise VirtscenarioError(f"migration.hosts names the same host twice: {seen[uri]} and {item}{same}")
        seen[uri] = item
    return list(zip(items, uris))


def parse_uris(text: str) -> list[str]:
    """The libvirt URIs of ``migration.hosts`` (names resolved through the inventory)."""
    return [uri for _item, uri in parse_hosts(text)]


def host_model_cpu(domcaps_xml: str, uri: str) -> HostCpu:
    """The host-model CPU of one hypervisor, as the ``<cpu>`` element virsh builds from domcapabilities."""
    from lxml import etree
    root = etree.fromstring(domcaps_xml.encode() if isinstance(domcaps_xml, str) else domcaps_xml)
    mode = root.find("cpu/mode[@name='host-model']")
    if mode is None or mode.get("supported") != "yes" or mode.find("model") is None:
        raise VirtscenarioError(f"migration.hosts: {uri} offers no host-model CPU for this virt type")
    cpu = etree.Element("cpu")
    for child in mode:
        cpu.append(child)
    return HostCpu(uri, (root.findtext("machine") or "").strip(), etree.tostring(cpu, encoding="unicode"))


def oldest_machine(machines: Sequence[str]) -> Optional[str]:
    versions = []
    for name in machines:
        m = _Q35.match(name)
        if not m:
            return None
        versions.append((int(m.group(1)), int(m.group(2)), name))
    return min(versions)[2] if versions else None


def _error_text(exc: BaseException) -> str:
    getter = getattr(exc, "get_error_message", None)
    text = (getter() if callable(getter) else "") or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _open(uri: str) -> Any:
    import libvirt  # lazy: only this scenario with migration.hosts needs it
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open(uri)


def compute(uris: Sequence[str], virt_type: str, arch: str = "x86_64",
            opener: Optional[Callable[[str], Any]] = None) -> Baseline:
    """The migratable baseline CPU of ``uris``; one clear error naming the URI that failed."""
    opener = opener or _open
    conns: list[Any] = []
    try:
        hosts = []
        for uri in uris:
            try:
                conn = opener(uri)
            except ImportError:
                raise VirtscenarioError("migration.hosts needs libvirt-python (pip install libvirt-python)") from None
            except Exception as exc:  # noqa: BLE001 - libvirtError or anything a driver raises
                raise VirtscenarioError(f"migration.hosts: cannot connect to {uri}: {_error_text(exc)}") from None
            conns.append(conn)
            try:
                xml = conn.getDomainCapabilities(None, arch, "q35", virt_type, 0)
            except Exception as exc:  # noqa: BLE001
                raise VirtscenarioError(f"migration.hosts: {uri} gives no domain capabilities for {arch} q35 "
                                        f"({virt_type}): {_error_text(exc)}") from None
            hosts.append(host_model_cpu(xml, uri))
        machine = oldest_machine([h.machine for h in hosts])
        try:
            result = conns[0].baselineHypervisorCPU(None, arch, machine or "q35", virt_type,
                                                    [h.cpu_xml for h in hosts], BASELINE_MIGRATABLE)
        except Exception as exc:  # noqa: BLE001
            raise VirtscenarioError(f"migration.hosts: {uris[0]} could not compute the baseline CPU: "
                                    f"{_error_text(exc)}") from None
        return _parse(result, machine, tuple(hosts))
    finally:
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def _parse(xml: str, machine: Optional[str], hosts: tuple[HostCpu, ...]) -> Baseline:
    from lxml import etree
    root = etree.fromstring(xml.encode())
    model = (root.findtext("model") or "").strip()
    if not model:
        raise VirtscenarioError(f"migration.hosts: the baseline of {', '.join(h.uri for h in hosts)} has no CPU model")
    features = tuple((f.get("name"), f.get("policy") or "require") for f in root.findall("feature"))
    return Baseline(model, features, machine, hosts, xml)
