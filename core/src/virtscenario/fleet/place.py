"""Placement: every host accepted or rejected with its reasons, a score among the accepted ones.

Filters then weighers, as OpenStack Nova's scheduler does: a host is rejected for
each thing the VM needs that the host lacks (docs/fleet.md lists every rule and
where libvirt reports the fact); the accepted hosts are ranked by

    score = 60 x (free memory after the VM / host memory)
          + 30 x (1 - (vCPUs of running domains + the VM's vCPUs) / host CPUs), at least 0
          + 10 if the host runs KVM guests (TCG only: 0)

so memory headroom weighs most (Nova's RAMWeigher spreads by free RAM the same
way), then CPU overcommit, then hardware acceleration. Ties go to the host listed
first in the inventory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .check import HostResult
from .facts import HostFacts, parse_cpulist
from .needs import Needs

W_MEMORY, W_CPU, W_KVM = 60.0, 30.0, 10.0


@dataclass(frozen=True)
class Decision:
    host: str
    uri: str
    accepted: bool
    reasons: tuple[str, ...]  # what the VM needs that the host lacks (empty when accepted)
    notes: tuple[str, ...]  # what is worth knowing about an accepted host
    score: Optional[float]
    score_parts: tuple[tuple[str, float], ...]
    launch_security: Optional[str]  # the type this host would give (launch_security=auto resolved)
    labels: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "uri": self.uri, "labels": list(self.labels), "accepted": self.accepted,
                "reasons": list(self.reasons), "notes": list(self.notes), "score": self.score,
                "score_parts": dict(self.score_parts), "launch_security": self.launch_security}


@dataclass(frozen=True)
class Placement:
    needs: Needs
    decisions: tuple[Decision, ...]  # inventory order
    chosen: Optional[Decision]

    def ordered(self) -> list[Decision]:
        """Inventory order with the chosen host moved last."""
        return [d for d in self.decisions if d is not self.chosen] + ([self.chosen] if self.chosen else [])

    def as_json(self) -> dict[str, Any]:
        return {"scenario": self.needs.scenario, "name": self.needs.name, "needs": self.needs.as_json(),
                "hosts": [d.as_json() for d in self.ordered()],
                "chosen": self.chosen.host if self.chosen else None}


def place(needs: Needs, results: Sequence[HostResult]) -> Placement:
    decisions = [judge(needs, r) for r in results]
    accepted = [d for d in decisions if d.accepted]
    chosen = None
    for d in accepted:  # max() keeps the first of equal scores: inventory order breaks ties
        if chosen is None or (d.score or 0) > (chosen.score or 0):
            chosen = d
    return Placement(needs, tuple(decisions), chosen)


def judge(needs: Needs, result: HostResult) -> Decision:
    host = result.host
    if result.facts is None:
        return Decision(host.name, host.uri, False, (f"unreachable: {result.error}",), (), None, (), None,
                        host.labels)
    f = result.facts
    reasons: list[str] = []
    notes: list[str] = []
    _arch(needs, f, reasons)
    _accel(needs, f, reasons, notes)
    _memory(needs, f, reasons, notes)
    launch = None
    if f.domcaps is not None:  # without them the host runs no QEMU guest at all: _accel said so
        launch = _launch_security(needs, f, reasons, notes)
        _devices(needs, f, reasons)
        _cpu_model(needs, f, reasons, notes)
    _hugepages(needs, f, reasons)
    _cpus(needs, f, reasons)
    if reasons:
        return Decision(host.name, host.uri, False, tuple(reasons), tuple(notes), None, (), None, host.labels)
    parts = score_parts(needs, f)
    return Decision(host.name, host.uri, True, (), tuple(notes), round(sum(v for _k, v in parts), 1), parts, launch,
                    host.labels)


def score_parts(needs: Needs, f: HostFacts) -> tuple[tuple[str, float], ...]:
    memory = 0.0
    if f.free_memory_bytes is not None and f.memory_bytes:
        memory = W_MEMORY * max(0, f.free_memory_bytes - needs.memory_bytes) / f.memory_bytes
    cpu = 0.0
    if f.cpus:
        cpu = W_CPU * max(0.0, 1 - (f.running.vcpus + needs.vcpus) / f.cpus)
    kvm = W_KVM if f.accel == "kvm" else 0.0
    return (("memory", round(memory, 1)), ("cpu", round(cpu, 1)), ("kvm", kvm))


def _no_domcaps(f: HostFacts) -> str:
    return f"the {f.hypervisor} driver gives no domain capabilities ({f.domcaps_error})"


def _arch(needs: Needs, f: HostFacts, reasons: list[str]) -> None:
    if f.arch and f.arch != needs.arch:
        reasons.append(f"arch: the VM is {needs.arch}, this host runs {f.arch} guests")


def _accel(needs: Needs, f: HostFacts, reasons: list[str], notes: list[str]) -> None:
    if f.accel == "none":
        reasons.append(f"no QEMU guests: {_no_domcaps(f)}")
        return
    if f.accel == "kvm":
        return
    if needs.kvm_required:
        why = "launch security needs it" if needs.launch_security != "none" else "vm.virt_type=kvm was asked for"
        reasons.append(f"KVM: {why}; this host runs TCG only (its CPU has no vmx/svm or /dev/kvm is unusable)")
    else:
        notes.append("TCG only: create adapts vm.virt_type to qemu (emulation, much slower)")


def _memory(needs: Needs, f: HostFacts, reasons: list[str], notes: list[str]) -> None:
    if f.memory_bytes and needs.memory_bytes > f.memory_bytes:
        reasons.append(f"memory: the VM needs {_size(needs.memory_bytes)}, the host has {_size(f.memory_bytes)} in all")
        return
    if f.free_memory_bytes is None:
        notes.append("free memory unknown (the driver does not report it): memory score 0")
    elif needs.memory_bytes > f.free_memory_bytes:
        text = f"free memory: {_size(f.free_memory_bytes)} free, less than the VM's {_size(needs.memory_bytes)}"
        if needs.launch_security != "none":
            # SEV pins every guest page (libvirt kbase launch_security_sev: memtune hard_limit).
            reasons.append(text + " (launch security pins all of it)")
        else:
            notes.append(text)


def _launch_security(needs: Needs, f: HostFacts, reasons: list[str], notes: list[str]) -> Optional[str]:
    wanted = needs.launch_security
    if wanted == "none":
        return None
    offered = f.launch_security_offered()
    if not offered:
        reasons.append(f"launch security {wanted}: this host offers none (no SEV, SEV-SNP or TDX in its domain "
                       "capabilities under KVM)")
        return None
    candidates = list(offered) if wanted == "auto" else [wanted]
    full = []
    for kind in candidates:
        if kind not in offered:
            reasons.append(f"launch security {kind}: not offered (offered: {', '.join(offered)})")
            return None
        slots = f.free_slots(kind)
        if slots == 0:
            full.append(kind)
            continue
        if wanted == "auto":
            notes.append(f"launch security auto: {kind}, the strongest with a free guest slot here")
        if slots is not None:
            notes.append(f"{kind}: {slots} free guest slot(s)")
        return kind
    pool = "maxGuests" if full[0] == "sev" else "maxESGuests"
    reasons.append(f"launch security {'/'.join(full)}: no free guest slot ({pool} reached by running guests)")
    return None


def _hugepages(needs: Needs, f: HostFacts, reasons: list[str]) -> None:
    if not needs.hugepages:
        return
    size = needs.hugepage_size_kib
    label = _size(size * 1024)
    if f.caps.page_sizes_kib and size not in f.caps.page_sizes_kib:
        have = ", ".join(_size(s * 1024) for s in f.caps.page_sizes_kib if s > 4) or "none"
        reasons.append(f"hugepages: the host has no {label} pages (sizes: {have})")
        return
    per_node = f.hugepages_free(size)
    need = math.ceil(needs.memory_bytes / (size * 1024))
    if not per_node:
        reasons.append(f"hugepages: free {label} pages per NUMA node unknown (the driver does not report them)")
        return
    node, best = max(per_node.items(), key=lambda kv: (kv[1], -kv[0]))
    if best < need:
        reasons.append(f"hugepages: needs {need} free {label} pages on one NUMA node; the most is {best} "
                       f"(node {node})")


def _cpus(needs: Needs, f: HostFacts, reasons: list[str]) -> None:
    if needs.dedicated_cpus > 0:
        cpus = [(cell.id, c) for cell in f.caps.cells for c in cell.cpus]
        if not cpus:
            reasons.append(f"CPU pinning: needs {needs.dedicated_cpus} CPUs of its own; host CPU topology unknown")
        else:
            # As create pins (domain.sections.cpu.housekeeping_split): housekeeping cores on every
            # NUMA node of every socket.
            cores: dict[tuple[int, int, int], list[int]] = {}
            for node, c in cpus:
                cores.setdefault((c.socket, node, c.core), []).append(c.id)
            per_group: dict[tuple[int, int], int] = {}
            dedicated: list[int] = []
            for (socket, node, _core), ids in sorted(cores.items()):
                if per_group.get((socket, node), 0) < needs.housekeeping_cores:
                    per_group[(socket, node)] = per_group.get((socket, node), 0) + 1
                else:
                    dedicated.extend(ids)
            free = [c for c in dedicated if c not in f.running.pinned_cpus]
            if len(free) < needs.dedicated_cpus:
                taken = len(dedicated) - len(free)
                reasons.append(f"CPU pinning: needs {needs.dedicated_cpus} CPUs of its own; the host has {len(free)} "
                               f"left after {needs.housekeeping_cores} housekeeping core(s) per NUMA node"
                               + (f" and {taken} pinned by running VMs" if taken else ""))
    if needs.isolated_cpus:
        wanted = set(parse_cpulist(needs.isolated_cpus))
        have = {c.id for cell in f.caps.cells for c in cell.cpus} or set(range(f.cpus))
        missing = sorted(wanted - have)
        if missing:
            reasons.append(f"isolated CPUs: host.isolated_cpus={needs.isolated_cpus} names CPUs the host does not "
                           f"have ({_cpulist(missing)}; it has {len(have)})")


def _devices(needs: Needs, f: HostFacts, reasons: list[str]) -> None:
    dc = f.domcaps
    assert dc is not None
    if needs.virtiofs and not dc.virtiofs:
        reasons.append("virtiofs: the host's QEMU has no virtiofs filesystem driver (filesystem.share)")
    if needs.tpm_model:
        if dc.tpm_models and needs.tpm_model not in dc.tpm_models:
            reasons.append(f"TPM: model {needs.tpm_model} not offered (offered: {', '.join(dc.tpm_models) or 'none'})")
        elif needs.tpm_backend not in dc.tpm_backends:
            hint = " (swtpm is not installed there)" if needs.tpm_backend == "emulator" else ""
            reasons.append(f"TPM: backend {needs.tpm_backend} not offered{hint}")
    if needs.firmware == "efi" and "efi" not in dc.firmware:
        reasons.append("UEFI: the host has no UEFI firmware for QEMU (OVMF is not installed there)")
    elif needs.firmware == "efi" and needs.secure_boot and not dc.secure_boot:
        reasons.append("secure boot: the host's UEFI firmware has no secure-boot build")


def _cpu_model(needs: Needs, f: HostFacts, reasons: list[str], notes: list[str]) -> None:
    dc = f.domcaps
    assert dc is not None
    if dc.max_vcpus is not None and needs.vcpus > dc.max_vcpus:
        reasons.append(f"vCPUs: the VM has {needs.vcpus}, this host's {dc.machine or 'q35'} takes at most "
                       f"{dc.max_vcpus}")
    if needs.cpu_mode == "custom" and needs.cpu_model:
        if needs.cpu_model not in dc.usable_models:
            why = " (the migration CPU)" if needs.migratable else ""
            reasons.append(f"CPU model {needs.cpu_model}{why}: not usable on this host's {dc.host_model or 'CPU'}")
    elif needs.migratable and needs.cpu_mode == "host-model":
        if "host-model" not in dc.cpu_modes:
            reasons.append("CPU: host-model (for migration) is not offered by this host")
        else:
            notes.append(f"host-model CPU here: {dc.host_model}")
    elif needs.migratable and needs.cpu_mode == "host-passthrough":
        notes.append("host-passthrough migrates only between identical hosts")


def _size(nbytes: int) -> str:
    for unit, mult in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= mult:
            value = nbytes / mult
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} B"


def _cpulist(cpus: Sequence[int]) -> str:
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][-1] + 1 == cpu:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
