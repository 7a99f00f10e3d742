"""What ``--persist`` writes: the distribution's own boot-time mechanisms, or a tuned profile.

files backend
    ``/etc/sysctl.d/90-virtscenario.conf``   sysctls (vm.swappiness, vm.nr_hugepages)
    ``/etc/tmpfiles.d/virtscenario.conf``    sysfs values (``w`` lines: THP, KSM, other page sizes)
    ``/etc/udev/rules.d/60-virtscenario-io-scheduler.rules``  IO scheduler of every real disk that
        is rotational or has one hardware queue, as the plan (a udev rule, not tmpfiles: disk names
        are not stable across boots and disks appear after tmpfiles ran; this is how distributions
        set schedulers). ``TEST!="mq/1"``: no second hardware queue; fast multi-queue devices (NVMe)
        keep the kernel's none
    ``/etc/fstab``                           hugetlbfs mounts (one line per page size)
tuned backend
    ``/etc/tuned/virtscenario-<scenario>/tuned.conf`` (not activated) + the fstab lines
Module options for SEV always go to ``/etc/modprobe.d/virtscenario-sev.conf`` (see plan.py).

Our own files are merged key by key with what an earlier ``apply --persist``
wrote, so applying two scenarios one after the other keeps both.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from . import rootfs
from .plan import Action

SYSCTL_FILE = "/etc/sysctl.d/90-virtscenario.conf"
TMPFILES_FILE = "/etc/tmpfiles.d/virtscenario.conf"
UDEV_FILE = "/etc/udev/rules.d/60-virtscenario-io-scheduler.rules"
FSTAB = "/etc/fstab"
TUNED_DIR = "/etc/tuned"
HEADER = "# Written by virtscenario host apply --persist; 'virtscenario host revert' removes it.\n"
#: udev: every whole disk except the kernel-virtual ones the planner never tunes either.
UDEV_MATCH = ('ACTION=="add|change", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", '
              'KERNEL!="loop*|zram*|ram*|dm-*|md*|nbd*|sr*|fd*"')
#: ...and of those only rotational ones or ones without a second hardware queue (plan._io_scheduler).
UDEV_SCHEDULED = ('ATTR{queue/rotational}=="1"', 'TEST!="mq/1"')


def tuned_profile_name(scenario: str) -> str:
    return f"virtscenario-{scenario}"


def _existing(host: Any, path: str) -> str:
    """The file as it is (read through real directories only; bytes that are not UTF-8 survive)."""
    return (rootfs.read_file(host, path) or b"").decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _merge(existing: str, new: list[tuple[str, str]], key_of: Any) -> list[tuple[str, str]]:
    """Ordered (key, line) pairs: earlier lines of ours, updated in place, then new keys."""
    merged: dict[str, str] = {}
    for line in existing.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key = key_of(line)
            if key:
                merged[key] = line
    for key, line in new:
        merged[key] = line
    return list(merged.items())


def _ksm_run_last(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # merge_across_nodes must be written before KSM starts merging pages.
    return sorted(items, key=lambda kv: kv[0].endswith("/ksm/run"))


def files_backend(host: Any, actions: Iterable[Action]) -> dict[str, bytes]:
    """{host path: new content} for the files backend."""
    sysctl: list[tuple[str, str]] = []
    tmpfiles: list[tuple[str, str]] = []
    scheduler: Optional[str] = None
    fstab: list[tuple[str, str]] = []
    for action in actions:
        if action.persist is None:
            continue
        kind, key, value = action.persist
        if kind == "sysctl":
            sysctl.append((key, f"{key} = {value}"))
        elif kind == "tmpfiles":
            tmpfiles.append((key, f"w {key} - - - - {value}"))
        elif kind == "udev-scheduler":
            scheduler = value
        elif kind == "fstab":
            fstab.append((key, value))
    out: dict[str, bytes] = {}
    if sysctl:
        items = _merge(_existing(host, SYSCTL_FILE), sysctl, lambda line: line.split("=", 1)[0].strip())
        out[SYSCTL_FILE] = _encode(HEADER + "".join(line + "\n" for _k, line in items))
    if tmpfiles:
        items = _merge(_existing(host, TMPFILES_FILE), tmpfiles,
                       lambda line: line.split()[1] if len(line.split()) > 1 else "")
        out[TMPFILES_FILE] = _encode(HEADER + "".join(line + "\n" for _k, line in _ksm_run_last(items)))
    if scheduler:
        out[UDEV_FILE] = (HEADER + "".join(f'{UDEV_MATCH}, {which}, ATTR{{queue/scheduler}}="{scheduler}"\n'
                                           for which in UDEV_SCHEDULED)).encode()
    if fstab:
        text = _existing(host, FSTAB)
        present = {line.split()[1] for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#") and len(line.split()) > 1}
        extra = [line for point, line in fstab if point not in present]
        if extra:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "".join(f"{line}  # virtscenario: hugetlbfs for libvirt\n" for line in extra)
            out[FSTAB] = _encode(text)
    return out


def tuned_backend(host: Any, actions: Iterable[Action], scenario: str, vms: list[str]) -> dict[str, bytes]:
    """{host path: content}: the tuned profile, plus the fstab lines tuned cannot express."""
    actions = list(actions)
    sections: dict[str, list[str]] = {"sysctl": [], "vm": [], "disk": [], "sysfs": [], "bootloader": []}
    disks: list[str] = []
    elevator = ""
    cmdline: list[str] = []
    isolated = ""
    for action in actions:
        if action.tuned is not None:
            section, key, value = action.tuned
            if section == "disk":
                disks.append(key)
                elevator = value
            else:
                sections[section].append(f"{key}={value}")
        knob = action.change.knob
        if knob.startswith("kernel cmdline"):
            cmdline.extend(action.change.target.split())
            if knob == "kernel cmdline (isolated CPUs)":
                isolated = action.change.target.split()[-1].split("=", 1)[1]
    sysfs_items = [(line.split("=", 1)[0], line) for line in sections["sysfs"]]
    sections["sysfs"] = [line for _k, line in _ksm_run_last(sysfs_items)]
    if disks:
        sections["disk"] = [f"devices={','.join(disks)}", f"elevator={elevator}"]
    if cmdline:
        sections["bootloader"] = [f"cmdline_virtscenario={' '.join(dict.fromkeys(cmdline))}"]
    # virtual-host: tuned's profile for KVM hosts (throughput-performance + writeback tuning);
    # realtime-virtual-host when real-time VMs need isolated CPUs (it asserts isolated_cores).
    parent = "realtime-virtual-host" if isolated else "virtual-host"
    name = tuned_profile_name(scenario)
    lines = [f"# Written by virtscenario host apply --backend tuned for scenario {scenario}"
             + (f" (VMs: {', '.join(vms)})" if vms else "") + ".",
             f"# Not activated: run 'tuned-adm profile {name}' (tuned-adm verify checks it).",
             "# Kernel command line ([bootloader]) changes apply at the next boot after activation.",
             "", "[main]", f"summary=virtscenario host tuning for scenario {scenario}", f"include={parent}"]
    if isolated:
        lines += ["", "[variables]", f"isolated_cores={isolated}"]
    for section in ("sysctl", "vm", "disk", "sysfs", "bootloader"):
        if sections[section]:
            lines += ["", f"[{section}]", *sections[section]]
    out = {f"{TUNED_DIR}/{name}/tuned.conf": ("\n".join(lines) + "\n").encode()}
    fstab_only = [a for a in actions if a.persist is not None and a.persist[0] == "fstab"]
    out.update(files_backend(host, fstab_only))
    return out
