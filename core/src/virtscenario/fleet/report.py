"""Text output of the fleet commands (JSON is each record's ``as_json``)."""

from __future__ import annotations

from typing import Sequence

from .check import HostResult
from .facts import HostFacts
from .inventory import Inventory
from .migrate import Report
from .place import Placement, _cpulist, _size


def hosts_text(inv: Inventory) -> str:
    rows = [(h.name, h.uri, ", ".join(h.labels) or "-") for h in inv.hosts]
    return _table(("NAME", "URI", "LABELS"), rows) + f"\n({len(rows)} hosts from {inv.path}" \
        + (", virt-scenario format" if inv.upstream else "") + ")"


def fit(text: str, width: int = 0) -> str:
    """Each line wrapped to the terminal, its continuation indented under it (a URI or a path
    is never broken: it goes whole on a line of its own)."""
    from ..terminal import terminal_width, wrap_words
    width = width or terminal_width()
    out: list[str] = []
    for line in text.splitlines():
        lead = line[:len(line) - len(line.lstrip())]
        out += [line] if len(line) <= width else \
            [lead + part for part in wrap_words(line.strip(), width - len(lead), indent="  ")]
    return "\n".join(out)


def check_text(results: Sequence[HostResult]) -> str:
    out = []
    for r in results:
        head = f"{r.host.name}  {r.host.uri}"
        if r.facts is None:
            out.append(f"{head}  [FAILED after {r.elapsed:.2f} s] {r.error}")
            continue
        out.append(f"{head}  [ok, {r.elapsed:.2f} s]")
        out.extend("  " + line for line in facts_lines(r.facts))
    return fit("\n".join(out))


def facts_lines(f: HostFacts) -> list[str]:
    dc = f.domcaps
    lines = [f"libvirt {f.libvirt_version}, {f.hypervisor} {f.hypervisor_version}, {f.arch or '?'}, "
             f"CPU {f.caps.cpu_model or '?'}{f' ({f.caps.cpu_vendor})' if f.caps.cpu_vendor else ''}"
             f"{', host-model ' + dc.host_model if dc and dc.host_model else ''}, {f.cpus} CPUs, "
             f"{_size(f.memory_bytes)}, {_plural(len(f.nodes), 'NUMA node') if f.nodes else 'NUMA nodes not listed'}"]
    for n in f.nodes:
        pages = ", ".join(f"{_size(size * 1024)} x {count}" for size, count in n.free_hugepages) or "-"
        free = _size(n.free_bytes) if n.free_bytes is not None else "?"
        total = _size(n.memory_bytes) if n.memory_bytes is not None else "?"
        lines.append(f"node {n.id}: CPUs {_cpulist(n.cpus) or '-'}, {free} free of {total}; free hugepages: {pages}")
    if not f.nodes:
        free = _size(f.free_memory_bytes) if f.free_memory_bytes is not None else "unknown"
        lines.append(f"free memory: {free}")
    accel = {"kvm": "KVM", "tcg": "TCG only", "none": "no QEMU guests"}[f.accel]
    lines.append(f"acceleration: {accel}")
    offered = f.launch_security_offered()
    if offered:
        parts = []
        for kind in offered:
            slots = f.free_slots(kind)
            parts.append(kind + (f" ({slots} free slots)" if slots is not None else ""))
        lines.append("launch security: " + ", ".join(parts))
    else:
        lines.append("launch security: none")
    if dc is not None:
        fw = ", ".join(dc.firmware) or "none"
        tpm = ", ".join(dc.tpm_models) or "none"
        lines.append(f"firmware: {fw}{' (secure boot)' if dc.secure_boot else ''}; virtiofs: "
                     f"{'yes' if dc.virtiofs else 'no'}; TPM: {tpm} (backends: {', '.join(dc.tpm_backends) or '-'})")
    else:
        lines.append(f"domain capabilities: none ({f.domcaps_error})")
    names = ", ".join(f.running.names[:5]) + (", ..." if len(f.running.names) > 5 else "")
    lines.append(f"running domains: {f.running.domains}" + (f" ({_plural(f.running.vcpus, 'vCPU')}: {names})"
                                                            if f.running.domains else ""))
    lines.extend(f"note: {n}" for n in f.notes)
    return lines


def place_text(p: Placement) -> str:
    n = p.needs
    wants = [f"{_size(n.memory_bytes)}", f"{n.vcpus} vCPUs"]
    if n.launch_security != "none":
        wants.append(f"launch security {n.launch_security}")
    if n.hugepages:
        wants.append(f"{_size(n.hugepage_size_kib * 1024)} hugepages")
    if n.dedicated_cpus:
        wants.append(f"{n.dedicated_cpus} dedicated CPUs")
    if n.virtiofs:
        wants.append("virtiofs")
    if n.tpm_model:
        wants.append(f"TPM {n.tpm_model}")
    if n.kvm_required:
        wants.append("KVM")
    out = [f"Placing {n.name} ({n.scenario}: {', '.join(wants)}) on {len(p.decisions)} host(s):"]
    for d in p.ordered():
        if d.accepted:
            parts = ", ".join(f"{k} {v:g}" for k, v in d.score_parts)
            out.append(f"  {d.host}: accepted, score {d.score:g} ({parts})")
            out.extend(f"      {note}" for note in d.notes)
        else:
            out.append(f"  {d.host}: rejected")
            out.extend(f"      - {reason}" for reason in d.reasons)
    if p.chosen:
        extra = f", launch security {p.chosen.launch_security}" if p.chosen.launch_security else ""
        out.append(f"Chosen: {p.chosen.host} ({p.chosen.uri}), score {p.chosen.score:g}{extra}")
    return fit("\n".join(out))


def migrate_text(r: Report) -> str:
    src = f" from {r.source}" if r.source else ""
    out = [f"Migration of {r.vm}{src} to {r.target} (domain XML: {r.xml_from}):"]
    marks = {"ok": "ok     ", "warning": "warning", "blocker": "BLOCKER"}
    from ..terminal import terminal_width, wrap_words
    width = terminal_width()
    for f in r.findings:
        head = f"  {marks[f.status]}  {f.area:8} "  # the message wraps under itself, its reference last
        body = wrap_words(f"{f.message} [{f.source}]", max(20, width - len(head)), indent="")
        out += [head + body[0]] + [" " * len(head) + line for line in body[1:]]
    verdict = "can migrate" if r.ok else f"cannot migrate: {len(r.blockers)} blocker(s)"
    warnings = sum(1 for f in r.findings if f.status == "warning")
    out.append(f"{r.vm} {verdict}" + (f" ({warnings} warning(s))" if warnings else ""))
    return fit("\n".join(out))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
