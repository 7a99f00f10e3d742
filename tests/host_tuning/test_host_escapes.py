"""Nothing outside --host-root: symbolic links in the journal's or the persisted files' way are refused."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from virtscenario_host_tuning import rootfs, sysfs

from . import fakehost

JOURNAL = "var/lib/virtscenario/host-journal.json"


def _cli(run_cli, host, *args):
    return run_cli(["--host-root", str(host.root), "host", *args])


def _error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def outside(tmp_path):
    """A directory outside every tree, with a file in it: it must end as it started."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "keep").write_text("not yours\n")
    return directory


def _var_lib_host(make_host):
    return make_host(fakehost.amd_sev(extra_files={"/var/lib/dpkg/status": "Package: base-files\n"}))


@pytest.mark.parametrize("link", ["var", "var/lib/virtscenario"])
def test_journal_directory_behind_a_symlink_is_refused(run_cli, make_host, outside, link):
    host = _var_lib_host(make_host)
    target = host.root / link
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, target)
    before, away = fakehost.snapshot(host.root), fakehost.snapshot(outside)
    line = _error(_cli(run_cli, host, "apply", "tdesk", "--yes", "--persist"))
    assert f"/{link} is a symbolic link: refused" in line and line.endswith("nothing was changed"), line
    # A journal that an older version wrote through the link is neither used nor deleted.
    (outside / "lib/virtscenario" if link == "var" else outside).mkdir(parents=True, exist_ok=True)
    planted = outside / ("lib/virtscenario/host-journal.json" if link == "var" else "host-journal.json")
    planted.write_text("{}")
    away = fakehost.snapshot(outside)
    line = _error(_cli(run_cli, host, "revert", "--yes"))
    assert f"/{link} is a symbolic link: refused" in line, line
    assert fakehost.snapshot(host.root) == before and fakehost.snapshot(outside) == away


def test_two_trees_cannot_share_a_journal_through_a_symlink(run_cli, make_host):
    first, second = _var_lib_host(make_host), _var_lib_host(make_host)
    original = fakehost.snapshot(first.root)
    assert _cli(run_cli, first, "apply", "tdesk", "--yes").exit_code == 0
    journal_bytes = (first.root / JOURNAL).read_bytes()
    os.symlink(first.root / "var/lib/virtscenario", second.root / "var/lib/virtscenario")
    untouched = fakehost.snapshot(second.root)
    for args in (("apply", "tsec", "--yes"), ("revert", "--yes")):
        assert "/var/lib/virtscenario is a symbolic link: refused" in _error(_cli(run_cli, second, *args))
    assert fakehost.snapshot(second.root) == untouched
    assert (first.root / JOURNAL).read_bytes() == journal_bytes
    assert _cli(run_cli, first, "revert", "--yes").exit_code == 0  # the first tree's changes stay revertible
    assert fakehost.diff(original, fakehost.snapshot(first.root)) == []


@pytest.mark.parametrize("link", ["etc/tmpfiles.d", "etc/fstab", "etc"])
def test_persisted_path_behind_a_symlink_is_refused_before_anything(run_cli, make_host, outside, link):
    host = make_host(fakehost.amd_sev())
    target = host.root / link
    if target.is_dir():
        shutil.copytree(target, outside / "etc-copy")
        shutil.rmtree(target)
        os.symlink(outside / "etc-copy", target)
    elif target.exists():
        shutil.copy2(target, outside / "fstab")
        target.unlink()
        os.symlink(outside / "fstab", target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(outside, target)
    before, away = fakehost.snapshot(host.root), fakehost.snapshot(outside)
    line = _error(_cli(run_cli, host, "apply", "tcomp", "--yes", "--persist"))
    assert f"/{link} is a symbolic link: refused" in line, line
    assert fakehost.snapshot(host.root) == before and fakehost.snapshot(outside) == away


def test_revert_does_not_follow_a_directory_swapped_for_a_symlink_after_apply(run_cli, make_host, outside):
    """The issue's case: /etc/sysctl.d replaced by a link after apply; revert deleted the file it led to."""
    host = make_host(fakehost.amd_sev())
    original = fakehost.snapshot(host.root)
    assert _cli(run_cli, host, "apply", "tdesk", "--yes", "--persist").exit_code == 0
    sysctl_d = host.root / "etc/sysctl.d"
    shutil.rmtree(sysctl_d)
    (outside / "90-virtscenario.conf").write_text("kernel.panic = 10\n")
    os.symlink(outside, sysctl_d)
    away = fakehost.snapshot(outside)
    line = _error(_cli(run_cli, host, "revert", "--yes"))
    assert line.startswith("Error: 1 value(s) could not be restored, first: /etc/sysctl.d/90-virtscenario.conf: "
                           "/etc/sysctl.d is a symbolic link: refused"), line
    assert fakehost.snapshot(outside) == away
    assert (host.root / "proc/sys/vm/swappiness").read_text() == "60\n"  # the others were restored
    remaining = json.loads((host.root / JOURNAL).read_text())["entries"]
    assert [e["path"] for e in remaining] == ["/etc/sysctl.d/90-virtscenario.conf"]
    sysctl_d.unlink()  # the administrator removes the link; the directory apply created is gone already
    assert _cli(run_cli, host, "revert", "--yes").exit_code == 0
    assert fakehost.diff(original, fakehost.snapshot(host.root)) == []
    assert fakehost.snapshot(outside) == away


def test_tunable_behind_a_symlink_inside_the_root_is_followed(run_cli, make_host):
    """On a real host /sys/block/<dev> is a link into /sys/devices: a tree copied from one keeps it."""
    host = make_host(fakehost.amd_sev(block={"sda": ("none [mq-deadline] kyber bfq\n", True)}))
    real_dir = host.root / "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/block/sda"
    real_dir.parent.mkdir(parents=True)
    shutil.move(host.root / "sys/block/sda", real_dir)
    os.symlink("../devices/pci0000:00/0000:00:1f.2/ata1/host0/block/sda", host.root / "sys/block/sda")
    original = fakehost.snapshot(host.root)
    assert _cli(run_cli, host, "apply", "tdesk", "--yes").exit_code == 0
    assert (real_dir / "queue/scheduler").read_text() == "none mq-deadline kyber [bfq]\n"
    assert _cli(run_cli, host, "revert", "--yes").exit_code == 0
    assert fakehost.diff(original, fakehost.snapshot(host.root)) == []


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_tunable_write_never_follows_a_link_out_of_the_root(make_host, outside, target):
    """A link swapped in after the plan: the in-place write refuses it, the file outside is untouched."""
    host = make_host(fakehost.amd_sev())
    victim = outside / "keep"
    link = host.root / "proc/sys/vm/swappiness"
    link.unlink()
    os.symlink(victim if target == "absolute" else os.path.relpath(victim, link.parent), link)
    with pytest.raises(rootfs.RootError, match="leads outside the host root"):
        rootfs.write_tunable(host, "/proc/sys/vm/swappiness", b"10\n")
    with pytest.raises(sysfs.WriteError):
        sysfs.write_value(host, "/proc/sys/vm/swappiness", b"10\n")
    assert victim.read_text() == "not yours\n"
