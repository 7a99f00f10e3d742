"""The softrt scenario: the CPU split, the XML it drives, the host plan from the same split."""

from __future__ import annotations

import pytest
import virtscenario_softrt
from virtscenario.api import Choice, ConfigError, HostRequirement, Scenario, VirtscenarioError, hookimpl
from virtscenario.errors import ValidationError
from virtscenario.host.facts import parse_cpulist
from virtscenario.plugin.hooks import Catalog
from virtscenario.testing import make_plugin_manager
from virtscenario_softrt.hostplan import check_isolated, check_rt_budget
from virtscenario_softrt.topology import assumed_host, compute_split

GIB = 1024**3


@pytest.fixture
def virtscenario_plugins():
    return [virtscenario_softrt]


# -- the split ------------------------------------------------------------------------
def test_split_keeps_one_core_per_socket_and_writes_ranges() -> None:
    split = compute_split(assumed_host(8), vcpus=2, housekeeping_cores=1)
    assert split.housekeeping == (0,)
    assert split.isolated_list == "1-7"
    assert split.vcpu_cpus == (1, 2)
    assert split.idle_siblings == ()
    two_sockets = compute_split(assumed_host(16, sockets=2), vcpus=4, housekeeping_cores=2)
    assert two_sockets.housekeeping_list == "0-1,8-9"
    assert two_sockets.isolated_list == "2-7,10-15"
    assert two_sockets.vcpu_cpus == (2, 3, 4, 5)


def test_split_gives_each_vcpu_a_whole_core_on_smt_hosts() -> None:
    host = assumed_host(16, threads_per_core=2)  # cores 0-7; cpu N and N+8 are siblings
    split = compute_split(host, vcpus=3, housekeeping_cores=1)
    assert split.housekeeping_list == "0,8"
    assert split.isolated_list == "1-7,9-15"
    assert split.vcpu_cpus == (1, 2, 3)
    assert split.idle_siblings == (9, 10, 11, 12, 13, 14, 15)
    both = compute_split(host, vcpus=3, housekeeping_cores=1, use_siblings=True)
    assert both.vcpu_cpus == (1, 9, 2)
    assert both.idle_siblings == ()


def test_split_from_an_explicit_isolated_list() -> None:
    host = assumed_host(8)
    split = compute_split(host, vcpus=2, housekeeping_cores=1, isolated="4-7")
    assert split.housekeeping_list == "0-3"
    assert split.vcpu_cpus == (4, 5)
    with pytest.raises(ConfigError, match="has no CPU 8-9"):
        compute_split(host, 2, 1, isolated="4-9")
    with pytest.raises(ConfigError, match="leaves no CPU for the host"):
        compute_split(host, 2, 1, isolated="0-7")
    with pytest.raises(ConfigError, match="is not a CPU list"):
        compute_split(host, 2, 1, isolated="four")
    smt = assumed_host(8, threads_per_core=2)  # siblings N, N+4
    shared = compute_split(smt, 1, 1, isolated="4")  # cpu 4 is the sibling of housekeeping cpu 0
    assert shared.shared_cores == (4,)


def test_too_few_cpus_is_refused_in_one_line() -> None:
    with pytest.raises(VirtscenarioError) as err:
        compute_split(assumed_host(4), vcpus=4, housekeeping_cores=1)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("softrt: the host has 4 CPUs; keeping 1 core(s) per NUMA node for housekeeping (0) "
                           "leaves 3 dedicated CPU(s) for 4 real-time vCPUs: use --vcpus 3")
    with pytest.raises(VirtscenarioError, match="leaves 0 dedicated.*softrt.use_smt_siblings=on"):
        compute_split(assumed_host(4, threads_per_core=2), vcpus=1, housekeeping_cores=2)
    with pytest.raises(ConfigError, match="cannot be split"):
        assumed_host(6, sockets=4)


# -- the XML ----------------------------------------------------------------------------
def test_offline_xml_has_the_kbase_elements(virtscenario_render) -> None:
    result = virtscenario_render("softrt")
    t = result.tree
    assert result.validated
    assert [(p.get("vcpu"), p.get("cpuset")) for p in t.findall("cputune/vcpupin")] == [("0", "1"), ("1", "2")]
    assert t.find("cputune/emulatorpin").get("cpuset") == "0"
    assert t.find("cputune/iothreadpin").attrib == {"iothread": "1", "cpuset": "0"}
    assert t.find("cputune/vcpusched").attrib == {"vcpus": "0-1", "scheduler": "fifo", "priority": "1"}
    assert t.find("features/pmu").get("state") == "off"
    assert t.find("features/kvm/hint-dedicated").get("state") == "on"
    assert t.find("cpu/feature[@name='tsc-deadline']").get("policy") == "require"
    assert t.find("cpu/topology").attrib == {"sockets": "1", "dies": "1", "cores": "2", "threads": "1"}
    # the assumed host offers 1 GiB pages but has none reserved: 2 MiB, which the host plan reserves
    assert t.find("memoryBacking/hugepages/page").get("size") == "2048"
    assert t.find("memoryBacking/locked") is not None and t.find("memoryBacking/nosharepages") is not None
    assert int(t.findtext("memtune/hard_limit")) == int(t.findtext("memory")) + 1024 * 1024
    assert t.find("devices/memballoon").get("model") == "none"
    assert {tm.get("name"): tm.get("present") for tm in t.findall("clock/timer")} == \
        {"rtc": None, "pit": None, "hpet": "no", "kvmclock": "yes"}
    assert t.find("devices/controller[@type='usb']").get("model") == "none"  # kbase: no USB controller
    assert t.findall("devices/input") == [] and t.findall("devices/sound") == [] and t.findall("devices/graphics") == []
    assert t.find("devices/console/target").get("type") == "serial"
    assert t.find("devices/disk/driver").get("iothread") == "1"
    assert any("for an assumed host of 8 CPUs" in n for n in result.note_texts())


def test_assumed_host_shape_follows_settings(virtscenario_render) -> None:
    result = virtscenario_render("softrt", vcpus=3, settings={"softrt.host_cpus": 16, "softrt.host_sockets": 2,
                                                              "softrt.host_threads_per_core": 2})
    assert [p.get("cpuset") for p in result.tree.findall("cputune/vcpupin")] == ["1", "2", "3"]
    assert result.tree.find("cputune/emulatorpin").get("cpuset") == "0,4,8,12"
    assert any("sibling threads 9-11,13-15" in n and "idle" in n for n in result.note_texts())
    with pytest.raises(VirtscenarioError, match="the host has 4 CPUs"):
        virtscenario_render("softrt", settings={"softrt.host_cpus": 4, "softrt.host_threads_per_core": 2})


def test_real_topology_from_a_host_root(virtscenario_render, virtscenario_make_host_root) -> None:
    host = virtscenario_make_host_root(cpus=16, sockets=2, threads_per_core=2)
    result = virtscenario_render("softrt", host=host)
    assert [p.get("cpuset") for p in result.tree.findall("cputune/vcpupin")] == ["1", "2"]
    assert result.tree.find("cputune/emulatorpin").get("cpuset") == "0,4,8,12"
    assert not any("assumed" in n for n in result.note_texts())
    result = virtscenario_render("softrt", host=host, settings={"host.isolated_cpus": "5-7,13-15"})
    assert [p.get("cpuset") for p in result.tree.findall("cputune/vcpupin")] == ["5", "6"]
    assert result.tree.find("cputune/emulatorpin").get("cpuset") == "0-4,8-12"


def test_hugepage_size_is_one_the_host_has_reserved(virtscenario_render, virtscenario_make_host_root) -> None:
    """Issue 11: 1 GiB pages were picked whenever the host *offered* the size; with none reserved libvirt
    fails ("Unable to find any usable hugetlbfs mount for 1048576 KiB")."""
    offered = virtscenario_make_host_root()  # offers 2M and 1G, reserves none
    result = virtscenario_render("softrt", host=offered)
    assert result.tree.find("memoryBacking/hugepages/page").get("size") == "2048"
    assert any("2 MiB hugepages: none are reserved for this VM yet; the host plan reserves them on NUMA node 0"
               in n and "hugepagesz=1G hugepages=2" in n for n in result.note_texts())
    assert {r.key: r.value for r in result.host_requirements}["memory.hugepage_size"] == 2 * 1024**2
    reserved_1g = virtscenario_make_host_root(reserved_hugepages={1048576: 2})
    result = virtscenario_render("softrt", host=reserved_1g)
    assert result.tree.find("memoryBacking/hugepages/page").get("size") == str(1024 * 1024)
    assert any("1 GiB hugepages, reserved on NUMA node 0" in n for n in result.note_texts())
    reserved_2m = virtscenario_make_host_root(reserved_hugepages={2048: 1024, 1048576: 1})  # 1 x 1G: too few
    result = virtscenario_render("softrt", host=reserved_2m)
    assert result.tree.find("memoryBacking/hugepages/page").get("size") == "2048"
    assert any("2 MiB hugepages, reserved on NUMA node 0; 1 GiB pages are not" in n
               for n in result.note_texts())
    unmounted = virtscenario_make_host_root(reserved_hugepages={1048576: 2},
                                            files={"/proc/mounts": "proc /proc proc rw 0 0\n"})
    assert virtscenario_render("softrt", host=unmounted).tree.find("memoryBacking/hugepages/page").get("size") == \
        "2048"  # reserved but not mounted: libvirt would find no usable hugetlbfs mount
    odd = virtscenario_render("softrt", memory="1536MiB", host=reserved_1g)
    assert odd.tree.find("memoryBacking/hugepages/page").get("size") == "2048"
    # An explicit choice is kept, and judged by the core's rules.
    kept = virtscenario_render("softrt", host=offered, settings={"memory.hugepage_size": "1G"})
    assert kept.tree.find("memoryBacking/hugepages/page").get("size") == str(1024 * 1024)
    with pytest.raises(ValidationError, match="hugepage-multiple"):
        virtscenario_render("softrt", memory="1536MiB", settings={"memory.hugepage_size": "1G"})


def test_hugepages_per_node_from_libvirt_capabilities() -> None:
    """--connect: the per-cell <pages> counts of virsh capabilities say what is reserved, not <cpu><pages>."""
    from pathlib import Path

    from virtscenario.host.hypervisor import parse_capabilities
    host, _machines = parse_capabilities((Path(__file__).parent.parent / "data/caps/this-host.xml").read_bytes())
    assert 1048576 in host.hugepage_sizes_kib  # offered ...
    assert host.hugepages_available(1048576, 0) == 0 and host.hugepages_available(2048, 0) == 512  # ... reserved


def test_softrt_firmware_needs_no_smm_and_keeps_invtsc(virtscenario_render) -> None:
    """Issue 11: left unspecified, libvirt picks the secure-boot OVMF with SMM on (SMIs are latency spikes);
    and computation exposes invtsc with migratable='off' while softrt hid it."""
    t = virtscenario_render("softrt").tree
    assert t.find("features/smm").get("state") == "off"
    assert {f.get("name"): f.get("enabled") for f in t.findall("os/firmware/feature")} == \
        {"secure-boot": "no", "enrolled-keys": "no"}
    assert t.find("cpu").get("migratable") == "off"


def test_housekeeping_on_every_numa_node_and_memory_bound(virtscenario_render, virtscenario_make_host_root) -> None:
    """kbase: host CPUs 'in each NUMA node'; and memory strictly on the node of the RT vCPUs."""
    host = virtscenario_make_host_root(cpus=16, sockets=2)  # node 0: 0-7, node 1: 8-15
    result = virtscenario_render("softrt", host=host, vcpus=2)
    assert result.tree.find("cputune/emulatorpin").get("cpuset") == "0,8"
    assert result.tree.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0"}
    assert {r.key: r.value for r in result.host_requirements}["host.hugepages_nodes"] == "0"


def test_user_settings_still_win(virtscenario_render) -> None:
    result = virtscenario_render("softrt", settings={"cpu.scheduler": "rr", "cpu.priority": 10,
                                                     "memory.balloon": "virtio"})
    assert result.tree.find("cputune/vcpusched").attrib == {"vcpus": "0-1", "scheduler": "rr", "priority": "10"}
    assert result.tree.find("devices/memballoon").get("model") == "virtio"


def test_rule_warns_about_unpinned_realtime_vcpus(virtscenario_render) -> None:
    class Other:
        __name__ = "other"

        @hookimpl
        def register_scenarios(self):
            return [Scenario("other", "unpinned", "1.0", (
                Choice("cpu.scheduler", "fifo", "test", "https://libvirt.org/formatdomain.html"),))]

    result = virtscenario_render("other", plugins=[virtscenario_softrt, Other()])
    assert any("rt-vcpus-pinned" in n and "only 0 of 2 are pinned" in n for n in result.note_texts())
    pinned = virtscenario_render("softrt")
    assert not any("rt-vcpus-pinned" in n for n in pinned.note_texts())


# -- the host side ---------------------------------------------------------------------
def _plan(result, host, *extra):
    pm = make_plugin_manager([virtscenario_softrt, *extra])
    return {c.knob: c for _plugin, c in Catalog(pm).host_plan(list(result.host_requirements), host)}


def test_host_plan_uses_the_same_split_as_the_xml(virtscenario_render, virtscenario_make_host_root) -> None:
    import virtscenario_host_tuning

    host = virtscenario_make_host_root(cpus=16, threads_per_core=2, cmdline="ro quiet isolcpus=3")
    result = virtscenario_render("softrt", host=host, vm_name="rt-plan", vcpus=3)
    # The split computed while building the XML travels as a concrete host requirement (require_host) ...
    [req] = [r for r in result.host_requirements if r.key == "host.isolated_cpus"]
    assert req.value == "1-7,9-15" and req.vm == "rt-plan"
    # ... so the host tuning plugin writes isolcpus/nohz_full/rcu_nocbs and softrt adds the rest.
    plan = _plan(result, host, virtscenario_host_tuning)
    assert "kernel cmdline isolcpus" not in plan
    assert plan["kernel cmdline (isolated CPUs)"].target == \
        "isolcpus=managed_irq,domain,1-7,9-15 nohz_full=1-7,9-15 rcu_nocbs=1-7,9-15"
    assert plan["kernel cmdline (isolated CPUs)"].current == "isolcpus=3"
    assert plan["kernel cmdline irqaffinity"].target == "0,8"
    assert plan["tuned realtime-virtual-host isolated_cores"].target == "1-7,9-15"
    assert plan["tuned profile"].target == "realtime-virtual-host"
    softrt_rows = [c for c in plan.values() if c.source.startswith("scenario softrt")]
    assert softrt_rows and all(c.advice_only and c.reboot_required and c.source == "scenario softrt (VM rt-plan)"
                               for c in softrt_rows)
    # Computed once: the XML pins into exactly the CPUs the host isolates, the rest stays home.
    isolated = set(parse_cpulist(plan["tuned realtime-virtual-host isolated_cores"].target))
    pins = {int(p.get("cpuset")) for p in result.tree.findall("cputune/vcpupin")}
    assert pins <= isolated
    assert result.tree.find("cputune/emulatorpin").get("cpuset") == plan["kernel cmdline irqaffinity"].target
    assert not any(knob.startswith("RT group scheduling") for knob in plan)


def test_host_plan_leaves_a_concrete_requirement_to_the_host_tuning_plugin(virtscenario_render,
                                                                            virtscenario_host_root) -> None:
    result = virtscenario_render("softrt", host=virtscenario_host_root, settings={"host.isolated_cpus": "4-7"})
    assert any(r.key == "host.isolated_cpus" and r.value == "4-7" for r in result.host_requirements)
    plan = _plan(result, virtscenario_host_root)
    assert "kernel cmdline isolcpus" not in plan
    assert plan["kernel cmdline irqaffinity"].target == "0-3"
    assert plan["tuned realtime-virtual-host isolated_cores"].target == "4-7"


def test_host_plan_without_a_vm_reads_the_host_topology(virtscenario_make_host_root) -> None:
    host = virtscenario_make_host_root(cpus=12, files={"/etc/tuned/active_profile": "virtual-host\n",
                                                        "/etc/tuned/realtime-virtual-host-variables.conf":
                                                            "# comment\nisolated_cores=2-11\n",
                                                        "/sys/fs/cgroup/cpu/cpu.rt_runtime_us": "950000\n"})
    req = HostRequirement("host.ksm", "off", "r", "ref", "softrt")
    plan = {c.knob: c for c in virtscenario_softrt.host_plan([req], host)}
    assert plan["kernel cmdline isolcpus"].target == "managed_irq,domain,1-11"
    assert f"[CPU split from: host files under {host.root}]" in plan["kernel cmdline isolcpus"].reason
    assert plan["tuned realtime-virtual-host isolated_cores"].current == "2-11"
    assert plan["tuned profile"].current == "virtual-host"
    assert plan["RT group scheduling (/sys/fs/cgroup/cpu/cpu.rt_runtime_us)"].advice_only
    assert list(virtscenario_softrt.host_plan([HostRequirement("host.ksm", "off", "r", "ref", "desktop")], host)) \
        == []


def test_host_checks(virtscenario_make_host_root) -> None:
    plain = virtscenario_make_host_root()
    assert check_rt_budget(plain).status == "PASS"
    assert check_isolated(plain).status == "WARN"
    tuned = virtscenario_make_host_root(files={"/sys/fs/cgroup/cpu/cpu.rt_runtime_us": "950000\n",
                                               "/sys/devices/system/cpu/isolated": "1-7\n"})
    assert check_rt_budget(tuned).status == "FAIL"
    assert check_isolated(tuned).status == "PASS"
    names = [c.name for c in virtscenario_softrt.host_checks()]
    assert names == ["softrt-rt-group-sched", "softrt-isolated-cpus"]


def test_scenario_decisions_are_explained() -> None:
    keys = {c.key for c in virtscenario_softrt.SCENARIO.choices}
    assert {"cpu.scheduler", "memory.locked", "memory.balloon", "features.pmu", "clock.hpet",
            "clock.kvmclock", "cpu.features", "usb.controller", "host.ksm"} <= keys
    assert all("kbase" in c.rationale or c.reference.startswith("https://") for c in
               virtscenario_softrt.SCENARIO.choices)


def test_a_core_that_takes_computed_requirements_gets_the_split(virtscenario_render,
                                                                virtscenario_make_host_root) -> None:
    """With a core whose context accepts host requirements (proposed ``require_host``), the
    computed list becomes the requirement, and the plan keeps the split's housekeeping CPUs."""
    from virtscenario.domain.context import BuildContext

    class Context(BuildContext):
        required: tuple = ()

        def require_host(self, key, value, rationale, reference):
            self.required = (key, value)

    result = virtscenario_render("softrt")
    context = Context(scenario=virtscenario_softrt.SCENARIO, vm_name="handed")
    virtscenario_softrt.customize_model(result.domain, result.settings, context)
    assert context.required == ("host.isolated_cpus", "1-7")
    req = HostRequirement("host.isolated_cpus", "1-7", "r", "ref", "softrt", "handed")
    plan = {c.knob: c for c in virtscenario_softrt.host_plan([req], virtscenario_make_host_root(cpus=12))}
    assert "kernel cmdline isolcpus" not in plan  # a concrete requirement: the host tuning plugin writes it
    assert plan["kernel cmdline irqaffinity"].target == "0"  # the split's, not this 12-CPU host's 0,8-11
