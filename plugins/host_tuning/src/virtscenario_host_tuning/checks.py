"""Host checks for ``virtscenario host check``: PASS / WARN / FAIL with one line of advice.

FAIL is kept for what stops KVM guests from running at all (no hardware
virtualization, no usable /dev/kvm, no qemu-img to create disks); everything
optional (IOMMU, hugepages, SEV, TDX, swtpm, virtiofsd, libvirt) is a WARN.
Under ``--host-root`` nothing outside the root is read: the libvirt check
looks for the daemon's socket inside the tree instead of connecting, and tools
are searched in the tree's bin directories instead of $PATH.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any, Callable, Iterator

from virtscenario.api import CheckResult, HostCheck

from . import facts, sysfs

KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO=0xAE, 0x00); the stable KVM API answers 12
KVM_API_VERSION = 12
LIBVIRT_SOCKETS = ("/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock",
                   "/run/libvirt/libvirt-sock-ro", "/run/libvirt/virtqemud-sock-ro")
BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
VIRTIOFSD_EXTRA = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd")


def _r(name: str, status: str, message: str, advice: str = "") -> CheckResult:
    return CheckResult(name, status, message, advice)  # type: ignore[arg-type]


# -- virtualization -----------------------------------------------------------------------
def check_cpu_virt(host: Any) -> CheckResult:
    flags = facts.cpu_flags(host)
    flag = facts.virtualization_flag(flags)
    if flag:
        what = "Intel VT-x (vmx)" if flag == "vmx" else "AMD-V (svm)"
        return _r("cpu-virt", "PASS", f"hardware virtualization: {what}")
    if not flags:
        return _r("cpu-virt", "FAIL", "no CPU flags in /proc/cpuinfo", "is /proc mounted?")
    if "hypervisor" in flags:
        return _r("cpu-virt", "FAIL", "no vmx/svm flag: this is a VM without nested virtualization",
                  "enable nested virtualization on the outer host (kvm_intel/kvm_amd nested=1, CPU mode "
                  "host-passthrough), or use TCG (--virt-type qemu)")
    return _r("cpu-virt", "FAIL", "no vmx/svm flag in /proc/cpuinfo: hardware virtualization is off or absent",
              "enable Intel VT-x / AMD-V (SVM) in the firmware setup")


def check_kvm_device(host: Any) -> CheckResult:
    path = sysfs.mapped(host, "/dev/kvm")
    if path is None or not path.exists():
        return _r("kvm-device", "FAIL", "/dev/kvm is missing",
                  "load the KVM module for this CPU (modprobe kvm_intel or kvm_amd) and check dmesg for why it refused")
    if host.is_fake:
        return _r("kvm-device", "PASS", "/dev/kvm exists (fake host root: existence checked only)")
    if not stat.S_ISCHR(path.stat().st_mode):
        return _r("kvm-device", "FAIL", "/dev/kvm is not a character device", "recreate it: mknod /dev/kvm c 10 232")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return _r("kvm-device", "FAIL", f"/dev/kvm cannot be opened: {exc.strerror}",
                  "add the user to the kvm group (usermod -aG kvm USER) or run as root")
    try:
        import fcntl
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return _r("kvm-device", "FAIL", f"/dev/kvm does not answer KVM_GET_API_VERSION: {exc.strerror}",
                  "check dmesg for KVM errors")
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return _r("kvm-device", "FAIL", f"/dev/kvm reports KVM API {version}, expected {KVM_API_VERSION}",
                  "update the kernel")
    return _r("kvm-device", "PASS", f"/dev/kvm is usable (KVM API {version})")


def check_iommu(host: Any) -> CheckResult:
    units = sysfs.listdir(host, "/sys/class/iommu")
    if units:
        return _r("iommu", "PASS", f"IOMMU enabled ({len(units)} unit{'s' if len(units) > 1 else ''}: "
                  f"{', '.join(units[:4])}{'...' if len(units) > 4 else ''})")
    vendor = facts.cpu_vendor(host)
    args = [a for a in facts.cmdline(host) if "iommu" in a]
    seen = f" (kernel command line has {' '.join(args)})" if args else ""
    offs = [a for a in args if a in ("iommu=off", "amd_iommu=off", "intel_iommu=off")]
    remove = f"remove {' '.join(offs)} from the kernel command line, " if offs else ""
    # Linux turns the AMD IOMMU on by itself when the firmware describes it (IVRS): amd_iommu= has
    # no 'on' value (kernel-parameters.txt); Intel's needs intel_iommu=on unless the kernel defaults to it.
    how = ("enable VT-d in the firmware setup and boot with intel_iommu=on iommu=pt" if vendor == "Intel" else
           "enable AMD-Vi (IOMMU) in the firmware setup (Linux then turns it on by itself: amd_iommu= has no "
           "'on' value) and boot with iommu=pt" if vendor == "AMD" else
           "enable the IOMMU in the firmware setup (Intel: also boot with intel_iommu=on)")
    return _r("iommu", "WARN", f"IOMMU appears to be disabled: /sys/class/iommu is empty{seen}",
              f"needed for device passthrough and SEV-SNP: {remove}{how}")


# -- memory ---------------------------------------------------------------------------------
def check_hugepage_sizes(host: Any) -> CheckResult:
    flags = facts.cpu_flags(host)
    cpu = [label for flag, label in (("pse", "2M"), ("pdpe1gb", "1G")) if flag in flags]
    kernel = [facts.size_label(s) for s in facts.hugepage_sizes_kib(host)]
    if not kernel:
        return _r("hugepage-sizes", "WARN", f"the kernel offers no static hugepages (CPU: {', '.join(cpu) or 'none'})",
                  "use a kernel built with CONFIG_HUGETLBFS; scenarios with memory.hugepages cannot run here")
    notes = []
    if "1G" not in cpu and "1G" not in kernel:
        notes.append("no 1G pages: the CPU lacks pdpe1gb")
    missing = [c for c in cpu if c not in kernel]
    if missing:
        notes.append(f"the CPU also supports {', '.join(missing)} (not enabled in this kernel)")
    return _r("hugepage-sizes", "PASS", f"hugepage sizes: {', '.join(kernel)}" + "".join(f"; {n}" for n in notes))


def check_hugetlbfs(host: Any) -> CheckResult:
    found = facts.hugetlbfs_mounts(host)
    if found:
        text = ", ".join(f"{p} ({facts.size_label(s)})" for s, p in sorted(found.items()))
        return _r("hugetlbfs", "PASS", f"hugetlbfs mounted: {text}")
    return _r("hugetlbfs", "WARN", "no hugetlbfs mounted: VMs cannot use static hugepages",
              "mount -t hugetlbfs hugetlbfs /dev/hugepages (virtscenario host apply does it for scenarios "
              "that reserve hugepages)")


def check_thp(host: Any) -> CheckResult:
    text = sysfs.read_text(host, f"{facts.THP_DIR}/enabled")
    if text is None:
        return _r("thp", "WARN", "transparent hugepages are not available in this kernel",
                  "guests still run; scenarios asking for THP get no effect")
    defrag = sysfs.read_text(host, f"{facts.THP_DIR}/defrag")
    modes = " ".join(sysfs.options(text))
    return _r("thp", "PASS", f"THP modes: {modes}; current {sysfs.selected(text)}"
              + (f", defrag {sysfs.selected(defrag)}" if defrag else ""))


def check_ksm(host: Any) -> CheckResult:
    run = sysfs.current(host, f"{facts.KSM_DIR}/run")
    if run is None:
        return _r("ksm", "WARN", "KSM is not available (kernel without CONFIG_KSM)",
                  "scenarios that want page merging get no effect; nothing to do for those that want it off")
    meaning = {"0": "stopped", "1": "running", "2": "stopped, pages unmerged"}.get(run, run)
    shared = sysfs.current(host, f"{facts.KSM_DIR}/pages_shared")
    extra = f", {shared} pages shared" if shared and shared != "0" else ""
    return _r("ksm", "PASS", f"KSM present: run={run} ({meaning}{extra})")


# -- confidential computing -------------------------------------------------------------------
def check_amd_sev(host: Any) -> CheckResult:
    flags = facts.cpu_flags(host)
    vendor = facts.cpu_vendor(host)
    if vendor != "AMD" and "sev" not in flags:
        return _r("amd-sev", "PASS", f"not applicable ({vendor or 'unknown'} CPU)")
    cpu = [f for f in ("sev", "sev_es", "sev_snp") if f in flags]
    if not cpu:
        return _r("amd-sev", "WARN", "this AMD CPU reports no SEV flag",
                  "enable SME/SEV in the firmware setup (EPYC only); securevm VMs need it")
    if not sysfs.exists(host, "/sys/module/kvm_amd"):
        return _r("amd-sev", "WARN", f"CPU supports {', '.join(cpu)} but kvm_amd is not loaded",
                  "modprobe kvm_amd (with 'options kvm_amd sev=1 sev_es=1' in /etc/modprobe.d)")
    params = {p: facts.param_enabled(facts.module_param(host, "kvm_amd", p)) for p in ("sev", "sev_es", "sev_snp")}
    enabled = [p for p in ("sev", "sev_es", "sev_snp") if params[p]]
    wanted = [p for p in cpu if not params[p]]
    if not sysfs.exists(host, "/dev/sev"):
        return _r("amd-sev", "WARN", f"CPU supports {', '.join(cpu)} but /dev/sev is missing (disabled in firmware "
                  "or the ccp/PSP driver is not loaded)", "enable SEV in the firmware setup and load ccp")
    if wanted:
        opts = " ".join(f"{p}=1" for p in cpu)
        return _r("amd-sev", "WARN", f"CPU supports {', '.join(cpu)}; kvm_amd has "
                  f"{', '.join(enabled) or 'none'} enabled",
                  f"'virtscenario host apply securevm' writes 'options kvm_amd {opts}' to "
                  "/etc/modprobe.d/virtscenario-sev.conf; reboot (or reload kvm_amd with no VM running)")
    return _r("amd-sev", "PASS", f"enabled in kvm_amd: {', '.join(enabled)}; /dev/sev present")


def check_intel_tdx(host: Any) -> CheckResult:
    flags = facts.cpu_flags(host)
    vendor = facts.cpu_vendor(host)
    if vendor != "Intel" and "tdx_host_platform" not in flags:
        return _r("intel-tdx", "PASS", f"not applicable ({vendor or 'unknown'} CPU)")
    param = facts.module_param(host, "kvm_intel", "tdx")
    if facts.param_enabled(param):
        return _r("intel-tdx", "PASS", "TDX enabled in kvm_intel")
    if "tdx_host_platform" in flags:
        return _r("intel-tdx", "WARN", "the platform supports TDX but kvm_intel has tdx disabled",
                  "add 'options kvm_intel tdx=1' to /etc/modprobe.d and kvm_intel.tdx=1 to the kernel command "
                  "line (needs a TDX-enabled kernel, QEMU >= 10.1, libvirt >= 11.8)")
    return _r("intel-tdx", "WARN", "TDX is not available (no tdx_host_platform CPU flag)",
              "needs a TDX-capable Xeon (Emerald Rapids or newer) with TDX enabled in the firmware; only securevm "
              "VMs with launch_security.type=tdx need it")


# -- where are we running ---------------------------------------------------------------------
def check_environment(host: Any) -> CheckResult:
    env = facts.environment(host)
    if env.container and env.vm:
        return _r("environment", "WARN", f"inside a container ({env.container}) on a virtual machine",
                  "tuning writes the kernel shared by every container of this VM (if /sys is writable at all), "
                  "and guests here need nested virtualization")
    if env.container:
        return _r("environment", "WARN", f"inside a container ({env.container})",
                  "tuning changes the host kernel shared by every container, if /proc/sys and /sys are writable; "
                  "tune the host itself instead")
    if env.vm:
        return _r("environment", "WARN", "running in a virtual machine (hypervisor CPU flag)",
                  "tuning changes this VM's kernel only; guests need nested virtualization, and the outer host "
                  "decides hugepage and NUMA placement")
    return _r("environment", "PASS", "bare metal (no container marker, no hypervisor flag)")


def check_libvirt(host: Any) -> CheckResult:
    if host.is_fake:
        sockets = [s for s in LIBVIRT_SOCKETS if sysfs.exists(host, s)]
        if sockets:
            return _r("libvirt", "PASS", f"libvirt socket present: {sockets[0]} (fake host root: not connected)")
        return _r("libvirt", "WARN", "no libvirt socket under the host root (not connected: fake host root)",
                  "start libvirtd or virtqemud on that host")
    try:
        import libvirt  # noqa: F401 - only to know whether the bindings exist
    except ImportError:
        return _r("libvirt", "WARN", "libvirt-python is not installed",
                  "pip install 'virtscenario[libvirt]' (needs libvirt-dev and pkg-config); create works offline")
    version, error = _libvirt_probe("qemu:///system", timeout=5.0)
    if error:
        return _r("libvirt", "WARN", f"cannot reach qemu:///system: {error}",
                  "start libvirtd (or virtqemud) and virtlogd; create works offline without it")
    major, rest = divmod(version, 1_000_000)
    return _r("libvirt", "PASS", f"qemu:///system reachable (libvirt {major}.{rest // 1000}.{rest % 1000})")


def _libvirt_probe(uri: str, timeout: float) -> tuple[int, str]:
    """Open ``uri`` read-only in a thread, so a stuck daemon costs at most ``timeout`` seconds."""
    import threading
    result: dict[str, Any] = {}

    def probe() -> None:
        import libvirt
        libvirt.registerErrorHandler(lambda *_a: None, None)
        try:
            conn = libvirt.openReadOnly(uri)
            try:
                result["version"] = conn.getLibVersion()
            finally:
                conn.close()
        except libvirt.libvirtError as exc:
            result["error"] = (exc.get_error_message() or str(exc)).splitlines()[0]

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return 0, f"no answer within {timeout:g}s"
    return result.get("version", 0), result.get("error", "")


def find_tool(host: Any, name: str, extra: tuple[str, ...] = ()) -> str:
    """Path of a tool: $PATH on the real host, the tree's bin directories under a fake root."""
    if not host.is_fake:
        found = shutil.which(name)
        if found:
            return found
        candidates: tuple[str, ...] = extra
    else:
        candidates = tuple(f"{d}/{name}" for d in BIN_DIRS) + extra
    for candidate in candidates:
        path = sysfs.mapped(host, candidate)
        if path is not None and path.is_file() and (host.is_fake or os.access(path, os.X_OK)):
            return candidate
    return ""


def _tool_check(name: str, status_missing: str, why: str, package: str,
                extra: tuple[str, ...] = ()) -> Callable[[Any], CheckResult]:
    def run(host: Any) -> CheckResult:
        found = find_tool(host, name, extra)
        if found:
            return _r(name, "PASS", f"{name}: {found}")
        return _r(name, status_missing, f"{name} not found ({why})", f"install {package}")
    return run


def host_checks() -> Iterator[HostCheck]:
    yield HostCheck("cpu-virt", "hardware virtualization (vmx/svm CPU flag)", check_cpu_virt)
    yield HostCheck("kvm-device", "/dev/kvm present and usable", check_kvm_device)
    yield HostCheck("iommu", "IOMMU enabled", check_iommu)
    yield HostCheck("hugepage-sizes", "static hugepage sizes (pse: 2M, pdpe1gb: 1G)", check_hugepage_sizes)
    yield HostCheck("hugetlbfs", "hugetlbfs mounted", check_hugetlbfs)
    yield HostCheck("thp", "transparent hugepage modes", check_thp)
    yield HostCheck("ksm", "kernel samepage merging present", check_ksm)
    yield HostCheck("amd-sev", "AMD SEV / SEV-ES / SEV-SNP", check_amd_sev)
    yield HostCheck("intel-tdx", "Intel TDX", check_intel_tdx)
    yield HostCheck("environment", "container or virtual machine", check_environment)
    yield HostCheck("libvirt", "libvirt reachable (qemu:///system)", check_libvirt)
    yield HostCheck("qemu-img", "qemu-img present",
                    _tool_check("qemu-img", "FAIL", "virtscenario creates disk images with it",
                                "qemu-utils (Debian), qemu-tools (SUSE), qemu-img (Fedora)"))
    yield HostCheck("swtpm", "swtpm present",
                    _tool_check("swtpm", "WARN", "emulated TPMs need it", "swtpm and swtpm-tools"))
    yield HostCheck("virtiofsd", "virtiofsd present",
                    _tool_check("virtiofsd", "WARN", "shared directories (filesystem.share) need it",
                                "virtiofsd (Debian/SUSE/Fedora; older QEMU ships it in qemu-system-common)",
                                VIRTIOFSD_EXTRA))
