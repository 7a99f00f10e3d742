"""host check: PASS/WARN/FAIL on generated hosts, exit codes, JSON, broken checks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from virtscenario import hookimpl
from virtscenario.api import CheckResult, HostCheck, HostRoot
from virtscenario_host_tuning import checks

from . import fakehost
from .support import make_pm, use_pm


def results(host: HostRoot) -> dict[str, CheckResult]:
    return {c.name: c.run(host) for c in checks.host_checks()}


def test_amd_sev_host_passes_everything_but_the_hugetlbfs_mount(make_host):
    res = results(make_host(fakehost.amd_sev()))
    assert res["cpu-virt"].status == "PASS" and "svm" in res["cpu-virt"].message
    assert res["amd-sev"].status == "PASS"
    assert "sev, sev_es, sev_snp" in res["amd-sev"].message
    assert res["intel-tdx"].status == "PASS" and "not applicable" in res["intel-tdx"].message
    assert res["hugepage-sizes"].message.startswith("hugepage sizes: 2M, 1G")
    assert res["hugetlbfs"].status == "WARN"
    assert res["environment"].status == "PASS"
    failing = {n: r.status for n, r in res.items() if r.status != "PASS"}
    assert failing == {"hugetlbfs": "WARN"}


def test_sev_capable_but_disabled_in_kvm_amd_warns_with_the_fix(make_host):
    res = results(make_host(fakehost.amd_sev_disabled()))
    assert res["amd-sev"].status == "WARN"
    assert "options kvm_amd sev=1 sev_es=1 sev_snp=1" in res["amd-sev"].advice


def test_sev_without_dev_sev_is_disabled_in_firmware(make_host):
    res = results(make_host(fakehost.amd_sev(dev_sev=False)))
    assert res["amd-sev"].status == "WARN" and "/dev/sev is missing" in res["amd-sev"].message


def test_intel_host_with_tdx_platform_but_disabled(make_host):
    res = results(make_host(fakehost.intel()))
    assert res["cpu-virt"].status == "PASS" and "vmx" in res["cpu-virt"].message
    assert res["iommu"].status == "PASS" and "2 units" in res["iommu"].message
    assert res["intel-tdx"].status == "WARN" and "kvm_intel.tdx=1" in res["intel-tdx"].advice
    assert res["amd-sev"].status == "PASS" and "Intel" in res["amd-sev"].message
    res = results(make_host(fakehost.intel(module_params={"kvm_intel/tdx": "Y\n"})))
    assert res["intel-tdx"].status == "PASS"


def test_no_virtualization_fails_and_flag_substrings_do_not_count(make_host):
    host = make_host(fakehost.no_virt())
    # The fake CPU has 'svm_lock' but not 'svm': a substring search (upstream bug 19) would pass.
    assert "svm" in host.read("/proc/cpuinfo")
    res = results(host)
    assert res["cpu-virt"].status == "FAIL"
    assert res["kvm-device"].status == "FAIL"
    assert res["ksm"].status == "WARN"
    assert res["hugepage-sizes"].message.endswith("no 1G pages: the CPU lacks pdpe1gb")
    assert res["swtpm"].status == "WARN" and res["virtiofsd"].status == "WARN"
    assert res["libvirt"].status == "WARN"


def test_container_and_vm_are_reported_with_what_they_mean(make_host):
    res = results(make_host(fakehost.container()))
    env = res["environment"]
    assert env.status == "WARN"
    assert "/.dockerenv" in env.message and "docker" in env.message and "virtual machine" in env.message
    assert "shared" in env.advice
    podman = results(make_host(fakehost.container(container_marker="/run/.containerenv", cgroup="0::/\n",
                                                   flags=("vmx",))))["environment"]
    assert podman.status == "WARN" and "/run/.containerenv" in podman.message
    assert "virtual machine" not in podman.message
    vm = results(make_host(fakehost.amd_sev(flags=("svm", "hypervisor"))))["environment"]
    assert vm.status == "WARN" and "virtual machine" in vm.message


def test_iommu_off_names_the_kernel_argument(make_host):
    res = results(make_host(fakehost.amd_sev(iommu_units=(), cmdline="ro quiet iommu=off")))
    assert res["iommu"].status == "WARN"
    assert "iommu=off" in res["iommu"].message and "amd_iommu=on" not in res["iommu"].advice
    assert res["iommu"].advice.startswith("needed for device passthrough and SEV-SNP: remove iommu=off from the "
                                          "kernel command line, enable AMD-Vi (IOMMU) in the firmware setup")


def test_hugetlbfs_mount_with_pagesize_is_recognised(make_host):
    spec = fakehost.amd_sev(mounts=("hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0",
                                    "none /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0"))
    res = results(make_host(spec))
    assert res["hugetlbfs"].status == "PASS"
    assert "/dev/hugepages (2M)" in res["hugetlbfs"].message and "/dev/hugepages1G (1G)" in res["hugetlbfs"].message


def test_tools_are_searched_inside_the_host_root_only(make_host):
    host = make_host(fakehost.amd_sev(tools=("/usr/lib/qemu/virtiofsd",)))
    res = results(host)
    # qemu-img exists on this machine's $PATH, but not in the tree: the tree decides.
    assert res["qemu-img"].status == "FAIL"
    assert res["virtiofsd"].status == "PASS" and "/usr/lib/qemu/virtiofsd" in res["virtiofsd"].message


def test_real_host_libvirt_check_without_bindings_is_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import libvirt -> ImportError
    res = checks.check_libvirt(HostRoot(None))
    assert res.status == "WARN" and "libvirt-python" in res.message


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_check_exit_codes_and_json(run_cli, make_host):
    good = make_host(fakehost.amd_sev())
    result = run_cli(["--host-root", str(good.root), "host", "check"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^PASS +cpu-virt ", result.stdout, re.M) and "1 WARN, 0 FAIL" in result.stdout
    bad = make_host(fakehost.no_virt())
    result = run_cli(["--host-root", str(bad.root), "host", "check", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    names = [d["name"] for d in data]
    assert names[:2] == ["cpu-virt", "kvm-device"] and len(data) == len(list(checks.host_checks()))
    assert {d["status"] for d in data} == {"PASS", "WARN", "FAIL"}
    assert all(d["plugin"] == "host_tuning" and d["message"] for d in data)


def test_a_check_that_raises_is_a_fail_naming_its_plugin(monkeypatch, make_host):
    class Broken:
        @hookimpl
        def host_checks(self):
            yield HostCheck("broken", "always raises", lambda host: 1 / 0)
            yield HostCheck("wrongtype", "returns a string", lambda host: "PASS")

    manager = make_pm()
    manager.register_plugin(Broken(), "brokenchecks")
    use_pm(monkeypatch, manager)
    from click.testing import CliRunner
    from virtscenario.cli.app import cli
    host = make_host(fakehost.amd_sev(mounts=("hugetlbfs /dev/hugepages hugetlbfs rw 0 0",)))
    result = CliRunner().invoke(cli, ["--host-root", str(host.root), "host", "check", "--json"])
    assert result.exit_code == 1
    data = {d["name"]: d for d in json.loads(result.stdout)}
    assert data["broken"]["status"] == "FAIL" and data["broken"]["plugin"] == "brokenchecks"
    assert "plugin 'brokenchecks'" in data["broken"]["message"] and "ZeroDivisionError" in data["broken"]["message"]
    assert data["wrongtype"]["status"] == "FAIL" and "not CheckResult" in data["wrongtype"]["message"]
    assert data["cpu-virt"]["status"] == "PASS"  # the other checks still ran


def test_installed_cli_check_with_host_root_exit_code(tmp_path: Path):
    """The real console script (entry points) with VIRTSCENARIO_HOST_ROOT: 1 on a host without KVM."""
    exe = Path(sys.executable).parent / "virtscenario"
    root = fakehost.build(tmp_path / "h", fakehost.no_virt())
    env = {"PATH": "/usr/bin:/bin", "VIRTSCENARIO_HOST_ROOT": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run([str(exe), "host", "check"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"^FAIL +cpu-virt ", proc.stdout, re.M) and "Traceback" not in proc.stderr
    good = fakehost.build(tmp_path / "g", fakehost.amd_sev(mounts=("hugetlbfs /dev/hugepages hugetlbfs rw 0 0",)))
    proc = subprocess.run([str(exe), "--host-root", str(good), "host", "check"], capture_output=True, text=True,
                          env={**env, "VIRTSCENARIO_HOST_ROOT": ""}, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 WARN, 0 FAIL" in proc.stdout
