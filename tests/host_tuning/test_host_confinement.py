"""Under --host-root the real CLI touches nothing of the host outside the tree (system calls, via strace).

The in-process audit-hook test cannot see where a name relative to a directory
descriptor lands; strace ``-y`` can: every call of check, plan, apply (files and
tuned backends) and revert is resolved to absolute paths. Any call that changes a
file must stay inside the tree, and no call may even look at the host state the
plugin reads or writes (kernel tunables, /etc files it persists, its journal, /dev,
libvirt's sockets) outside it. The Python runtime's own reads (its modules,
/etc/ld.so.cache, /etc/localtime) are neither.
"""

from __future__ import annotations

from . import fakehost, tracing

HOST_STATE = ("/proc/sys", "/proc/mounts", "/proc/cpuinfo", "/proc/meminfo", "/proc/cmdline", "/proc/1/", "/sys",
              "/dev/kvm", "/dev/sev", "/dev/hugepages", "/etc/fstab", "/etc/sysctl.d", "/etc/tmpfiles.d",
              "/etc/udev", "/etc/modprobe.d", "/etc/tuned", "/var/lib/virtscenario", "/run", "/.dockerenv",
              "/usr/bin/qemu-img", "/usr/libexec/virtiofsd", "/usr/lib/qemu")
HARMLESS_WRITES = ("pipe:[", "/dev/null")


def test_cli_touches_nothing_outside_the_host_root(tmp_path):
    tree = fakehost.build(tmp_path / "tree", fakehost.amd_sev_disabled(nodes=2, ksm_run="1\n"))
    original = fakehost.snapshot(tree)
    environ = tracing.env(tmp_path / "home")
    commands = [["check"], ["plan", "computation"], ["apply", "computation", "--yes", "--persist"],
                ["apply", "securevm", "--yes", "--backend", "tuned"], ["revert", "--yes"], ["revert", "--yes"]]
    seen_inside = 0
    problems = []
    for number, command in enumerate(commands):
        out = tmp_path / f"{number}.trace"
        strace = ("strace", "-f", "-qq", "-y", "-e", "trace=%file,write,pwrite64,writev,fchmod,fchown,ftruncate",
                  "-o", str(out))
        result = tracing.cli(tree, command, environ, strace)
        assert result.returncode == 0, (command, result.stdout[-500:], result.stderr)
        for line in out.read_text().splitlines():
            match = tracing.CALL.match(line)
            if not match:
                continue
            _pid, name, args = match.groups()
            for path in tracing.paths(name, args):
                inside = (path + "/").startswith(f"{tree}/")
                seen_inside += inside
                if inside:
                    continue
                if tracing.changes(name, args) and not path.startswith(HARMLESS_WRITES):
                    problems.append(f"{command[0]}: changes {path}: {line[:200]}")
                elif path.startswith(HOST_STATE):
                    problems.append(f"{command[0]}: reads host state {path}: {line[:200]}")
    assert problems == []
    assert seen_inside > 100
    assert fakehost.diff(original, fakehost.snapshot(tree)) == []
