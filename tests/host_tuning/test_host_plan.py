"""host plan: knobs, conflicts and their rules, hugepages arithmetic, SEV, refusals; plans never write."""

from __future__ import annotations

import json
import re

import pytest
from virtscenario.api import HostChange, HostRequirement
from virtscenario_host_tuning.inputs import gather
from virtscenario_host_tuning.plan import build_plan

from . import fakehost

GIB = 1024**3


def plan_for(catalog, host, scenario, **kw):
    return build_plan(gather(scenario, **kw).requirements, host)


def by_knob(plan):
    return {a.change.knob: a for a in plan.actions}


def req(key, value, scenario, vm=None, memory=0):
    return HostRequirement(key, value, f"{scenario} wants it", "https://example.org/ref", scenario, vm, memory)


def test_desktop_like_plan_every_knob_current_to_target(catalog, make_host):
    host = make_host(fakehost.amd_sev())
    plan = plan_for(catalog, host, "tdesk")
    knobs = by_knob(plan)
    assert (knobs["thp.enabled"].change.current, knobs["thp.enabled"].change.target) == ("madvise", "always")
    assert knobs["thp.enabled"].needed and knobs["thp.enabled"].change.source == "tdesk"
    assert knobs["thp.defrag"].change.current == knobs["thp.defrag"].change.target == "madvise"
    assert not knobs["thp.defrag"].needed
    assert (knobs["ksm.run"].change.current, knobs["ksm.run"].change.target) == ("0", "1")
    assert (knobs["vm.swappiness"].change.current, knobs["vm.swappiness"].change.target) == ("60", "35")
    assert knobs["vm.swappiness"].change.reason == "test rationale for swappiness"
    assert not plan.refusals and not plan.conflicts


def test_io_scheduler_only_real_devices_and_offered_schedulers(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.amd_sev()), "tdesk")
    io = {k: a for k, a in by_knob(plan).items() if k.startswith("io_scheduler")}
    # loop0, zram0 and dm-0 are never touched; vda does not offer bfq: advice, not a write.
    assert set(io) == {"io_scheduler.nvme0n1", "io_scheduler.sda", "io_scheduler.vda"}
    assert io["io_scheduler.sda"].op == "tunable" and io["io_scheduler.sda"].change.target == "bfq"
    assert io["io_scheduler.sda"].change.path == "/sys/block/sda/queue/scheduler"
    assert io["io_scheduler.vda"].op == "advice" and "modprobe bfq" in io["io_scheduler.vda"].change.reason


@pytest.mark.parametrize("scheduler", ["bfq", "mq-deadline"])
def test_fast_multiqueue_devices_stay_at_none(catalog, make_host, scheduler):
    """The kernel gives multi-queue devices no scheduler (elevator.c: 'If we have multiple queues ...
    default to none'), and BFQ's per-request overhead caps IOPS (bfq-iosched.rst): NVMe is left alone."""
    plan = build_plan([req("host.io_scheduler", scheduler, "x")], make_host(fakehost.amd_sev()))
    nvme = by_knob(plan)["io_scheduler.nvme0n1"]
    assert not nvme.needed and nvme.op == "advice"
    assert (nvme.change.current, nvme.change.target) == ("none", "none")
    assert "4 hardware queues" in nvme.change.reason
    # a single-queue NVMe (or any single-queue device) is a candidate like a SATA disk
    one_queue = make_host(fakehost.amd_sev(block_queues={"nvme0n1": 1}))
    assert by_knob(build_plan([req("host.io_scheduler", scheduler, "x")], one_queue))["io_scheduler.nvme0n1"].needed


def test_no_real_block_device_is_advice(catalog, make_host):
    spec = fakehost.amd_sev(block={"loop0": ("[none] mq-deadline\n", False), "md0": ("none\n", False)})
    plan = plan_for(catalog, make_host(spec), "tdesk")
    assert by_knob(plan)["io_scheduler"].op == "advice"


def test_conflict_between_two_stored_vms_names_scenarios_and_rule(catalog, make_host):
    host = make_host(fakehost.amd_sev(ksm_run="1\n"))
    reqs = gather("tdesk").requirements + gather("tsec").requirements
    plan = build_plan(reqs, host)
    knobs = by_knob(plan)
    ksm = knobs["ksm.run"].change
    assert ksm.target == "2" and ksm.source == "tsec"
    assert "tdesk wants on" in ksm.conflict and "tsec wants off" in ksm.conflict
    assert "-> off" in ksm.conflict and "KSM off beats on" in ksm.conflict
    swap = knobs["vm.swappiness"].change
    assert swap.target == "10" and "lowest swappiness wins" in swap.conflict
    thp = knobs["thp.enabled"].change
    assert thp.target == "madvise" and "never > madvise > always" in thp.conflict
    io = knobs["io_scheduler.sda"].change
    assert io.target == "mq-deadline" and "mq-deadline > bfq" in io.conflict
    assert len(plan.conflicts) >= 4 and any(c.startswith("ksm.run: ") for c in plan.conflicts)


def test_conflict_rules_are_order_independent(catalog, make_host):
    host = make_host(fakehost.amd_sev())
    a = gather("tdesk").requirements
    b = gather("tsec").requirements
    one = [(c.knob, c.target) for c in build_plan(a + b, host).changes]
    two = [(c.knob, c.target) for c in build_plan(b + a, host).changes]
    assert one == two


def test_ksm_merge_across_nodes_is_changed_with_pages_unmerged_first(catalog, make_host):
    host = make_host(fakehost.amd_sev(ksm_run="1\n", nodes=2))
    plan = plan_for(catalog, host, "tcomp")
    steps = [(a.change.knob, a.change.current, a.change.target) for a in plan.actions
             if a.change.knob.startswith("ksm")]
    assert steps == [("ksm.run (unmerge first)", "1", "2"), ("ksm.merge_across_nodes", "1", "0"),
                     ("ksm.run", "2", "2")]
    # KSM wanted on, merge change: stop+unmerge, change, start again.
    reqs = [req("host.ksm", "on", "x"), req("host.ksm_merge_across_nodes", False, "x")]
    steps = [(a.change.knob, a.change.target, a.needed) for a in build_plan(reqs, host).actions]
    assert steps == [("ksm.run (unmerge first)", "2", True), ("ksm.merge_across_nodes", "0", True),
                     ("ksm.run", "1", True)]


def test_ksm_merge_across_nodes_is_written_directly_when_ksm_is_stopped_and_nothing_merged(catalog, make_host):
    """run=0, pages_shared=0 on 2 nodes: nothing to unmerge, so KSM stays at 0 (not 2) around the write."""
    host = make_host(fakehost.amd_sev(nodes=2))  # ksm run 0, pages_shared 0, merge_across_nodes 1
    plan = plan_for(catalog, host, "tcomp")
    steps = [(a.change.knob, a.change.current, a.change.target, a.needed) for a in plan.actions
             if a.change.knob.startswith("ksm")]
    assert steps == [("ksm.merge_across_nodes", "1", "0", True), ("ksm.run", "0", "0", False)]
    reqs = [req("host.ksm", "on", "x"), req("host.ksm_merge_across_nodes", False, "x")]
    steps = [(a.change.knob, a.change.current, a.change.target) for a in build_plan(reqs, host).actions]
    assert steps == [("ksm.merge_across_nodes", "1", "0"), ("ksm.run", "0", "1")]
    # stopped but pages still merged: they are unmerged first (the kernel answers EBUSY otherwise)
    merged = make_host(fakehost.amd_sev(nodes=2, ksm_pages_shared="300\n"))
    steps = [(a.change.knob, a.change.current, a.change.target) for a in plan_for(catalog, merged, "tcomp").actions
             if a.change.knob.startswith("ksm")]
    assert steps == [("ksm.run (unmerge first)", "0", "2"), ("ksm.merge_across_nodes", "1", "0"),
                     ("ksm.run", "2", "2")]


def test_ksm_merge_across_nodes_is_left_alone_on_one_node(catalog, make_host):
    host = make_host(fakehost.amd_sev(ksm_run="1\n"))  # one NUMA node
    plan = plan_for(catalog, host, "tcomp")
    merge = by_knob(plan)["ksm.merge_across_nodes"]
    assert merge.op == "advice" and (merge.change.current, merge.change.target) == ("1", "1")
    assert "one NUMA node" in merge.change.reason
    assert "ksm.run (unmerge first)" not in by_knob(plan)


def test_ksm_already_stopped_with_nothing_merged_is_no_change(catalog, make_host):
    """run=0 and pages_shared=0: writing 2 (stop and unmerge) would change nothing (ksm.rst)."""
    plan = plan_for(catalog, make_host(fakehost.amd_sev()), "tsec")
    run = by_knob(plan)["ksm.run"]
    assert not run.needed and run.change.current == run.change.target == "0"
    assert "nothing is merged" in run.change.reason
    merged = make_host(fakehost.amd_sev(ksm_pages_shared="1200\n"))  # stopped, but pages still merged
    run = by_knob(plan_for(catalog, merged, "tsec"))["ksm.run"]
    assert run.needed and (run.change.current, run.change.target) == ("0", "2")


def test_ksm_missing_from_kernel_is_advice(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.amd_sev(ksm=False)), "tsec")
    assert by_knob(plan)["ksm.run"].op == "advice"


def test_ksmtuned_installed_gets_disable_advice(catalog, make_host):
    spec = fakehost.amd_sev(extra_files={"/usr/lib/systemd/system/ksmtuned.service": "[Unit]\n"})
    action = by_knob(plan_for(catalog, make_host(spec), "tsec"))["ksm services"]
    assert action.op == "advice" and "systemctl disable --now ksmtuned.service" in action.change.reason


# -- hugepages ------------------------------------------------------------------------------------------
def test_hugepages_from_vm_memory_with_mount(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.amd_sev()), "tcomp")
    knobs = by_knob(plan)
    hp = knobs["hugepages.2M"].change
    assert hp.path == "/proc/sys/vm/nr_hugepages"  # default page size: the sysctl
    assert (hp.current, hp.target) == ("0", str(8 * GIB // (2 * 1024**2)))
    assert "new tcomp VM (8GiB)" in hp.reason and "2GiB kept for the host" in hp.reason
    mount = knobs["hugetlbfs.2M"]
    assert mount.change.path == "/dev/hugepages" and mount.change.advice_only  # fake root: never mounted
    assert mount.persist == ("fstab", "/dev/hugepages", "hugetlbfs /dev/hugepages hugetlbfs defaults 0 0")


def test_hugepages_summed_over_vms_and_never_shrunk(make_host):
    host = make_host(fakehost.amd_sev(extra_files={"/proc/sys/vm/nr_hugepages": "10\n"}))
    reqs = [req("host.hugepages", True, "a", "vm1", 4 * GIB), req("host.hugepages", True, "b", "vm2", 3 * GIB),
            req("host.hugepages", False, "c", "vm3", 16 * GIB), req("memory.hugepages", False, "a", "vm4", 8 * GIB),
            req("host.hugepages", True, "a", "vm4", 8 * GIB)]
    hp = by_knob(build_plan(reqs, host))["hugepages.2M"].change
    assert hp.target == str((4 + 3) * 512) and hp.current == "10"
    assert "not for" in hp.reason and "vm3" in hp.reason and "vm4" in hp.reason
    host2 = make_host(fakehost.amd_sev(extra_files={"/proc/sys/vm/nr_hugepages": "9999\n"}))
    hp = by_knob(build_plan(reqs, host2))["hugepages.2M"]
    assert hp.change.target == "9999" and not hp.needed


def test_hugepages_1g_use_the_size_directory_and_boot_advice(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.amd_sev()), "tcomp1g")
    knobs = by_knob(plan)
    hp = knobs["hugepages.1G"].change
    assert hp.path == "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages" and hp.target == "4"
    assert knobs["hugetlbfs.1G"].change.path == "/dev/hugepages1G"
    assert knobs["hugetlbfs.1G"].data == b"pagesize=1G"
    boot = knobs["kernel cmdline (1G pages)"].change
    assert boot.advice_only and boot.reboot_required and boot.target == "hugepagesz=1G hugepages=4"


def test_hugepage_size_the_host_lacks_is_refused(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.container()), "tcomp1g")
    assert plan.refusals == ["hugepages: new tcomp1g VM uses 1G pages, which this host does not offer (offers: 2M)"]
    assert not any(a.change.knob.startswith("hugepages") for a in plan.actions)


def test_hugepages_beyond_memtotal_minus_reserve_refused_in_one_line(catalog, make_host):
    host = make_host(fakehost.amd_sev(mem_gib=9))
    plan = plan_for(catalog, host, "tcomp")  # 8 GiB VM + 2 GiB reserve > 9 GiB
    assert len(plan.refusals) == 1
    line = plan.refusals[0]
    assert "\n" not in line and "8GiB" in line and "9.0 GiB (MemTotal)" in line and "2GiB" in line
    # A smaller reserve makes it fit.
    plan = plan_for(catalog, host, "tcomp", sets=("host.hugepages_reserve=512MiB",))
    assert not plan.refusals and by_knob(plan)["hugepages.2M"].change.target == "4096"


def test_hugepages_per_numa_node_when_asked(catalog, make_host):
    host = make_host(fakehost.intel())  # two nodes
    plan = plan_for(catalog, host, "tnuma")
    knobs = by_knob(plan)
    assert knobs["hugepages.2M.node0"].change.target == "1536" and knobs["hugepages.2M.node1"].change.target == "1536"
    assert knobs["hugepages.2M.node1"].change.path == \
        "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"
    plan = plan_for(catalog, host, "tnuma", sets=("host.hugepages_nodes=1",))
    knobs = by_knob(plan)
    assert "hugepages.2M.node0" not in knobs and knobs["hugepages.2M.node1"].change.target == "3072"
    plan = plan_for(catalog, host, "tnuma", sets=("host.hugepages_nodes=7",))
    assert plan.refusals and "NUMA nodes (0-1)" in plan.refusals[0]


def test_pinned_vm_gets_its_hugepages_on_its_node(run_cli, make_host, tmp_path):
    """Issue 11: a global reservation is spread over the nodes while the vCPUs (and now, strictly, the
    memory) sit on one node; create records the node, and the plan reserves there."""
    host = make_host(fakehost.intel())  # 8 CPUs, node 0: 0-3, node 1: 4-7
    store = tmp_path / "store"
    result = run_cli(["--host-root", str(host.root), "create", "tpin", "--name", "pin1", "--output", str(store),
                      "--disk", "none", "--network", "none"])
    assert result.exit_code == 0, result.output
    xml = (store / "pin1" / "domain.xml").read_text()
    assert "<memory mode=\"strict\" nodeset=\"0\"/>" in xml
    plan = run_cli(["--host-root", str(host.root), "host", "plan", "tpin", "--vm", "pin1", "--output", str(store),
                    "--json"])
    changes = {c["knob"]: c for c in json.loads(plan.stdout)["changes"]}
    assert changes["hugepages.2M.node0"]["target"] == "1024" and "hugepages.2M.node1" not in changes
    assert "hugepages.2M" not in changes  # no global pool the kernel would spread over both nodes


def test_hugepages_per_node_that_does_not_fit_the_node(catalog, make_host):
    host = make_host(fakehost.intel(mem_gib=10))  # 5 GiB per node, reserve 1 GiB per node
    plan = plan_for(catalog, host, "tnuma", sets=("host.hugepages_nodes=0",))
    assert plan.refusals and plan.refusals[0].startswith("hugepages: node 0 would hold 6GiB")


# -- SEV --------------------------------------------------------------------------------------------------
def test_sev_module_options_written_correctly_with_cmdline_advice(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.amd_sev_disabled(iommu_units=())), "tsec")
    knobs = by_knob(plan)
    sev = knobs["kvm_amd options"]
    assert sev.op == "file" and sev.change.path == "/etc/modprobe.d/virtscenario-sev.conf"
    lines = [line for line in sev.data.decode().splitlines() if not line.startswith("#")]
    assert lines == ["options kvm_amd sev=1 sev_es=1 sev_snp=1"]  # never "options mem_encrypt=on ..." (bug 18)
    assert sev.change.reboot_required and "never reloads" in sev.change.reason
    assert (sev.change.current, sev.change.target) == ("sev=0 sev_es=0 sev_snp=0", "sev=1 sev_es=1 sev_snp=1")
    # SME (mem_encrypt=on) protects the host's own memory; SEV guests do not need it: optional advice,
    # never a kernel command line the plan (or its tuned profile) asks for.
    assert "kernel cmdline (SEV)" not in knobs
    sme = knobs["host memory encryption (SME, optional)"].change
    assert sme.target == "mem_encrypt=on" and sme.advice_only and not sme.reboot_required
    assert "not needed by SEV guests" in sme.reason
    # SNP needs the IOMMU; amd_iommu= has no 'on' value (kernel-parameters): the advice names the firmware.
    snp = knobs["IOMMU (SEV-SNP)"].change
    assert snp.advice_only and snp.target == "AMD-Vi on in firmware" and "amd_iommu=on" not in snp.reason
    assert "enable AMD-Vi (IOMMU) in the firmware setup" in snp.reason


def test_snp_with_the_iommu_turned_off_says_which_argument_to_remove(catalog, make_host):
    host = make_host(fakehost.amd_sev_disabled(iommu_units=(), cmdline="ro quiet iommu=off"))
    snp = by_knob(plan_for(catalog, host, "tsec"))["IOMMU (SEV-SNP)"].change
    assert (snp.current, snp.target) == ("iommu=off", "no iommu=off")
    assert "remove iommu=off from the kernel command line" in snp.reason


def test_sev_without_snp_flag_leaves_sev_snp_out(catalog, make_host):
    spec = fakehost.amd_sev_disabled(flags=("svm", "sev", "sev_es"), cmdline="ro mem_encrypt=on")
    knobs = by_knob(plan_for(catalog, make_host(spec), "tsec"))
    assert knobs["kvm_amd options"].data.decode().splitlines()[-1] == "options kvm_amd sev=1 sev_es=1"
    assert "host memory encryption (SME, optional)" not in knobs


def test_sev_already_enabled_is_no_change(catalog, make_host):
    sev = by_knob(plan_for(catalog, make_host(fakehost.amd_sev()), "tsec"))["kvm_amd options"]
    assert not sev.needed and sev.change.current == sev.change.target


def test_sev_on_amd_without_sev_is_refused_and_on_intel_is_advice(catalog, make_host):
    plan = plan_for(catalog, make_host(fakehost.container()), "tsec")
    assert plan.refusals and "no SEV support" in plan.refusals[0]
    plan = plan_for(catalog, make_host(fakehost.intel()), "tsec")
    assert not plan.refusals and by_knob(plan)["kvm_amd options"].op == "advice"


def test_isolated_cpus_are_kernel_cmdline_advice(catalog, make_host):
    plan = build_plan(gather("trt").requirements + [req("host.isolated_cpus", "5", "other", "x")],
                      make_host(fakehost.intel()))
    iso = by_knob(plan)["kernel cmdline (isolated CPUs)"].change
    assert iso.advice_only and iso.reboot_required
    assert iso.target == "isolcpus=managed_irq,domain,2-3,5 nohz_full=2-3,5 rcu_nocbs=2-3,5"
    assert "rule: union" in iso.conflict


# -- plan is read-only; hook; CLI --------------------------------------------------------------------------
def test_planning_writes_nothing(catalog, make_host):
    host = make_host(fakehost.amd_sev_disabled())
    before = fakehost.snapshot(host.root)
    for name in ("tdesk", "tsec", "tcomp", "tcomp1g", "tnuma", "trt"):
        plan_for(catalog, host, name)
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_host_plan_hook_for_create_returns_changes_and_refusals_as_advice(catalog, make_host):
    host = make_host(fakehost.amd_sev(mem_gib=4))
    reqs = [req("host.swappiness", 10, "tcomp", "big", 8 * GIB), req("host.hugepages", True, "tcomp", "big", 8 * GIB)]
    pairs = catalog.host_plan(reqs, host)
    assert {plugin for plugin, _c in pairs} == {"host_tuning"}
    changes = [c for _plugin, c in pairs]
    assert all(isinstance(c, HostChange) for c in changes)
    swap = [c for c in changes if c.knob == "vm.swappiness"][0]
    assert swap.target == "10" and swap.needed
    refused = [c for c in changes if c.knob == "refused"]
    assert len(refused) == 1 and refused[0].advice_only and "MemTotal" in refused[0].reason


def test_cli_plan_table_json_and_conflicts_across_vms(run_cli, make_host, tmp_path):
    host = make_host(fakehost.amd_sev(ksm_run="1\n"))
    store = tmp_path / "store"
    for name, scenario in (("deskvm", "tdesk"), ("secvm", "tsec")):
        result = run_cli(["--host-root", str(host.root), "create", scenario, "--name", name, "--output", str(store),
                          "--disk", "none", "--network", "none"])
        assert result.exit_code == 0, result.output
        assert re.search(r"Host: \d+ changes? recommended", result.stdout)
        assert f"host plan {scenario} --vm {name}" in result.stdout
    result = run_cli(["--host-root", str(host.root), "host", "plan", "tdesk", "--vm", "deskvm", "--vm", "secvm",
                      "--output", str(store)])
    assert result.exit_code == 0, result.output
    assert "Conflicts (resolved by rule):" in result.stdout
    assert "  ksm.run: tdesk (deskvm) wants on; tsec (secvm) wants off -> off (rule: safety first" in result.stdout
    # ksm.run 1 -> 2 and swappiness 60 -> 10; THP is already madvise, sda and vda already mq-deadline,
    # and the multi-queue NVMe stays at none
    assert "2 change(s) to make: virtscenario host apply tdesk --vm deskvm --vm secvm" in result.stdout
    result = run_cli(["--host-root", str(host.root), "host", "plan", "tdesk", "--vm", "deskvm", "--vm", "secvm",
                      "--output", str(store), "--json"])
    data = json.loads(result.stdout)
    assert data["vms"] == ["deskvm", "secvm"] and data["host_root"] == str(host.root)
    ksm = [c for c in data["changes"] if c["knob"] == "ksm.run"][0]
    assert ksm["target"] == "2" and ksm["source"] == "tsec" and "KSM off beats on" in ksm["conflict"]
    assert ksm["reference"] == "https://docs.kernel.org/admin-guide/mm/"
    assert any("ksm.run" in c for c in data["conflicts"])


def test_cli_plan_refusal_is_one_error_line_exit_1(run_cli, make_host):
    host = make_host(fakehost.amd_sev(mem_gib=6))
    result = run_cli(["--host-root", str(host.root), "host", "plan", "tcomp"])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("Error: hugepages: the plan reserves 8GiB")


@pytest.mark.parametrize("args, message, code", [
    (["host", "plan", "nosuch"], "unknown scenario 'nosuch'", 1),
    (["host", "plan", "tdesk", "--vm", "ghost"], "VM 'ghost' is not in the store", 1),
    (["host", "plan", "tdesk", "--set", "host.swapiness=3"], "host.swappiness", 1),
    (["host", "plan", "tdesk", "--set", "nokeyvalue"], "is not KEY=VALUE", 2),  # a usage error, as in create
])
def test_cli_plan_bad_input_one_line(run_cli, make_host, tmp_path, args, message, code):
    host = make_host(fakehost.amd_sev())
    result = run_cli(["--host-root", str(host.root), *args, *(["--output", str(tmp_path)] if "--vm" in args else [])])
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_cli_missing_host_root_is_one_line(run_cli, tmp_path):
    result = run_cli(["--host-root", str(tmp_path / "missing"), "host", "plan", "tdesk"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: --host-root {tmp_path / 'missing'}: no such directory"


def test_create_ends_with_the_host_plan_and_never_stops_on_it(run_cli, make_host, tmp_path):
    host = make_host(fakehost.amd_sev(mem_gib=6))  # too small for the 8 GiB hugepage VM
    result = run_cli(["--host-root", str(host.root), "create", "tcomp", "--name", "big", "--output",
                      str(tmp_path / "store"), "--disk", "none", "--network", "none", "--explain"])
    assert result.exit_code == 0, result.output
    tail = result.stdout.split("Host plan (not applied; see 'virtscenario host apply'):\n", 1)[1]
    rows = {line.split()[0]: line for line in tail.splitlines() if line and not line.startswith((" ", "-", "KNOB"))}
    assert {"thp.enabled", "vm.swappiness", "ksm.merge_across_nodes", "refused"} <= set(rows)
    assert "MemTotal" in tail and "hugepages.2M" not in rows
    assert (tmp_path / "store" / "big" / "vm.yaml").exists()


def test_all_vms_counts_every_vm_in_the_store(run_cli, make_host, tmp_path):
    host = make_host(fakehost.amd_sev())
    store = tmp_path / "store"
    for name in ("c1", "c2"):
        result = run_cli(["--host-root", str(host.root), "create", "tcomp", "--name", name, "--output", str(store),
                          "--disk", "none", "--network", "none", "--memory", "3GiB"])
        assert result.exit_code == 0, result.output
    result = run_cli(["--host-root", str(host.root), "host", "plan", "tcomp", "--all-vms", "--output", str(store),
                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["vms"] == ["c1", "c2"]
    hp = [c for c in data["changes"] if c["knob"] == "hugepages.2M"][0]
    assert hp["target"] == str(2 * 3 * 512)  # two stored 3 GiB VMs; no extra prospective VM of tcomp
    assert "c1 (3GiB), c2 (3GiB)" in hp["reason"]


def test_thp_shmem_for_memfd_guest_ram(make_host):
    host = make_host(fakehost.amd_sev())
    plan = build_plan([req("host.thp_shmem", "advise", "desk"), req("host.thp_shmem", "always", "other")], host)
    action = by_knob(plan)["thp.shmem_enabled"]
    assert (action.change.current, action.change.target) == ("never", "advise") and action.needed
    assert action.change.path == "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
    assert "least aggressive wins: never > advise" in action.change.conflict
    old_kernel = make_host(fakehost.amd_sev(thp_shmem=None))
    gone = by_knob(build_plan([req("host.thp_shmem", "advise", "desk")], old_kernel))["thp.shmem_enabled"]
    assert gone.op == "advice" and gone.change.current == "unavailable"
