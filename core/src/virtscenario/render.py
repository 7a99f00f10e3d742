"""Render a :class:`~virtscenario.model.Domain` into an lxml tree.

No string templates: every element is built with lxml, in the element order
libvirt itself uses when it formats a domain, so output is deterministic and
diffs against ``virsh dumpxml`` stay readable.
"""

from __future__ import annotations

from typing import Optional

from lxml import etree

from . import model as m

METADATA_NS = "urn:virtscenario:domain:1"
_E = etree.Element
_S = etree.SubElement


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _on(value: bool) -> str:
    return "on" if value else "off"


def _kib(nbytes: int) -> str:
    return str(nbytes // 1024)


def _sub(parent: etree._Element, tag: str, text: Optional[str] = None, **attrs: Optional[str]) -> etree._Element:
    # ``type_`` stands for ``type`` (a builtin); other names are libvirt's as written (detect_zeroes).
    el = _S(parent, tag, {("type" if k == "type_" else k): v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _driver_iommu(parent: etree._Element, iommu: Optional[bool]) -> None:
    if iommu is not None:
        _sub(parent, "driver", iommu=_on(iommu))


def render_domain(dom: m.Domain) -> etree._Element:
    root = _E("domain", type=dom.type)
    _sub(root, "name", dom.name)
    _sub(root, "uuid", dom.uuid)
    if dom.title:
        _sub(root, "title", dom.title)
    if dom.description:
        _sub(root, "description", dom.description)
    _render_metadata(root, dom.metadata)
    if dom.max_memory:
        _sub(root, "maxMemory", _kib(dom.max_memory), unit="KiB", slots=str(dom.max_memory_slots or 1))
    _sub(root, "memory", _kib(dom.memory), unit="KiB")
    _sub(root, "currentMemory", _kib(dom.current_memory or dom.memory), unit="KiB")
    if dom.memtune:
        _render_memtune(root, dom.memtune)
    if not dom.memory_backing.empty():
        _render_memory_backing(root, dom.memory_backing)
    _sub(root, "vcpu", str(dom.vcpus), placement=dom.vcpu_placement, cpuset=dom.vcpu_cpuset)
    if dom.iothreads:
        _sub(root, "iothreads", str(dom.iothreads))
    if not dom.cputune.empty():
        _render_cputune(root, dom.cputune)
    if dom.numatune:
        nt = _sub(root, "numatune")
        _sub(nt, "memory", mode=dom.numatune.mode, nodeset=dom.numatune.nodeset,
             placement=dom.numatune.placement)
    _render_os(root, dom.os)
    _render_features(root, dom.features)
    _render_cpu(root, dom.cpu)
    _render_clock(root, dom.clock)
    _sub(root, "on_poweroff", dom.on_poweroff)
    _sub(root, "on_reboot", dom.on_reboot)
    _sub(root, "on_crash", dom.on_crash)
    if dom.pm.suspend_to_mem is not None or dom.pm.suspend_to_disk is not None:
        pm = _sub(root, "pm")
        if dom.pm.suspend_to_mem is not None:
            _sub(pm, "suspend-to-mem", enabled=_yes(dom.pm.suspend_to_mem))
        if dom.pm.suspend_to_disk is not None:
            _sub(pm, "suspend-to-disk", enabled=_yes(dom.pm.suspend_to_disk))
    _render_devices(root, dom.devices)
    if dom.launch_security:
        _render_launch_security(root, dom.launch_security)
    return root


def _render_metadata(root: etree._Element, md: m.Metadata) -> None:
    if not md.scenario:
        return
    meta = _sub(root, "metadata")
    vs = etree.SubElement(meta, f"{{{METADATA_NS}}}scenario", nsmap={"virtscenario": METADATA_NS})
    vs.set("name", md.scenario)
    vs.set("version", md.scenario_version)
    if md.plugin:
        vs.set("plugin", md.plugin)
    if md.core_version:
        vs.set("generator", f"virtscenario {md.core_version}")


def _render_memtune(root: etree._Element, mt: m.MemTune) -> None:
    el = _sub(root, "memtune")
    for tag, value in (("hard_limit", mt.hard_limit), ("soft_limit", mt.soft_limit),
                       ("swap_hard_limit", mt.swap_hard_limit)):
        if value is not None:
            _sub(el, tag, _kib(value), unit="KiB")


def _render_memory_backing(root: etree._Element, mb: m.MemoryBacking) -> None:
    el = _sub(root, "memoryBacking")
    if mb.hugepages or mb.hugepages_default:
        hp = _sub(el, "hugepages")
        for page in mb.hugepages:
            _sub(hp, "page", size=str(page.size_kib), unit="KiB", nodeset=page.nodeset)
    if mb.nosharepages:
        _sub(el, "nosharepages")
    if mb.locked:
        _sub(el, "locked")
    if mb.source:
        _sub(el, "source", type_=mb.source)
    if mb.access:
        _sub(el, "access", mode=mb.access)
    if mb.allocation:
        _sub(el, "allocation", mode=mb.allocation)
    if mb.discard:
        _sub(el, "discard")


def _render_cputune(root: etree._Element, ct: m.CpuTune) -> None:
    el = _sub(root, "cputune")
    for pin in ct.vcpupin:
        _sub(el, "vcpupin", vcpu=str(pin.id), cpuset=pin.cpuset)
    if ct.emulatorpin:
        _sub(el, "emulatorpin", cpuset=ct.emulatorpin)
    for pin in ct.iothreadpin:
        _sub(el, "iothreadpin", iothread=str(pin.id), cpuset=pin.cpuset)
    for sched in ct.vcpusched:
        _sub(el, "vcpusched", vcpus=sched.vcpus, scheduler=sched.scheduler,
             priority=None if sched.priority is None else str(sched.priority))


def _render_os(root: etree._Element, os_: m.Os) -> None:
    el = _sub(root, "os", firmware=os_.firmware)
    _sub(el, "type", os_.type, arch=os_.arch, machine=os_.machine)
    if os_.firmware_features:
        fw = _sub(el, "firmware")
        for feat in os_.firmware_features:
            _sub(fw, "feature", enabled=_yes(feat.enabled), name=feat.name)
    if os_.loader or os_.loader_secure is not None or os_.loader_stateless is not None:
        loader = _sub(el, "loader", os_.loader or None,
                      readonly=None if os_.loader_readonly is None else _yes(os_.loader_readonly),
                      secure=None if os_.loader_secure is None else _yes(os_.loader_secure),
                      type_=os_.loader_type,
                      stateless=None if os_.loader_stateless is None else _yes(os_.loader_stateless))
        del loader
    if os_.nvram:
        _sub(el, "nvram", os_.nvram)
    for dev in os_.boot:
        _sub(el, "boot", dev=dev)
    if os_.bootmenu is not None:
        _sub(el, "bootmenu", enable=_yes(os_.bootmenu))


def _render_features(root: etree._Element, f: m.Features) -> None:
    el = _sub(root, "features")
    if f.acpi:
        _sub(el, "acpi")
    if f.apic:
        _sub(el, "apic")
    if f.pae:
        _sub(el, "pae")
    if f.hyperv:
        hv = _sub(el, "hyperv", mode="custom")
        h = f.hyperv
        for name, enabled in (("relaxed", h.relaxed), ("vapic", h.vapic)):
            if enabled:
                _sub(hv, name, state="on")
        if h.spinlocks_retries:
            _sub(hv, "spinlocks", state="on", retries=str(h.spinlocks_retries))
        for name, enabled in (("vpindex", h.vpindex), ("synic", h.synic), ("stimer", h.stimer),
                              ("frequencies", h.frequencies), ("tlbflush", h.tlbflush), ("ipi", h.ipi)):
            if enabled:
                _sub(hv, name, state="on")
    if f.kvm_hidden is not None or f.kvm_hint_dedicated is not None or f.kvm_poll_control is not None:
        kvm = _sub(el, "kvm")
        if f.kvm_hidden is not None:
            _sub(kvm, "hidden", state=_on(f.kvm_hidden))
        if f.kvm_hint_dedicated is not None:
            _sub(kvm, "hint-dedicated", state=_on(f.kvm_hint_dedicated))
        if f.kvm_poll_control is not None:
            _sub(kvm, "poll-control", state=_on(f.kvm_poll_control))
    if f.pmu is not None:
        _sub(el, "pmu", state=_on(f.pmu))
    if f.vmport is not None:
        _sub(el, "vmport", state=_on(f.vmport))
    if f.smm is not None:
        _sub(el, "smm", state=_on(f.smm))
    if f.ioapic_driver:
        _sub(el, "ioapic", driver=f.ioapic_driver)


def _render_cpu(root: etree._Element, cpu: m.Cpu) -> None:
    if not cpu.mode:
        return
    el = _sub(root, "cpu", mode=cpu.mode, check=cpu.check,
              migratable=None if cpu.migratable is None else _on(cpu.migratable))
    if cpu.model:
        _sub(el, "model", cpu.model, fallback=cpu.model_fallback)
    if cpu.topology:
        t = cpu.topology
        _sub(el, "topology", sockets=str(t.sockets), dies=str(t.dies), cores=str(t.cores), threads=str(t.threads))
    if cpu.cache_mode:
        _sub(el, "cache", mode=cpu.cache_mode)
    for feat in cpu.features:
        _sub(el, "feature", policy=feat.policy, name=feat.name)
    if cpu.numa:
        numa = _sub(el, "numa")
        for cell in cpu.numa:
            _sub(numa, "cell", id=str(cell.id), cpus=cell.cpus, memory=_kib(cell.memory), unit="KiB",
                 memAccess=cell.mem_access)


def _render_clock(root: etree._Element, clock: m.Clock) -> None:
    el = _sub(root, "clock", offset=clock.offset)
    for t in clock.timers:
        _sub(el, "timer", name=t.name, tickpolicy=t.tickpolicy,
             present=None if t.present is None else _yes(t.present))


def _render_devices(root: etree._Element, d: m.Devices) -> None:
    el = _sub(root, "devices")
    if d.emulator:
        _sub(el, "emulator", d.emulator)
    for disk in d.disks:
        _render_disk(el, disk)
    for ctl in d.controllers:
        c = _sub(el, "controller", type_=ctl.type, index=None if ctl.index is None else str(ctl.index),
                 model=ctl.model, ports=None if ctl.ports is None else str(ctl.ports))
        _driver_iommu(c, ctl.iommu)
    for fs in d.filesystems:
        f = _sub(el, "filesystem", type_="mount", accessmode=fs.accessmode)
        _sub(f, "driver", type_=fs.driver, queue=None if fs.queue is None else str(fs.queue))
        _sub(f, "source", dir=fs.source_dir)
        _sub(f, "target", dir=fs.target_dir)
        if fs.readonly:
            _sub(f, "readonly")
    for nic in d.interfaces:
        _render_interface(el, nic)
    for con in d.consoles:
        c = _sub(el, "console", type_=con.type)
        _sub(c, "target", type_=con.target_type)
    for ch in d.channels:
        c = _sub(el, "channel", type_=ch.type)
        _sub(c, "target", type_=ch.target_type, name=ch.target_name)
    for inp in d.inputs:
        _sub(el, "input", type_=inp.type, bus=inp.bus)
    for tpm in d.tpms:
        t = _sub(el, "tpm", model=tpm.model)
        b = _sub(t, "backend", type_=tpm.backend, version=tpm.version if tpm.backend == "emulator" else None)
        if tpm.backend == "passthrough" and tpm.device_path:
            _sub(b, "device", path=tpm.device_path)
    for gfx in d.graphics:
        g = _sub(el, "graphics", type_=gfx.type,
                 autoport=_yes(gfx.autoport) if gfx.type in ("vnc", "spice") else None,
                 keymap=gfx.keymap)
        if gfx.listen == "address":
            _sub(g, "listen", type_="address", address=gfx.listen_address)
        elif gfx.listen:
            _sub(g, "listen", type_=gfx.listen)
        if gfx.gl is not None:
            _sub(g, "gl", enable=_yes(gfx.gl))
    for i, snd in enumerate(d.sounds, start=1):
        s = _sub(el, "sound", model=snd.model)
        if snd.audio_type:
            _sub(s, "audio", id=str(i))
    for i, snd in enumerate(d.sounds, start=1):
        if snd.audio_type:
            _sub(el, "audio", id=str(i), type_=snd.audio_type)
    for vid in d.videos:
        v = _sub(el, "video")
        _driver_iommu(v, vid.iommu)
        mdl = _sub(v, "model", type_=vid.model,
                   heads=str(vid.heads) if vid.model != "none" else None,
                   primary=_yes(vid.primary) if vid.model != "none" else None)
        if vid.accel3d is not None:
            _sub(mdl, "acceleration", accel3d=_yes(vid.accel3d))
    for wd in d.watchdogs:
        _sub(el, "watchdog", model=wd.model, action=wd.action)
    if d.memballoon:
        mb = _sub(el, "memballoon", model=d.memballoon.model,
                  autodeflate=None if d.memballoon.autodeflate is None else _on(d.memballoon.autodeflate),
                  freePageReporting=None if d.memballoon.free_page_reporting is None
                  else _on(d.memballoon.free_page_reporting))
        _driver_iommu(mb, d.memballoon.iommu)
    for rng in d.rngs:
        r = _sub(el, "rng", model=rng.model)
        if rng.rate_bytes:
            _sub(r, "rate", bytes=str(rng.rate_bytes), period=str(rng.rate_period_ms or 1000))
        _sub(r, "backend", rng.backend, model="random")
        _driver_iommu(r, rng.iommu)


def _render_disk(parent: etree._Element, disk: m.Disk) -> None:
    el = _sub(parent, "disk", type_=disk.type, device=disk.device)
    _sub(el, "driver", name="qemu", type_=disk.format, cache=disk.cache, io=disk.io, discard=disk.discard,
         detect_zeroes=disk.detect_zeroes,
         iothread=None if disk.iothread is None else str(disk.iothread),
         iommu=None if disk.iommu is None else _on(disk.iommu))
    if disk.source:
        src = _sub(el, "source", **({"file": disk.source} if disk.type == "file" else {"dev": disk.source}))
        if disk.encryption:
            enc = _sub(src, "encryption", format=disk.encryption.format)
            _sub(enc, "secret", type_="passphrase", uuid=disk.encryption.secret_uuid)
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.boot_order is not None:
        _sub(el, "boot", order=str(disk.boot_order))
    if disk.readonly:
        _sub(el, "readonly")
    if disk.shareable:
        _sub(el, "shareable")
    if disk.serial:
        _sub(el, "serial", disk.serial)


def _render_interface(parent: etree._Element, nic: m.Interface) -> None:
    el = _sub(parent, "interface", type_=nic.type)
    if nic.mac:
        _sub(el, "mac", address=nic.mac)
    if nic.type == "network":
        _sub(el, "source", network=nic.source)
    elif nic.type == "bridge":
        _sub(el, "source", bridge=nic.source)
    elif nic.type == "direct":
        _sub(el, "source", dev=nic.source, mode="bridge")
    _sub(el, "model", type_=nic.model)
    if nic.queues or nic.iommu is not None:
        _sub(el, "driver", queues=None if not nic.queues else str(nic.queues),
             iommu=None if nic.iommu is None else _on(nic.iommu))
    if nic.boot_order is not None:
        _sub(el, "boot", order=str(nic.boot_order))


def _render_launch_security(root: etree._Element, ls: m.LaunchSecurity) -> None:
    attrs: dict[str, Optional[str]] = {"type_": ls.type}
    if ls.type == "sev":
        attrs["kernelHashes"] = None if ls.kernel_hashes is None else _yes(ls.kernel_hashes)
    elif ls.type == "sev-snp":
        attrs["authorKey"] = None if ls.author_key is None else _yes(ls.author_key)
        attrs["vcek"] = None if ls.vcek is None else _yes(ls.vcek)
        attrs["kernelHashes"] = None if ls.kernel_hashes is None else _yes(ls.kernel_hashes)
    el = _sub(root, "launchSecurity", **attrs)
    if ls.type in ("sev", "sev-snp"):
        if ls.cbitpos is not None:
            _sub(el, "cbitpos", str(ls.cbitpos))
        if ls.reduced_phys_bits is not None:
            _sub(el, "reducedPhysBits", str(ls.reduced_phys_bits))
    if ls.policy is not None:
        width = 8 if ls.type != "sev" else 4
        _sub(el, "policy", f"0x{ls.policy:0{width}x}" if ls.type != "tdx" else f"0x{ls.policy:x}")
    if ls.type == "tdx" and ls.quote_generation_socket:
        _sub(el, "quoteGenerationService", path=ls.quote_generation_socket)


def to_bytes(root: etree._Element) -> bytes:
    """Pretty-printed, deterministic serialisation (no XML declaration, like virsh dumpxml)."""
    etree.indent(root, space="  ")
    return etree.tostring(root, pretty_print=True, encoding="utf-8")
