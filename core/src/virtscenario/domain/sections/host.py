"""Host requirements: what a scenario asks of the host (``host.*`` keys).

They produce no XML: each VM records them, and a host tuning plugin (``host_plan``
hook) turns them into a plan. Unset means "leave the host as it is".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...settings.types import SettingSpec
from .refs import KBASE, KERNEL_MM

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan

THP_DOC = KERNEL_MM + "/transhuge.html"
KSM_DOC = KERNEL_MM + "/ksm.html"
HUGETLB_DOC = KERNEL_MM + "/hugetlbpage.html"
UNSET = "unset: the host is left as it is unless a scenario needs it changed"

SPECS = (
    SettingSpec("host.thp", "choice", None, "Transparent hugepages mode", ("always", "madvise", "never"),
                rationale=UNSET, reference=THP_DOC),
    SettingSpec("host.thp_defrag", "choice", None, "Transparent hugepages defrag mode",
                ("always", "defer", "defer+madvise", "madvise", "never"), rationale=UNSET, reference=THP_DOC),
    SettingSpec("host.thp_shmem", "choice", None, "Transparent hugepages for shared memory (memfd, tmpfs)",
                ("always", "within_size", "advise", "never"), rationale=UNSET, reference=THP_DOC),
    SettingSpec("host.ksm", "choice", None, "Kernel samepage merging", ("on", "off"), rationale=UNSET,
                reference=KSM_DOC),
    SettingSpec("host.ksm_merge_across_nodes", "bool", None, "KSM merges pages across NUMA nodes",
                rationale=UNSET, reference=KSM_DOC),
    SettingSpec("host.swappiness", "int", None, "vm.swappiness", minimum=0, maximum=200, rationale=UNSET,
                reference="https://docs.kernel.org/admin-guide/sysctl/vm.html#swappiness"),
    SettingSpec("host.io_scheduler", "choice", None, "IO scheduler of the host's real block devices",
                ("mq-deadline", "bfq", "kyber", "none"), rationale=UNSET,
                reference="https://docs.kernel.org/block/index.html"),
    SettingSpec("host.hugepages", "bool", None, "Reserve static hugepages for the VMs that use them",
                rationale=UNSET, reference=HUGETLB_DOC),
    SettingSpec("host.hugepages_nodes", "str", None,
                "NUMA nodes that hold the VM's static hugepages: 'all' (spread evenly) or a node list such as 0 "
                "or 0-1; unset: the kernel's global pool",
                rationale="unset: the kernel spreads a global pool over the nodes itself; pinned VMs whose memory is "
                          "bound to their vCPUs' nodes get the list computed from the pinning",
                reference=HUGETLB_DOC),
    SettingSpec("host.hugepages_reserve", "size", 2 * 1024**3,
                "Memory always left to the host when reserving hugepages", unit="MiB", minimum=0, maximum=2**52,
                rationale="2 GiB stay with the host (its kernel, QEMU processes, page cache) however many "
                          "hugepages the VMs ask for",
                reference=HUGETLB_DOC, applies_when=("host.hugepages=on",)),
    SettingSpec("host.sev", "bool", None, "Enable AMD SEV in kvm_amd", rationale=UNSET,
                reference=KBASE + "/launch_security_sev.html"),
    SettingSpec("host.isolated_cpus", "str", None, "Host CPUs isolated for real-time vCPUs (kernel cmdline)",
                rationale=UNSET, reference=KBASE + "/kvm-realtime.html"),
)


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    """Nothing in the XML: ``generate`` hands the ``host.*`` values to the host plan."""
