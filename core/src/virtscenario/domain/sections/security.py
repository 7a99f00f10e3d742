"""Confidential computing: AMD SEV, SEV-ES, SEV-SNP and Intel TDX.

``<launchSecurity>``. The type is chosen by the ``select_launch_security`` hook (the
core's answer honours ``launch_security.type`` and, for ``auto``, the domain
capabilities); this module writes the element with its policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...records import Record, record
from ...settings.types import SettingSpec
from .refs import FD, KBASE

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

SEV_DOC = KBASE + "/launch_security_sev.html"
#: Default launch-security policies, as libvirt and virt-install document them.
SEV_POLICY = 0x03  # NODBG | NOKS (libvirt kbase launch_security_sev)
SEV_ES_POLICY = 0x07  # + ES (virt-install when domcaps report SEV-ES)
SEV_SNP_POLICY = 0x30000  # SMT allowed + reserved bit 17 (nova SEV-SNP spec, libvirt tests)
TDX_POLICY = 0x10000000  # sept-ve-disable, QEMU's default (libvirt commit e919a4dd)
#: Minimum libvirt for each launch-security type (schema and driver support).
LAUNCH_SECURITY_MIN_LIBVIRT = {"sev": 4_005_000, "sev-es": 8_000_000, "sev-snp": 10_005_000, "tdx": 11_006_000}

SPECS = (
    SettingSpec("launch_security.type", "choice", "none", "Memory encryption: auto picks the strongest the host offers",
                ("none", "auto", "sev", "sev-es", "sev-snp", "tdx"),
                rationale="none: memory encryption needs SEV or TDX hardware and a guest that supports it; the "
                          "securevm scenario turns it on",
                reference=SEV_DOC),
    SettingSpec("launch_security.policy", "int", None, "Guest policy (unset: the documented default for the type)",
                minimum=0, maximum=2**64 - 1,
                rationale="unset: the policy libvirt and virt-install document for the chosen type",
                reference=FD + "#launch-security", applies_when=("launch_security.type!=none",)),
)


@record
class LaunchSecurity(Record):
    """``<launchSecurity type=...>``: SEV/SEV-ES (``type='sev'`` with its ``policy``), SEV-SNP or TDX, with their
    parameters.
    """

    type: str  # sev|sev-snp|tdx
    policy: Optional[int] = None
    cbitpos: Optional[int] = None
    reduced_phys_bits: Optional[int] = None
    kernel_hashes: Optional[bool] = None
    author_key: Optional[bool] = None  # sev-snp
    vcek: Optional[bool] = None  # sev-snp
    quote_generation_socket: Optional[str] = None  # tdx


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    kind = plan.launch_security
    if kind == "none":
        from . import unused
        unused(ctx, settings, "launch_security.policy", "launch security is none")
        return
    policy = settings.value("launch_security.policy")
    caps = ctx.caps
    if kind in ("sev", "sev-es"):
        ls = LaunchSecurity("sev", policy=policy if policy is not None else
                            (SEV_ES_POLICY if kind == "sev-es" else SEV_POLICY))
    elif kind == "sev-snp":
        ls = LaunchSecurity("sev-snp", policy=policy if policy is not None else SEV_SNP_POLICY)
    else:
        ls = LaunchSecurity("tdx", policy=policy if policy is not None else TDX_POLICY)
    if ls.type in ("sev", "sev-snp") and caps and caps.sev.supported:
        ls.cbitpos, ls.reduced_phys_bits = caps.sev.cbitpos, caps.sev.reduced_phys_bits
    dom.launch_security = ls


def render(root: Element, dom: Domain) -> None:
    from ..xml import sub, yes
    ls = dom.launch_security
    if ls is None:
        return
    attrs: dict[str, Optional[str]] = {"type_": ls.type}
    if ls.type == "sev":
        attrs["kernelHashes"] = yes(ls.kernel_hashes)
    elif ls.type == "sev-snp":
        attrs["authorKey"] = yes(ls.author_key)
        attrs["vcek"] = yes(ls.vcek)
        attrs["kernelHashes"] = yes(ls.kernel_hashes)
    el = sub(root, "launchSecurity", **attrs)
    if ls.type in ("sev", "sev-snp"):
        if ls.cbitpos is not None:
            sub(el, "cbitpos", str(ls.cbitpos))
        if ls.reduced_phys_bits is not None:
            sub(el, "reducedPhysBits", str(ls.reduced_phys_bits))
    if ls.policy is not None:
        width = 8 if ls.type != "sev" else 4
        sub(el, "policy", f"0x{ls.policy:0{width}x}" if ls.type != "tdx" else f"0x{ls.policy:x}")
    if ls.type == "tdx" and ls.quote_generation_socket:
        sub(el, "quoteGenerationService", path=ls.quote_generation_socket)
