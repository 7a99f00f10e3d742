"""One apply or revert at a time on any tree (one without /var/lib too), and plans made under the lock.

The overlaps are ordered deterministically: the first run is stopped at a known point
(its confirmation prompt, or its first kernel write) while the second one runs.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from virtscenario_host_tuning import engine, sysfs

from . import fakehost

CLI = str(Path(sys.executable).with_name("virtscenario"))
BUSY = "another 'virtscenario host apply' or 'revert' is running on this tree"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTSCENARIO_", "XDG_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home/.config"))
    return env


def _run(tmp_path: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "--host-root", str(root), "host", *args], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=60, check=False)


def _wait_for(proc: subprocess.Popen[bytes], text: bytes, seconds: float = 30) -> bytes:
    """Read the child's stdout until ``text`` appears (the prompt has no newline)."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + seconds
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} from the first apply: {seen[-300:]!r}"
        ready, _w, _x = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"the first apply ended early: {seen[-300:]!r}"
            seen += chunk
    return seen


def _tree(tmp_path: Path, name: str) -> Path:
    # No /var at all: the lock must not depend on what the tree contains.
    return fakehost.build(tmp_path / name, fakehost.amd_sev(nodes=2, ksm_run="1\n"))


def test_second_apply_is_refused_while_the_first_waits_for_confirmation(tmp_path):
    root = _tree(tmp_path, "tree")
    original = fakehost.snapshot(root)
    first = subprocess.Popen([CLI, "--host-root", str(root), "host", "apply", "desktop", "--persist"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env(tmp_path))
    try:
        _wait_for(first, b"Apply these")  # planned, holding the lock, nothing written yet
        waiting = fakehost.snapshot(root)
        for args in (("apply", "computation", "--yes", "--persist"), ("revert", "--yes")):
            second = _run(tmp_path, root, *args)
            assert second.returncode == 1 and BUSY in second.stderr, second.stderr
            assert second.stderr.count("\n") == 1 and "nothing changed" in second.stderr
        assert fakehost.snapshot(root) == waiting == original
        out, err = first.communicate(b"y\n", timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    # The second apply, run again, plans on top of the first: both are journaled, one revert undoes both.
    assert _run(tmp_path, root, "apply", "computation", "--yes", "--persist").returncode == 0
    doc = json.loads((root / "var/lib/virtscenario/host-journal.json").read_text())
    assert [a["scenario"] for a in doc["applies"]] == ["desktop", "computation"]
    tmpfiles = (root / "etc/tmpfiles.d/virtscenario.conf").read_text()
    assert "transparent_hugepage/shmem_enabled - - - - advise" in tmpfiles  # desktop's line kept
    assert (root / "proc/sys/vm/nr_hugepages").read_text() != "0\n"
    assert _run(tmp_path, root, "revert", "--yes").returncode == 0
    assert fakehost.diff(original, fakehost.snapshot(root)) == []


def test_apply_is_refused_while_another_is_writing_a_new_tree(run_cli, tmp_path, monkeypatch):
    """The first apply has just created var/lib/virtscenario and its journal: the lock stays the same one."""
    root = _tree(tmp_path, "tree")
    original = fakehost.snapshot(root)
    seen = []
    real = sysfs.write_value

    def second_apply_meanwhile(host, path, data):
        if not seen:
            assert (root / "var/lib/virtscenario/host-journal.json").is_file()
            seen.append(_run(tmp_path, root, "apply", "computation", "--yes", "--persist"))
        return real(host, path, data)

    monkeypatch.setattr(sysfs, "write_value", second_apply_meanwhile)
    result = run_cli(["--host-root", str(root), "host", "apply", "tcomp", "--yes", "--persist"])
    assert result.exit_code == 0, result.output
    assert seen and seen[0].returncode == 1 and BUSY in seen[0].stderr, seen[0].stderr
    monkeypatch.setattr(sysfs, "write_value", real)
    assert run_cli(["--host-root", str(root), "host", "revert", "--yes"]).exit_code == 0
    assert fakehost.diff(original, fakehost.snapshot(root)) == []


def test_plan_is_made_after_the_lock(run_cli, tmp_path, monkeypatch):
    """An apply that completes just before this one takes the lock is seen by this one's plan:
    its persisted lines are merged, not dropped, and one revert restores the original tree."""
    root = _tree(tmp_path, "tree")
    original = fakehost.snapshot(root)
    real_lock = engine.host_lock
    other = []

    def lock_after_another_apply(host):
        if not other:  # the other apply runs to its end right before we lock
            other.append(_run(tmp_path, root, "apply", "desktop", "--yes", "--persist"))
        return real_lock(host)

    monkeypatch.setattr(engine, "host_lock", lock_after_another_apply)
    result = run_cli(["--host-root", str(root), "host", "apply", "tcomp", "--yes", "--persist"])
    assert other and other[0].returncode == 0, other[0].stderr
    assert result.exit_code == 0, result.output
    tmpfiles = (root / "etc/tmpfiles.d/virtscenario.conf").read_text()
    assert "transparent_hugepage/shmem_enabled - - - - advise" in tmpfiles  # desktop's, planned before us
    assert "transparent_hugepage/enabled - - - - always" in tmpfiles          # ours
    doc = json.loads((root / "var/lib/virtscenario/host-journal.json").read_text())
    assert [a["scenario"] for a in doc["applies"]] == ["desktop", "tcomp"]
    monkeypatch.setattr(engine, "host_lock", real_lock)
    assert run_cli(["--host-root", str(root), "host", "revert", "--yes"]).exit_code == 0
    assert fakehost.diff(original, fakehost.snapshot(root)) == []


def test_two_trees_do_not_block_each_other(run_cli, tmp_path):
    one, two = _tree(tmp_path, "one"), _tree(tmp_path, "two")
    from virtscenario.api import HostRoot
    with engine.host_lock(HostRoot(one)):
        result = run_cli(["--host-root", str(two), "host", "apply", "tdesk", "--yes"])
        assert result.exit_code == 0, result.output
        busy = run_cli(["--host-root", str(one), "host", "apply", "tdesk", "--yes"])
        assert busy.exit_code == 1 and BUSY in busy.stderr
