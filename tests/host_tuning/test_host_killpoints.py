"""Kill ``host apply`` and ``host revert`` at every change they make to the tree; revert must restore it.

The real CLI runs under strace. A first, complete run lists every system call that
changes the tree (write, openat creating or truncating, mkdirat, renameat, unlinkat,
fchmod, ...: the ones whose arguments name a path inside the tree), numbered per system
call as strace counts them. Then, for each of those calls, a fresh copy of the tree is
built and the command is run again with ``-e inject=SYSCALL:signal=KILL:when=N``: the
kernel kills it on entering that very call (checked against the first run's trace).
``host revert`` then runs twice, and the tree must equal its snapshot from before the
apply: every file's bytes and mode, every directory, every symbolic link, nothing more
(no temporary file, no journal directory) and nothing less.

Cases: the shipped desktop and computation scenarios; without --persist, with
--persist (files backend) and with --backend tuned; on a tree that has /var/lib and
on one without /var at all. Kill points run in parallel, one per CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import fakehost, tracing

_CALL = tracing.CALL
#: What strace records in the first run: every call that can change a file, and openat.
TRACED = ("write,pwrite64,writev,openat,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,"
          "fchmod,fchmodat,chmod,fchown,fchownat,ftruncate,truncate,link,linkat,symlink,symlinkat")
SCENARIOS = ("desktop", "computation")
MODES = {"plain": (), "persist": ("--persist",), "tuned": ("--backend", "tuned")}
TREES = ("var-lib", "no-var")
TIMINGS: dict[str, tuple[int, float]] = {}


def _spec(tree: str) -> fakehost.HostSpec:
    # Two NUMA nodes and KSM running: desktop and computation both turn merge_across_nodes
    # off, which takes the run=2 / value / run dance. THP starts at "always" so it changes.
    extra = {"/var/lib/dpkg/status": "Package: base-files\n"} if tree == "var-lib" else {}
    return fakehost.amd_sev(nodes=2, ksm_run="1\n", thp_enabled="[always] madvise never\n", extra_files=extra)


@dataclass(frozen=True)
class Point:
    syscall: str
    number: int  # the how-manieth call of this system call in the process (strace's count)
    call: str    # the call as traced, tree path replaced by ROOT, results and lengths dropped


def _normal(line: str, tree: Path) -> str:
    text = line.replace(str(tree), "ROOT")
    text = re.sub(r"\) += .*$|\s*<unfinished \.\.\.>$", ")", text.rstrip())
    text = re.sub(r"\.[A-Za-z0-9_]{8}\.tmp\b", ".XXXXXXXX.tmp", text)  # mkstemp names (older versions)
    return re.sub(r", \d+\)$", ")", text)  # write's byte count (the journal's length varies)


def _points(trace: str, tree: Path) -> list[Point]:
    counts: dict[str, int] = {}
    pids = set()
    out = []
    for line in trace.splitlines():
        match = _CALL.match(line)
        if not match:
            continue
        pid, name, args = match.groups()
        pids.add(pid)
        counts[name] = counts.get(name, 0) + 1
        inside = [p for p in tracing.paths(name, args) if (p + "/").startswith(f"{tree}/")]
        if inside and tracing.changes(name, args):
            out.append(Point(name, counts[name], _normal(f"{name}({args}", tree)))
    assert len(pids) == 1, f"the CLI ran several processes or threads ({sorted(pids)}): counts would not repeat"
    return out


def _traced_run(tree: Path, command: list[str], env: dict[str, str], out: Path) -> list[Point]:
    # --seccomp-bpf: only the traced calls stop (faster); it ignores inject's when=, so not in _kill.
    strace = ("strace", "--seccomp-bpf", "-f", "-qq", "-y", "-e", f"trace={TRACED}", "-o", str(out))
    result = tracing.cli(tree, command, env, strace)
    assert result.returncode == 0, result.stderr
    return _points(out.read_text(), tree)


def _kill(tree: Path, command: list[str], env: dict[str, str], point: Point, out: Path) -> None:
    inject = f"inject={point.syscall}:signal=KILL:when={point.number}"
    strace = ("strace", "-f", "-qq", "-y", "-e", f"trace={point.syscall}", "-e", inject, "-o", str(out))
    result = tracing.cli(tree, command, env, strace)
    assert result.returncode == -9, f"not killed at {point}: rc={result.returncode} {result.stderr[-300:]}"
    calls = [line for line in out.read_text().splitlines() if _CALL.match(line)]
    assert calls and _normal(_CALL.match(calls[-1]).group(2) + "(" + _CALL.match(calls[-1]).group(3), tree) \
        == point.call, f"killed at {calls[-1:]} instead of {point.call}"


def _revert_twice(tree: Path, env: dict[str, str]) -> str:
    first = tracing.cli(tree, ["revert", "--yes"], env)
    assert first.returncode == 0, f"revert failed: {first.stdout[-400:]} {first.stderr}"
    second = tracing.cli(tree, ["revert", "--yes"], env)
    assert second.returncode == 0 and second.stdout.startswith("Nothing to revert"), second.stdout + second.stderr
    return first.stdout


def _case(tmp_path: Path, scenario: str, mode: str, tree_kind: str, kill_revert: bool) -> None:
    assert shutil.which("strace"), "strace is needed (scripts/setup.sh --tests installs it)"
    env = tracing.env(tmp_path / "home")
    base = fakehost.build(tmp_path / "base", _spec(tree_kind))
    before = fakehost.snapshot(base)
    apply_cmd = ["apply", scenario, "--yes", *MODES[mode]]
    started = time.monotonic()

    dry = tmp_path / "dry"
    shutil.copytree(base, dry, symlinks=True)
    points = _traced_run(dry, apply_cmd, env, tmp_path / "apply.trace")
    if kill_revert:
        points = _traced_run(dry, ["revert", "--yes"], env, tmp_path / "revert.trace")
    else:
        _revert_twice(dry, env)
    assert fakehost.diff(before, fakehost.snapshot(dry)) == []
    assert len(points) >= 10, points  # the plan changes tunables, files and the journal

    def one(index: int) -> str:
        point = points[index]
        tree = tmp_path / f"k{index}"
        shutil.copytree(base, tree, symlinks=True)
        try:
            if kill_revert:
                applied = tracing.cli(tree, apply_cmd, env)
                assert applied.returncode == 0, applied.stderr
                _kill(tree, ["revert", "--yes"], env, point, tmp_path / f"k{index}.trace")
            else:
                _kill(tree, apply_cmd, env, point, tmp_path / f"k{index}.trace")
            _revert_twice(tree, env)
            left = fakehost.diff(before, fakehost.snapshot(tree))
            return f"killed at #{index} {point.call}: the tree differs after revert: {left}" if left else ""
        except AssertionError as exc:
            return f"killed at #{index} {point.call}: {exc}"
        finally:
            shutil.rmtree(tree, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        problems = [p for p in pool.map(one, range(len(points))) if p]
    TIMINGS[f"{scenario}/{mode}/{tree_kind}/{'revert' if kill_revert else 'apply'}"] = \
        (len(points), time.monotonic() - started)
    assert problems == [], f"{len(problems)} of {len(points)} kill points:\n" + "\n".join(problems[:5])


@pytest.mark.parametrize("tree_kind", TREES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_apply_killed_at_every_change_is_reverted_byte_exact(tmp_path, scenario, mode, tree_kind):
    _case(tmp_path, scenario, mode, tree_kind, kill_revert=False)


@pytest.mark.parametrize("tree_kind", TREES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_revert_killed_at_every_change_completes_byte_exact(tmp_path, scenario, mode, tree_kind):
    _case(tmp_path, scenario, mode, tree_kind, kill_revert=True)


def test_apply_after_an_interrupted_apply_asks_for_revert_first(tmp_path):
    env = tracing.env(tmp_path / "home")
    base = fakehost.build(tmp_path / "base", _spec("no-var"))
    before = fakehost.snapshot(base)
    tree = tmp_path / "tree"
    shutil.copytree(base, tree, symlinks=True)
    apply_cmd = ["apply", "computation", "--yes", "--persist"]
    points = _traced_run(tree, apply_cmd, env, tmp_path / "apply.trace")
    _revert_twice(tree, env)
    swappiness = next(p for p in points if p.syscall == "write" and "/proc/sys/vm/swappiness" in p.call)
    _kill(tree, apply_cmd, env, swappiness, tmp_path / "kill.trace")
    assert (tree / "proc/sys/vm/swappiness").read_text() == ""  # opened with O_TRUNC, killed before write
    again = tracing.cli(tree, ["apply", "desktop", "--yes"], env)
    assert again.returncode == 1 and again.stderr.count("\n") == 1, again.stderr
    assert "in state 'applying'" in again.stderr and "run 'virtscenario host revert' first" in again.stderr
    assert "Reverted" in _revert_twice(tree, env)
    assert fakehost.diff(before, fakehost.snapshot(tree)) == []


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for name, (count, seconds) in sorted(TIMINGS.items()):
        print(f"\nkill points {name}: {count} in {seconds:.1f} s", end="")
