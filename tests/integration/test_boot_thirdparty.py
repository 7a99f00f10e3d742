"""The third-party scenarios boot on the real libvirtd (QEMU under TCG), installed as users install them.

The plugins are built as wheels and installed, with the core and libvirt-python,
into a venv of this module; that venv's ``virtscenario create ... --connect
qemu:///system --start`` defines and starts the guests.

What TCG and the CI sandbox cannot do is adapted per run, each with its reason
(see ``softrt_adaptations``); everything else is the scenario as shipped.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import pytest
from lxml import etree
from virtscenario.host.facts import parse_cpulist

from tests.sdk.venvs import PLUGINS, Venv, make_venv

from .conftest import SYSTEM_URI, unique_name

pytestmark = pytest.mark.libvirtd


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    root = tmp_path_factory.mktemp("boot3p")
    # The same libvirt-python as the test environment (built against the system libvirt).
    venv = make_venv(root / "venv", extra=(f"libvirt-python=={metadata.version('libvirt-python')}",))
    # The host tuning plugin too, as the default setup installs it: it writes the isolcpus advice for the
    # CPU split softrt computes (softrt adds irqaffinity and tuned).
    wheels = venv.build_wheels([PLUGINS / "scenario_softrt", PLUGINS / "scenario_migration",
                                PLUGINS / "host_tuning"], root)
    venv.pip("install", "-q", *map(str, wheels.values()))
    yield venv


def _physical_cores() -> tuple[int, int]:
    """(cores, sockets) of this host, from sysfs."""
    cores, sockets = set(), set()
    base = Path("/sys/devices/system/cpu")
    for topo in base.glob("cpu[0-9]*/topology"):
        socket = (topo / "physical_package_id").read_text().strip()
        cores.add((socket, (topo / "core_id").read_text().strip()))
        sockets.add(socket)
    return len(cores), len(sockets)


def _hugetlbfs_mounted() -> bool:
    return any(line.split()[2] == "hugetlbfs" for line in Path("/proc/mounts").read_text().splitlines())


def _free_2m_pages() -> int:
    path = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
    return int(path.read_text()) if path.exists() else 0


def softrt_adaptations(memory_mib: int) -> tuple[list[str], list[str]]:
    """(extra create arguments, reasons) for what this machine cannot give a soft-RT guest."""
    args: list[str] = []
    reasons: list[str] = []
    # <locked/> needs a memlock allowance the size of the guest; here RLIMIT_MEMLOCK is 8 MiB and
    # CAP_SYS_RESOURCE is missing. libvirt also applies the memtune hard_limit as the memlock
    # limit ("cannot limit locked memory ... Operation not permitted"), so both go.
    args += ["--set", "memory.locked=off", "--set", "memory.hard_limit_overhead=unset"]
    reasons.append("memlock is capped at 8 MiB")
    # CI reserves 512 x 2 MiB pages on a hugetlbfs mount before libvirtd starts and no 1 GiB page:
    # softrt itself must then choose 2 MiB (it used to take 1 GiB because the CPU offers it).
    if not _hugetlbfs_mounted() or _free_2m_pages() < memory_mib // 2:
        pytest.fail(f"hugepages are not prepared (hugetlbfs mounted: {_hugetlbfs_mounted()}, free 2 MiB pages: "
                    f"{_free_2m_pages()}, need {memory_mib // 2}): start libvirtd with scripts/libvirtd.sh, which "
                    "mounts hugetlbfs and reserves pages before the daemon starts", pytrace=False)
    # cgroup v1 with RT group scheduling: libvirt's per-VM cgroups have cpu.rt_runtime_us=0, so the
    # kernel refuses SCHED_FIFO for vCPU threads ("Cannot set scheduler parameters ... Operation not
    # permitted"). The softrt-rt-group-sched host check reports exactly this.
    if Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists():
        args += ["--set", "cpu.scheduler=none"]
        reasons.append("RT group scheduling gives VM cgroups no RT budget")
    return args, reasons


def create(venv: Venv, scenario: str, name: str, out: Path, *extra: str) -> Any:
    proc = venv.virtscenario("create", scenario, "--name", name, "--connect", SYSTEM_URI, "--virt-type", "qemu",
                             "--network", "user", "--disk", "size=64M", "--output", str(out), "--start", "--explain",
                             *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Started {name} on {SYSTEM_URI}" in proc.stdout
    return proc


def live_xml(conn: Any, name: str) -> etree._Element:
    dom = conn.lookupByName(name)
    assert dom.isActive()
    return etree.fromstring(dom.XMLDesc(0).encode())


def test_softrt_boots_pinned_on_isolated_cpus(venv: Venv, libvirtd_conn: Any, domain_cleanup: Any,
                                              guest_dir: Path) -> None:
    cores, sockets = _physical_cores()
    # One core per socket does housekeeping; each vCPU needs a whole other core. The CI host
    # has 2 CPUs: 1 housekeeping + 1 isolated, so one vCPU (kbase: the 2-vCPU minimum is for
    # a Linux guest's non-real-time vCPU; softrt warns about it).
    vcpus = min(2, cores - sockets)
    assert vcpus >= 1, f"this host has {cores} cores on {sockets} sockets: no CPU left to isolate"
    memory = 256
    extra, reasons = softrt_adaptations(memory)
    name = unique_name("softrt")
    domain_cleanup(libvirtd_conn, name)
    proc = create(venv, "softrt", name, guest_dir, "--vcpus", str(vcpus), "--memory", f"{memory}MiB", *extra)
    root = live_xml(libvirtd_conn, name)
    pins = {int(p.get("vcpu")): p.get("cpuset") for p in root.findall("cputune/vcpupin")}
    assert len(pins) == vcpus
    emulator = root.find("cputune/emulatorpin").get("cpuset")
    housekeeping = set(parse_cpulist(emulator))
    assert 0 in housekeeping and housekeeping.isdisjoint(int(c) for c in pins.values())
    assert root.find("cputune/iothreadpin").get("cpuset") == emulator
    assert root.find("features/pmu").get("state") == "off"
    assert root.find("devices/memballoon").get("model") == "none"
    assert root.find("memoryBacking/hugepages/page").get("size") == "2048"
    assert "softrt: 2 MiB hugepages, reserved on NUMA node 0; 1 GiB pages are not" in proc.stderr
    assert root.find("memoryBacking/nosharepages") is not None
    # firmware without SMM (libvirt's default pick is the secure-boot build with SMM on)
    assert root.find("features/smm").get("state") == "off"
    assert root.find("os/loader").text.endswith("/OVMF_CODE_4M.fd")
    assert root.find("clock/timer[@name='hpet']").get("present") == "no"
    sched = root.find("cputune/vcpusched")
    if "RT group scheduling gives VM cgroups no RT budget" in reasons:
        assert sched is None
    else:
        assert sched.get("scheduler") == "fifo" and sched.get("priority") == "1"
    # The pinning is real: the running vCPU threads may only use their isolated CPU.
    dom = libvirtd_conn.lookupByName(name)
    for vcpu, cpumap in enumerate(dom.vcpuPinInfo(0)):
        assert [cpu for cpu, allowed in enumerate(cpumap) if allowed] == [int(pins[vcpu])]
    assert "host plan" in proc.stdout.lower() and "isolcpus" in proc.stdout


def test_migration_boots_with_host_model(venv: Venv, libvirtd_conn: Any, domain_cleanup: Any,
                                         guest_dir: Path) -> None:
    name = unique_name("migration")
    domain_cleanup(libvirtd_conn, name)
    create(venv, "migration", name, guest_dir, "--memory", "256MiB")
    inactive = etree.fromstring(libvirtd_conn.lookupByName(name).XMLDesc(2).encode())  # VIR_DOMAIN_XML_INACTIVE
    assert inactive.find("cpu").get("mode") == "host-model"
    root = live_xml(libvirtd_conn, name)
    # libvirt expanded host-model into the full CPU at start: that is what migration transfers.
    assert root.find("cpu").get("mode") == "custom" and root.find("cpu/model").text
    assert [d.get("cache") for d in root.findall("devices/disk/driver")] == ["none"]
    # a vTPM migrates (its state travels in the migration stream): swtpm runs for it
    assert root.find("devices/tpm/backend").get("type") == "emulator"


def test_migration_baseline_from_a_real_hypervisor(venv: Venv, libvirtd_conn: Any, domain_cleanup: Any,
                                                   guest_dir: Path) -> None:
    """virConnectBaselineHypervisorCPU on libvirtd (test:///default lacks it), then the guest boots."""
    name = unique_name("mig-baseline")
    domain_cleanup(libvirtd_conn, name)
    proc = create(venv, "migration", name, guest_dir, "--memory", "256MiB", "--set", f"migration.hosts={SYSTEM_URI}")
    assert f"the migratable baseline of {SYSTEM_URI}" in proc.stderr
    inactive = etree.fromstring(libvirtd_conn.lookupByName(name).XMLDesc(2).encode())
    cpu = inactive.find("cpu")
    assert (cpu.get("mode"), cpu.get("check")) == ("custom", "full")
    assert cpu.find("model").get("fallback") == "forbid" and cpu.find("model").text
    assert cpu.findall("feature")
    assert inactive.find("os/type").get("machine").startswith("pc-q35-")
    assert live_xml(libvirtd_conn, name).find("cpu/model").text == cpu.find("model").text
