"""NUMA placement: guest memory on the host nodes of the pinned vCPUs.

``<numatune>`` (with ``<memnode>``) and the guest cells of ``<cpu><numa>``. Placement
runs once the vCPUs are pinned, by the core (``cpu.pinning=auto``) or by a plugin in
``customize_model`` (softrt): :func:`place` is called by ``generate`` after that hook.

* vCPUs on one host node: ``<memory mode='strict' nodeset='N'/>``. Not 'preferred': the
  kernel silently takes remote memory when the preferred node runs short (MPOL_PREFERRED),
  and a hugepage pool reserved globally is spread over all nodes, so up to half of the
  guest RAM would be remote without anyone noticing. Strict fails loudly instead, and the
  host plan reserves the pages on that node (``host.hugepages_nodes``).
* vCPUs on several nodes: one guest NUMA cell per host node with the vCPUs pinned there,
  each cell's memory bound to its node with ``<memnode>``, so the guest kernel sees
  which memory is local to which vCPUs. The memory is split evenly over the cells, as
  the host plan splits the hugepages over ``host.hugepages_nodes``.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from .refs import FD, KERNEL_MM

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

NUMATUNE_DOC = FD + "#numa-node-tuning"
#: Nothing to declare: placement follows cpu.pinning (and host.hugepages_nodes records it for the host).
SPECS = ()


@record
class MemNode(Record):
    """``<numatune><memnode cellid= mode= nodeset=>``: the host nodes that hold one guest NUMA cell."""

    cellid: int
    nodeset: str
    mode: str = "strict"


@record
class NumaTune(Record):
    """``<numatune><memory mode= nodeset=>``: which host NUMA nodes hold the guest's memory."""

    mode: str = "strict"
    nodeset: Optional[str] = None
    placement: Optional[str] = None
    memnodes: list[MemNode] = field(default_factory=list)


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    """Nothing yet: the vCPUs may still be pinned by a plugin (see :func:`place`)."""


def place(dom: Domain, settings: Settings, ctx: BuildContext) -> None:
    """Bind guest memory to the host nodes of the pinned vCPUs (after customize_model)."""
    from ...host.facts import format_cpulist, parse_cpulist
    from .cpu import NumaCell
    host = ctx.host
    if host is None or len(host.nodes) < 2 or not dom.cputune.vcpupin or dom.numatune is not None:
        return
    node_of = {c.id: c.node for c in host.cpus}
    by_node: dict[int, list[int]] = {}
    for pin in dom.cputune.vcpupin:
        pin_nodes = {node_of.get(cpu, -1) for cpu in parse_cpulist(pin.cpuset)}
        if len(pin_nodes) != 1 or -1 in pin_nodes:
            ctx.note(f"vCPU {pin.id} may run on CPUs {pin.cpuset} of several NUMA nodes: guest memory is not bound "
                     "to a node", "warning")
            return
        by_node.setdefault(pin_nodes.pop(), []).append(pin.id)
    if len(dom.cputune.vcpupin) < dom.vcpus:
        return  # unpinned vCPUs may run anywhere: no node to bind their memory to
    nodes = sorted(by_node)
    nodeset = format_cpulist(nodes)
    hugepages = dom.memory_backing.hugepages
    if len(nodes) == 1:
        dom.numatune = NumaTune("strict", nodeset)
        ctx.note(f"vCPUs on NUMA node {nodeset}: guest memory bound to it (numatune strict)")
    else:
        unit = hugepages[0].size_kib * 1024 if hugepages else 1024 * 1024
        base, rest = divmod(dom.memory // unit, len(nodes))
        dom.cpu.numa = [NumaCell(cell, format_cpulist(by_node[node]), (base + (1 if cell < rest else 0)) * unit)
                        for cell, node in enumerate(nodes)]
        dom.numatune = NumaTune("strict", nodeset,
                                memnodes=[MemNode(cell, str(node)) for cell, node in enumerate(nodes)])
        ctx.note(f"vCPUs span NUMA nodes {nodeset}: one guest NUMA cell per host node, each cell's memory bound "
                 "to its node (numatune memnode strict)")
    item = settings.get("host.hugepages_nodes")
    if hugepages and not (item is not None and item.by_user):
        ctx.require_host("host.hugepages_nodes", nodeset,
                         f"the vCPUs are pinned to NUMA node(s) {nodeset} and guest memory is bound there "
                         "(strict): a pool reserved globally would be spread over every node", HUGETLB_PER_NODE)


HUGETLB_PER_NODE = KERNEL_MM + "/hugetlbpage.html"


def render_numatune(root: Element, dom: Domain) -> None:
    from ..xml import sub
    nt = dom.numatune
    if nt is None:
        return
    el = sub(root, "numatune")
    sub(el, "memory", mode=nt.mode, nodeset=nt.nodeset, placement=nt.placement)
    for mem in nt.memnodes:
        sub(el, "memnode", cellid=str(mem.cellid), mode=mem.mode, nodeset=mem.nodeset)
