"""host apply / revert on generated host trees: byte-exact round trips, journal first, rollback, root."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from virtscenario_host_tuning import engine, rootfs, sysfs

from . import fakehost

JOURNAL = "var/lib/virtscenario/host-journal.json"


def apply(run_cli, host, *args, input=None):
    return run_cli(["--host-root", str(host.root), "host", "apply", *args], input=input)


def revert(run_cli, host, *args, input=None):
    return run_cli(["--host-root", str(host.root), "host", "revert", *args], input=input)


def read(host, path):
    return (host.root / path.lstrip("/")).read_text()


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- round trips ----------------------------------------------------------------------------------------
def test_apply_persist_revert_is_byte_exact(run_cli, make_host):
    host = make_host(fakehost.amd_sev_disabled(ksm_run="1\n", nodes=2))  # 2 nodes: merge_across_nodes matters
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tcomp", "--yes", "--persist")
    assert result.exit_code == 0, result.output
    assert read(host, "/proc/sys/vm/swappiness") == "10\n"
    assert read(host, "/sys/kernel/mm/transparent_hugepage/enabled") == "[always] madvise never\n"
    assert read(host, "/sys/kernel/mm/ksm/merge_across_nodes") == "0\n"
    assert read(host, "/sys/kernel/mm/ksm/run") == "2\n"  # off = stopped and unmerged
    assert read(host, "/proc/sys/vm/nr_hugepages") == "4096\n"
    assert read(host, "/sys/block/sda/queue/scheduler") == "none [mq-deadline] kyber bfq\n"
    assert read(host, "/sys/block/nvme0n1/queue/scheduler") == "[none] mq-deadline kyber bfq\n"  # 4 hw queues
    assert read(host, "/sys/block/loop0/queue/scheduler") == "[none] mq-deadline kyber bfq\n"  # never tuned
    sysctl = read(host, "/etc/sysctl.d/90-virtscenario.conf")
    assert "vm.swappiness = 10\n" in sysctl and "vm.nr_hugepages = 4096\n" in sysctl
    tmpfiles = read(host, "/etc/tmpfiles.d/virtscenario.conf").splitlines()
    assert "w /sys/kernel/mm/transparent_hugepage/enabled - - - - always" in tmpfiles
    assert tmpfiles.index("w /sys/kernel/mm/ksm/merge_across_nodes - - - - 0") < \
        tmpfiles.index("w /sys/kernel/mm/ksm/run - - - - 2")
    udev = read(host, "/etc/udev/rules.d/60-virtscenario-io-scheduler.rules")
    assert 'ENV{DEVTYPE}=="disk"' in udev and 'ATTR{queue/scheduler}="mq-deadline"' in udev and "loop*" in udev
    # only rotational or single-queue disks, as the plan: NVMe keeps none after a reboot too
    assert [line.split(", ")[-2] for line in udev.splitlines()[1:]] == ['ATTR{queue/rotational}=="1"',
                                                                       'TEST!="mq/1"']
    fstab = read(host, "/etc/fstab")
    assert fstab.startswith(fakehost.HostSpec().fstab)
    assert "hugetlbfs /dev/hugepages hugetlbfs defaults 0 0" in fstab
    journal = json.loads(read(host, "/" + JOURNAL))
    assert journal["state"] == "applied" and journal["applies"][0]["scenario"] == "tcomp"
    thp = [e for e in journal["entries"] if e["path"].endswith("transparent_hugepage/enabled")][0]
    assert thp["before"] == "always [madvise] never\n" and thp["restore"] == "madvise\n" and thp["applied"] == "always"

    result = revert(run_cli, host, "--yes")
    assert result.exit_code == 0, result.output
    assert "journal removed" in result.stdout
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []
    again = revert(run_cli, host, "--yes")
    assert again.exit_code == 0 and again.stdout.startswith("Nothing to revert")


def test_apply_leaves_a_stopped_empty_ksm_stopped(run_cli, make_host):
    """2 nodes, KSM stopped with nothing merged: merge_across_nodes is written, ksm/run is never touched."""
    host = make_host(fakehost.amd_sev_disabled(nodes=2))  # run 0, pages_shared 0, merge_across_nodes 1
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tcomp", "--yes")
    assert result.exit_code == 0, result.output
    assert "ksm/run" not in result.stdout and "ksm.run" not in result.stdout
    assert read(host, "/sys/kernel/mm/ksm/merge_across_nodes") == "0\n"
    assert read(host, "/sys/kernel/mm/ksm/run") == "0\n"
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []
    # KSM started (and merging) between apply and revert: revert unmerges to restore merge_across_nodes,
    # then starts KSM again as it found it, never leaving it stopped behind the user's back.
    assert apply(run_cli, host, "tcomp", "--yes").exit_code == 0
    (host.root / "sys/kernel/mm/ksm/run").write_text("1\n")
    (host.root / "sys/kernel/mm/ksm/pages_shared").write_text("30\n")
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert read(host, "/sys/kernel/mm/ksm/merge_across_nodes") == "1\n"
    assert read(host, "/sys/kernel/mm/ksm/run") == "1\n"


def test_sev_apply_writes_modprobe_options_and_revert_removes_them(run_cli, make_host):
    host = make_host(fakehost.amd_sev_disabled(flags=("svm", "sev", "sev_es")))
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tsec", "--yes")
    assert result.exit_code == 0, result.output
    conf = read(host, "/etc/modprobe.d/virtscenario-sev.conf")
    assert conf.splitlines()[-1] == "options kvm_amd sev=1 sev_es=1"
    assert read(host, "/sys/module/kvm_amd/parameters/sev") == "N\n"  # never reloaded
    assert "next boot" in result.stdout and "mem_encrypt=on" in result.stdout
    # Re-planning: the file is written, only the reboot is missing, nothing more to apply.
    again = apply(run_cli, host, "tsec", "--yes")
    assert again.exit_code == 0 and again.stdout.startswith("Nothing to change")
    assert "already written" in again.stdout
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_tuned_backend_writes_a_profile_that_is_not_activated(run_cli, make_host):
    host = make_host(fakehost.amd_sev(nodes=2))
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tcomp", "--yes", "--backend", "tuned")
    assert result.exit_code == 0, result.output
    assert "tuned-adm profile virtscenario-tcomp" in result.stdout
    conf = read(host, "/etc/tuned/virtscenario-tcomp/tuned.conf")
    sections = {}
    current = None
    for line in conf.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        elif current and line.strip():
            sections[current].append(line)
    assert sections["main"] == ["summary=virtscenario host tuning for scenario tcomp", "include=virtual-host"]
    assert sections["sysctl"] == ["vm.swappiness=10", "vm.nr_hugepages=4096"]
    assert sections["vm"] == ["transparent_hugepages=always"]
    assert sections["disk"] == ["devices=sda,vda", "elevator=mq-deadline"]
    # KSM is stopped with nothing merged: "off" keeps run 0 (2 would unmerge nothing)
    assert sections["sysfs"] == ["/sys/kernel/mm/ksm/merge_across_nodes=0", "/sys/kernel/mm/ksm/run=0"]
    assert not (host.root / "etc/sysctl.d").exists()  # tuned instead of the files backend
    assert "hugetlbfs /dev/hugepages" in read(host, "/etc/fstab")  # tuned cannot mount
    assert not (host.root / "etc/tuned/active_profile").exists()
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_tuned_profile_for_real_time_uses_realtime_virtual_host(run_cli, make_host):
    host = make_host(fakehost.intel())
    assert apply(run_cli, host, "trt", "--yes", "--backend", "tuned").exit_code == 0
    conf = read(host, "/etc/tuned/virtscenario-trt/tuned.conf")
    assert "include=realtime-virtual-host\n" in conf and "[variables]\nisolated_cores=2-3\n" in conf
    assert "cmdline_virtscenario=isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3" in conf
    assert "transparent_hugepages=never" in conf


def test_two_applies_then_one_revert_restores_the_original(run_cli, make_host):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    assert apply(run_cli, host, "tdesk", "--yes", "--persist").exit_code == 0
    assert read(host, "/proc/sys/vm/swappiness") == "35\n"
    assert apply(run_cli, host, "tsec", "--yes", "--persist").exit_code == 0
    assert read(host, "/proc/sys/vm/swappiness") == "10\n"
    sysctl = read(host, "/etc/sysctl.d/90-virtscenario.conf")
    assert sysctl.count("vm.swappiness") == 1 and "vm.swappiness = 10" in sysctl  # merged, not duplicated
    journal = json.loads(read(host, "/" + JOURNAL))
    swap = [e for e in journal["entries"] if e["path"] == "/proc/sys/vm/swappiness"]
    assert len(swap) == 1 and swap[0]["before"] == "60\n"  # the first apply's previous value is kept
    assert [a["scenario"] for a in journal["applies"]] == ["tdesk", "tsec"]
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_preexisting_file_is_restored_with_its_bytes_and_mode(run_cli, make_host):
    host = make_host(fakehost.amd_sev(extra_files={"/etc/sysctl.d/90-virtscenario.conf": "kernel.foo = 1\n"}))
    os.chmod(host.root / "etc/sysctl.d/90-virtscenario.conf", 0o600)
    before = fakehost.snapshot(host.root)
    assert apply(run_cli, host, "tdesk", "--yes", "--persist").exit_code == 0
    text = read(host, "/etc/sysctl.d/90-virtscenario.conf")
    assert "kernel.foo = 1" in text and "vm.swappiness = 35" in text
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_nothing_to_change_writes_no_journal(run_cli, make_host):
    host = make_host(fakehost.amd_sev(swappiness="10\n", thp_enabled="always [madvise] never\n", ksm_run="2\n",
                                      block={"sda": ("none [mq-deadline]\n", True)}))
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tsec", "--yes")
    assert result.exit_code == 0 and result.stdout.startswith("Nothing to change"), result.output
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_revert_notes_values_changed_since_apply(run_cli, make_host):
    host = make_host(fakehost.amd_sev())
    assert apply(run_cli, host, "tdesk", "--yes").exit_code == 0
    (host.root / "proc/sys/vm/swappiness").write_text("99\n")
    result = revert(run_cli, host, "--yes")
    assert result.exit_code == 0
    assert "changed since apply (now 99)" in result.stderr
    assert read(host, "/proc/sys/vm/swappiness") == "60\n"


def test_revert_that_cannot_restore_keeps_the_entry_and_can_be_retried(run_cli, make_host):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    assert apply(run_cli, host, "tdesk", "--yes").exit_code == 0
    swap = host.root / "proc/sys/vm/swappiness"
    swap.unlink()  # the tunable vanished: that restore must fail, the others must not
    result = revert(run_cli, host, "--yes")
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: 1 value(s) could not be restored") and "/proc/sys/vm/swappiness" in line
    assert read(host, "/sys/kernel/mm/transparent_hugepage/enabled") == "always [madvise] never\n"
    journal = json.loads(read(host, "/" + JOURNAL))
    assert [e["path"] for e in journal["entries"]] == ["/proc/sys/vm/swappiness"]
    swap.write_text("35\n")
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


# -- journal first, rollback ------------------------------------------------------------------------------
def test_journal_is_written_before_the_first_change(run_cli, make_host, monkeypatch):
    host = make_host(fakehost.amd_sev())
    seen = []
    real = sysfs.write_value

    def spy(h, path, data):
        journal = host.root / JOURNAL
        entries = json.loads(journal.read_text())["entries"] if journal.exists() else []
        seen.append((path, path in {e["path"] for e in entries}))
        return real(h, path, data)

    monkeypatch.setattr(sysfs, "write_value", spy)
    assert apply(run_cli, host, "tdesk", "--yes").exit_code == 0
    assert seen and all(journaled for _p, journaled in seen), seen


@pytest.mark.parametrize("fail_at", [1, 3, 4])  # 4 writes: thp, ksm, swappiness, hugepages
def test_failure_mid_apply_rolls_back_everything(run_cli, make_host, monkeypatch, fail_at):
    host = make_host(fakehost.amd_sev(ksm_run="1\n"))
    before = fakehost.snapshot(host.root)
    real = sysfs.write_value
    calls = {"n": 0}

    def flaky(h, path, data):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise sysfs.WriteError(f"{path}: Device or resource busy (injected)")
        return real(h, path, data)

    monkeypatch.setattr(sysfs, "write_value", flaky)
    result = apply(run_cli, host, "tcomp", "--yes", "--persist")
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: apply failed: ") and "(injected)" in line and "rolled back" in line
    assert calls["n"] > fail_at or fail_at == 1  # rollback wrote the values back
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_ctrl_c_mid_apply_rolls_back_and_exits_130(run_cli, make_host, monkeypatch):
    """Ctrl-C is an interruption like in every command (130), reported after the rollback."""
    host = make_host(fakehost.amd_sev(ksm_run="1\n"))
    before = fakehost.snapshot(host.root)
    real = sysfs.write_value
    calls = {"n": 0}

    def interrupted(h, path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(h, path, data)

    monkeypatch.setattr(sysfs, "write_value", interrupted)
    result = apply(run_cli, host, "tcomp", "--yes", "--persist")
    assert result.exit_code == 130
    assert error_line(result) == "Error: apply interrupted (Ctrl-C); everything this run changed was rolled back"
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_kernel_not_taking_the_value_rolls_back(run_cli, make_host, monkeypatch):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    real = sysfs.write_value

    def fragmented(h, path, data):  # the kernel allocates only half of the hugepages asked for
        if path.endswith("nr_hugepages") and data != b"0\n":
            data = f"{int(data) // 2}\n".encode()
        return real(h, path, data)

    monkeypatch.setattr(sysfs, "write_value", fragmented)
    result = apply(run_cli, host, "tcomp", "--yes")
    assert result.exit_code == 1
    assert "wrote 4096 but the kernel reports 2048" in error_line(result)
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_failure_writing_a_persisted_file_rolls_back_the_tunables_too(run_cli, make_host, monkeypatch):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    real = rootfs.write_atomic

    def full_disk(h, path, data, mode, owner=None):
        if "tmpfiles.d" in path:
            raise OSError(28, "No space left on device")
        return real(h, path, data, mode, owner)

    monkeypatch.setattr(rootfs, "write_atomic", full_disk)
    result = apply(run_cli, host, "tdesk", "--yes", "--persist")
    assert result.exit_code == 1
    assert "No space left on device" in error_line(result)
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


def test_failed_second_apply_keeps_the_first_one_and_its_journal(run_cli, make_host, monkeypatch):
    host = make_host(fakehost.amd_sev())
    assert apply(run_cli, host, "tdesk", "--yes").exit_code == 0
    after_first = fakehost.snapshot(host.root)
    real = sysfs.write_value

    failed = []

    def broken_once(h, path, data):
        if path.endswith("/ksm/run") and not failed:
            failed.append(path)
            raise sysfs.WriteError(f"{path}: Invalid argument (injected)")
        return real(h, path, data)

    monkeypatch.setattr(sysfs, "write_value", broken_once)
    assert apply(run_cli, host, "tsec", "--yes").exit_code == 1
    assert failed and fakehost.diff(after_first, fakehost.snapshot(host.root)) == []


def test_rollback_that_fails_too_leaves_a_journal_that_revert_completes(run_cli, make_host, monkeypatch):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    real = sysfs.write_value
    with monkeypatch.context() as m:
        def stuck(h, path, data):  # the THP file accepts the new value, then refuses every write
            if path.endswith("transparent_hugepage/enabled") and data != b"always\n":
                raise sysfs.WriteError(f"{path}: Device or resource busy (injected)")
            if path.endswith("/ksm/run"):
                raise sysfs.WriteError(f"{path}: Invalid argument (injected)")
            return real(h, path, data)
        m.setattr(sysfs, "write_value", stuck)
        result = apply(run_cli, host, "tdesk", "--yes")
    assert result.exit_code == 1
    line = error_line(result)
    assert "rolling back also failed (1 value(s), first: /sys/kernel/mm/transparent_hugepage/enabled" in line
    assert "run 'virtscenario host revert'" in line
    journal = json.loads(read(host, "/" + JOURNAL))
    assert journal["state"] == "failed"
    assert read(host, "/sys/kernel/mm/transparent_hugepage/enabled") == "[always] madvise never\n"
    assert revert(run_cli, host, "--yes").exit_code == 0
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


# -- confirmation and root --------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, message", [("", "no answer"), ("n\n", "not confirmed")])
def test_apply_asks_and_changes_nothing_without_yes(run_cli, make_host, answer, message):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    result = apply(run_cli, host, "tdesk", input=answer)
    assert result.exit_code == 1
    assert message in result.stderr and "nothing was changed" in result.stderr
    assert "vm.swappiness: 60 -> 35" in result.stdout  # the user saw what would change
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []
    result = apply(run_cli, host, "tdesk", input="y\n")
    assert result.exit_code == 0 and read(host, "/proc/sys/vm/swappiness") == "35\n"
    before_revert = fakehost.snapshot(host.root)
    result = revert(run_cli, host, input="")
    assert result.exit_code == 1 and "no answer" in result.stderr
    assert fakehost.diff(before_revert, fakehost.snapshot(host.root)) == []


def _forbid_changes(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("nothing may be written when the user is not root")
    monkeypatch.setattr(sysfs, "write_value", boom)
    monkeypatch.setattr(rootfs, "write_atomic", boom)
    monkeypatch.setattr(rootfs, "write_tunable", boom)
    monkeypatch.setattr(engine, "apply_steps", boom)
    monkeypatch.setattr(engine, "revert", boom)


def test_non_root_on_the_real_host_is_refused_before_anything(run_cli, monkeypatch):
    monkeypatch.delenv("VIRTSCENARIO_HOST_ROOT", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    _forbid_changes(monkeypatch)
    import virtscenario_host_tuning.inputs as inputs
    monkeypatch.setattr(inputs, "gather", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read the plan")))
    result = run_cli(["host", "apply", "tdesk", "--yes", "--persist"])
    assert result.exit_code == 1
    assert error_line(result) == ("Error: host apply changes the running kernel and /etc: run it as root "
                                  "(nothing was changed)")


def test_non_root_revert_with_a_journal_is_refused(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("VIRTSCENARIO_HOST_ROOT", raising=False)
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"version": 1, "applies": [], "entries": [
        {"kind": "tunable", "path": "/proc/sys/vm/swappiness", "before": "60\n", "restore": "60\n"}]}))
    monkeypatch.setattr(engine, "JOURNAL", str(journal))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    _forbid_changes(monkeypatch)
    result = run_cli(["host", "revert", "--yes"])
    assert result.exit_code == 1 and "run it as root" in error_line(result)
    monkeypatch.setattr(engine, "JOURNAL", str(tmp_path / "none.json"))
    result = run_cli(["host", "revert", "--yes"])
    assert result.exit_code == 0 and result.stdout.startswith("Nothing to revert")


# -- --host-root confinement ------------------------------------------------------------------------------
HOST_PREFIXES = ("/proc", "/sys", "/etc", "/dev", "/run", "/var/lib/virtscenario", "/usr/lib/systemd", "/lib/systemd")
_AUDIT: dict[str, list] = {"events": [], "on": []}


def _audit(event, args):
    if _AUDIT["on"] and event in ("open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir",
                                  "os.rmdir", "subprocess.Popen", "os.chmod"):
        _AUDIT["events"].append((event, args[0] if args else None))


sys.addaudithook(_audit)


def test_host_root_keeps_every_access_inside_the_root(run_cli, make_host, tmp_path):
    host = make_host(fakehost.amd_sev_disabled())
    real_swappiness = Path("/proc/sys/vm/swappiness").read_bytes()
    real_journal = Path("/var/lib/virtscenario/host-journal.json")
    journal_existed = real_journal.exists()
    _AUDIT["events"].clear()
    _AUDIT["on"].append(True)
    try:
        for args in (["host", "check"], ["host", "plan", "tcomp"], ["host", "apply", "tcomp", "--yes", "--persist"],
                     ["host", "apply", "tsec", "--yes", "--backend", "tuned"], ["host", "revert", "--yes"]):
            result = run_cli(["--host-root", str(host.root), *args])
            assert result.exit_code == 0, (args, result.output)
    finally:
        _AUDIT["on"].clear()
    root = str(host.root)
    touched = []
    for event, arg in _AUDIT["events"]:
        path = os.fsdecode(arg) if isinstance(arg, (str, bytes, os.PathLike)) else ""
        if event == "subprocess.Popen":
            touched.append((event, arg))
        elif path.startswith(HOST_PREFIXES) and not path.startswith(root):
            touched.append((event, path))
    assert touched == []
    # rootfs opens the root, then every component relative to its directory descriptor:
    # those names are relative (test_host_killpoints checks the resolved paths with strace).
    paths = [os.fsdecode(p) for _e, p in _AUDIT["events"] if isinstance(p, (str, bytes))]
    assert root in paths
    assert "host-journal.json" in paths and "virtscenario-tsec" in paths
    assert all(p.startswith("/") or "/" not in p for p in paths)
    assert Path("/proc/sys/vm/swappiness").read_bytes() == real_swappiness
    assert real_journal.exists() == journal_existed


def test_concurrent_apply_or_revert_is_refused(run_cli, make_host):
    host = make_host(fakehost.amd_sev_disabled(ksm_run="1\n"))
    before = fakehost.snapshot(host.root)
    assert apply(run_cli, host, "tcomp", "--yes").exit_code == 0
    applied = fakehost.snapshot(host.root)
    with engine.host_lock(host):  # another run holds the lock (a separate open file description)
        for result in (apply(run_cli, host, "tdesk", "--yes"), revert(run_cli, host, "--yes")):
            assert result.exit_code == 1
            assert "another 'virtscenario host apply' or 'revert' is running" in error_line(result)
        assert fakehost.snapshot(host.root) == applied
    assert revert(run_cli, host, "--yes").exit_code == 0  # lock released: it works
    assert fakehost.snapshot(host.root) == before


def test_revert_removes_the_temporaries_an_interrupted_run_left(run_cli, make_host):
    host = make_host(fakehost.amd_sev())
    before = fakehost.snapshot(host.root)
    assert apply(run_cli, host, "tcomp", "--yes", "--persist").exit_code == 0
    (host.root / "etc/.fstab.virtscenario.tmp").write_text("half a new fst")  # killed before its rename
    (host.root / "var/lib/virtscenario/.host-journal.json.virtscenario.tmp").write_text("{")
    result = revert(run_cli, host, "--yes")
    assert result.exit_code == 0, result.output
    assert "Removed 2 temporary file(s) an interrupted run left." in result.stdout
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []
    # Killed while the journal directory was being built: no journal yet, only the temporary tree.
    (host.root / ".var.virtscenario.tmp/lib/virtscenario").mkdir(parents=True)
    result = revert(run_cli, host, "--yes")
    assert result.exit_code == 0 and result.stdout.startswith("Nothing to revert") and "Removed 1" in result.stdout
    assert fakehost.diff(before, fakehost.snapshot(host.root)) == []
