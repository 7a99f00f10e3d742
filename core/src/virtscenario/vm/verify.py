"""``virtscenario verify``: what the scenario decided, against what the guest sees through its agent.

Expected values come from the VM's store record: the stored ``domain.xml`` (the decisions as
rendered) and ``vm.yaml`` (settings, disk sizes). Observed values come from inside the
running guest, through the QEMU guest agent (:mod:`virtscenario.vm.agent`): ``guest-get-vcpus``
and one POSIX ``sh`` probe that reads ``/sys`` and ``/proc`` (CPU topology, the firmware's
memory map, block devices, NICs and their queues, TPM, clocksource), plus a virtiofs mount
and ``dmesg`` where a check needs them. Plugins add rows through the ``verify_checks`` hook.

A guest that is not Linux (``guest-get-osinfo``) only gets the agent's own checks; the
others are shown as skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import VirtscenarioError
from ..records import FrozenRecord, Record, frozen_record, record
from ..types import GuestCheck

if TYPE_CHECKING:  # pragma: no cover
    from .agent import ExecResult

#: The firmware keeps some guest RAM (SMM TSEG, ACPI tables, OVMF's own data): tolerated below <memory>.
MEMORY_SLACK_BYTES = 48 * 1024**2
MEMORY_SLACK_RATIO = 0.03
#: Observed text of a check that needs in-guest commands the guest does not run (the first row says why).
NOT_OBSERVED = "not observed (see 'in-guest commands')"
#: Block devices that are not the VM's disks.
NOT_DISKS = re.compile(r"^(loop|ram|zram|sr|fd|dm-|md|nbd|zd)")
PROBE = r"""
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/topology/core_id" ] || continue
  t=$c/topology
  echo "cpu ${c##*/} $(cat $t/physical_package_id) $(cat $t/die_id 2>/dev/null || echo 0) $(cat $t/core_id)"
done
if [ -d /sys/firmware/memmap ]; then
  for m in /sys/firmware/memmap/*; do echo "memmap $(cat $m/start) $(cat $m/end) $(cat $m/type)"; done
fi
while read -r key value _; do [ "$key" = MemTotal: ] && echo "memtotal $value"; done </proc/meminfo
for b in /sys/block/*; do
  echo "block ${b##*/} $(cat $b/size) $(cat $b/queue/discard_max_bytes 2>/dev/null || echo 0)"
done
for n in /sys/class/net/*; do
  [ -e "$n/device" ] || continue
  set -- $n/queues/rx-*; rx=$#; [ -e "$1" ] || rx=0
  echo "net ${n##*/} $(cat $n/address) $rx"
done
for t in /sys/class/tpm/tpm[0-9]*; do
  [ -e "$t" ] || continue
  d=$(readlink "$t/device/driver" 2>/dev/null)
  echo "tpm ${t##*/} $(cat $t/tpm_version_major 2>/dev/null || echo 1) ${d##*/}"
done
echo "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
"""


@record
class VerifiedVm(Record):
    """The VM being verified, as its store records it."""

    name: str
    scenario: str
    directory: Path
    settings: dict[str, Any]
    domain: Any  # the stored domain.xml (lxml element)
    disk_sizes: dict[str, Optional[int]]  # path -> size vm.yaml recorded (None: an existing image's own)


@frozen_record
class Probe(FrozenRecord):
    """What the guest's /sys and /proc said."""

    cpus: tuple[tuple[str, str, str, str], ...]  # (cpu, package, die, core)
    ram_bytes: Optional[int]  # System RAM of the firmware's memory map
    memtotal_bytes: Optional[int]
    disks: tuple[tuple[str, int, int], ...]  # (name, bytes, discard_max_bytes)
    nics: tuple[tuple[str, str, int], ...]  # (name, mac, rx queues)
    tpms: tuple[tuple[str, str, str], ...]  # (name, version major, driver)
    clocksource: str


def parse_probe(text: str) -> Probe:
    cpus, disks, nics, tpms = [], [], [], []
    ram = 0
    have_map = False
    memtotal = None
    clocksource = ""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        if kind == "cpu" and len(parts) == 5:
            cpus.append((parts[1], parts[2], parts[3], parts[4]))
        elif kind == "memmap" and len(parts) >= 4:
            have_map = True
            if " ".join(parts[3:]) == "System RAM":
                ram += int(parts[2], 16) - int(parts[1], 16) + 1
        elif kind == "memtotal" and len(parts) == 2 and parts[1].isdigit():
            memtotal = int(parts[1]) * 1024
        elif kind == "block" and len(parts) == 4 and not NOT_DISKS.match(parts[1]):
            disks.append((parts[1], int(parts[2]) * 512, int(parts[3]) if parts[3].isdigit() else 0))
        elif kind == "net" and len(parts) == 4:
            nics.append((parts[1], parts[2].lower(), int(parts[3])))
        elif kind == "tpm" and len(parts) >= 3:
            tpms.append((parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
        elif kind == "clocksource":
            clocksource = " ".join(parts[1:])
    return Probe(tuple(cpus), ram if have_map else None, memtotal, tuple(sorted(disks)), tuple(nics), tuple(tpms),
                 clocksource)


class Guest:
    """A running guest reached through its agent; what ``verify_checks`` implementations get."""

    def __init__(self, dom: Any, timeout: float = 30.0) -> None:
        self.dom = dom
        self.timeout = timeout
        self._osinfo: Optional[dict[str, Any]] = None

    def command(self, execute: str, arguments: Optional[dict[str, Any]] = None) -> Any:
        """One raw agent command (``guest-get-vcpus``...); its ``return`` member."""
        from .agent import agent_command
        return agent_command(self.dom, execute, arguments)

    def run(self, argv: list[str]) -> ExecResult:
        """Run a program in the guest (``guest-exec``) and wait for it: (exitcode, stdout, stderr)."""
        from .agent import agent_exec
        return agent_exec(self.dom, argv, timeout=self.timeout)

    def read(self, path: str) -> str:
        from .agent import guest_read
        return guest_read(self.dom, path)

    @property
    def osinfo(self) -> dict[str, Any]:
        if self._osinfo is None:
            from .agent import AgentError
            try:
                self._osinfo = dict(self.command("guest-get-osinfo") or {})
            except AgentError:
                self._osinfo = {}
        return self._osinfo

    @property
    def is_linux(self) -> bool:
        """``guest-get-osinfo`` says Linux (kernel-release present and no Windows id), or uname does."""
        info = self.osinfo
        if info:
            return info.get("id") != "mswindows" and "windows" not in str(info.get("name", "")).lower()
        try:
            return self.run(["uname", "-s"]).stdout.strip() == "Linux"
        except VirtscenarioError:
            return False


@record
class Report(Record):
    vm: str
    checks: list[GuestCheck]
    agent_seconds: float

    @property
    def failed(self) -> bool:
        return any(c.ok is False for c in self.checks)

    def as_json(self) -> list[dict[str, str]]:
        return [{"check": c.check, "expected": c.expected, "observed": c.observed, "status": c.status}
                for c in self.checks]


class AgentSilent(VirtscenarioError):
    """Nothing could be observed: the domain is not running, has no agent, or the agent never answered."""

    exit_code = 2


# -- loading --------------------------------------------------------------------------------

def load_vm(directory: Path) -> VerifiedVm:
    from lxml import etree

    from .store import DOMAIN_FILE
    from .store import load_vm as load_record
    record_data = load_record(directory)
    xml_path = directory / DOMAIN_FILE
    if record_data is None or not xml_path.is_file():
        raise VirtscenarioError(f"no VM {directory.name!r} in the store {directory.parent} (no vm.yaml and "
                                "domain.xml there; --output names the store)")
    try:
        domain = etree.parse(str(xml_path)).getroot()
    except etree.XMLSyntaxError as exc:
        raise VirtscenarioError(f"cannot read {xml_path}: {exc}") from None
    return verified_vm(record_data, directory, domain)


def verified_vm(record_data: dict[str, Any], directory: Path, domain: Any) -> VerifiedVm:
    """The VM as ``verify`` sees it, from its vm.yaml record and its domain XML (an lxml element)."""
    settings = {str(i.get("key")): i.get("value") for i in record_data.get("settings") or [] if isinstance(i, dict)}
    sizes = {str(d.get("path")): d.get("size") for d in record_data.get("disks") or [] if isinstance(d, dict)}
    return VerifiedVm(str(record_data.get("name") or directory.name), str(record_data.get("scenario") or "unknown"),
                      directory, settings, domain, sizes)


# -- the core's checks ----------------------------------------------------------------------

def mib(value: int) -> str:
    return f"{value / 1024**2:.0f} MiB"


def gib(value: int) -> str:
    from ..units import format_size
    return str(format_size(value))


def expected_topology(domain: Any) -> tuple[int, int, int, int]:
    """(sockets, dies, cores, threads) the XML asks for; libvirt passes sockets=N,cores=1,threads=1 without."""
    vcpus = int(domain.findtext("vcpu") or 1)
    topo = domain.find("cpu/topology")
    if topo is None:
        return vcpus, 1, 1, 1
    return (int(topo.get("sockets", 1)), int(topo.get("dies", 1)), int(topo.get("cores", 1)),
            int(topo.get("threads", 1)))


def check_cpus(domain: Any, guest: Guest, probe: Optional[Probe]) -> list[GuestCheck]:
    vcpu_el = domain.find("vcpu")
    want = int(vcpu_el.get("current") or vcpu_el.text) if vcpu_el is not None else 1
    vcpus = guest.command("guest-get-vcpus") or []
    online = len([v for v in vcpus if v.get("online")])
    out = [GuestCheck("vCPUs", str(want), f"{online} online", online == want)]
    sockets, dies, cores, threads = expected_topology(domain)
    expected = f"{sockets} socket(s) x {dies} die(s) x {cores} core(s) x {threads} thread(s)"
    if probe is None or not probe.cpus:
        out.append(GuestCheck("vCPU topology", expected, NOT_OBSERVED, None))
        return out
    packages = {c[1] for c in probe.cpus}
    die_set = {(c[1], c[2]) for c in probe.cpus}
    core_set = {(c[1], c[2], c[3]) for c in probe.cpus}
    seen_threads = len(probe.cpus) // max(1, len(core_set))
    observed = (f"{len(packages)} socket(s) x {len(die_set) // max(1, len(packages))} die(s) x "
                f"{len(core_set) // max(1, len(die_set))} core(s) x {seen_threads} thread(s)")
    ok = (len(packages), len(die_set) // max(1, len(packages)), len(core_set) // max(1, len(die_set)),
          seen_threads) == (sockets, dies, cores, threads)
    if vcpu_el is not None and vcpu_el.get("current") and len(probe.cpus) == want:
        # Fewer vCPUs decided online than the topology holds (vcpu current=): compare what is there.
        ok = len(packages) <= sockets and seen_threads <= threads
    out.append(GuestCheck("vCPU topology", expected, observed, ok))
    return out


def check_memory(domain: Any, probe: Optional[Probe]) -> GuestCheck:
    mem = domain.find("memory")
    unit = (mem.get("unit") or "KiB") if mem is not None else "KiB"
    factor = {"KiB": 1024, "k": 1024, "MiB": 1024**2, "M": 1024**2, "GiB": 1024**3, "G": 1024**3,
              "b": 1, "bytes": 1}.get(unit, 1024)
    want = int(mem.text) * factor if mem is not None and mem.text else 0
    slack = max(MEMORY_SLACK_BYTES, int(want * MEMORY_SLACK_RATIO))
    expected = f"{mib(want)} (the firmware may keep up to {mib(slack)})"
    if probe is None:
        return GuestCheck("memory", expected, NOT_OBSERVED, None)
    if probe.ram_bytes is not None:
        seen, what = probe.ram_bytes, "System RAM in the firmware's memory map"
    elif probe.memtotal_bytes is not None:
        seen, what = probe.memtotal_bytes, "MemTotal (no /sys/firmware/memmap)"
        slack = max(slack, want // 4)  # MemTotal also excludes the kernel's own memory
    else:
        return GuestCheck("memory", expected, "not readable", None)
    return GuestCheck("memory", expected, f"{mib(seen)} {what}", want - slack <= seen <= want)


def check_disks(vm: VerifiedVm, dom: Any, probe: Optional[Probe]) -> list[GuestCheck]:
    disks = [d for d in vm.domain.findall("devices/disk") if d.get("device", "disk") == "disk"]
    sizes: list[Optional[int]] = []
    for disk in disks:
        source = disk.find("source")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        size = vm.disk_sizes.get(path or "")
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if size is None and (path or dev):  # a pool volume (type volume) has no path here: ask by target
            size = _capacity(dom, path or "", dev)
        sizes.append(size)
    expected = f"{len(disks)}: " + ", ".join(gib(s) if s else "?" for s in sizes) if disks else "0"
    if probe is None:
        return [GuestCheck("disks (count, size)", expected, NOT_OBSERVED, None)]
    seen = list(probe.disks)
    observed = f"{len(seen)}: " + ", ".join(f"{n} {gib(b)}" for n, b, _d in seen) if seen else "0"
    known = sorted(s for s in sizes if s)
    matched = len(seen) == len(disks) and _sizes_match(known, sorted(b for _n, b, _d in seen))
    out = [GuestCheck("disks (count, size)", expected, observed, matched)]
    unmap = [d for d in disks if (d.find("driver") is not None and d.find("driver").get("discard") == "unmap")]
    if unmap:
        with_discard = [n for n, _b, d in seen if d > 0]
        out.append(GuestCheck("disk discard (TRIM)", f"passed through on {len(unmap)} disk(s)",
                              f"advertised on {len(with_discard)}: {', '.join(with_discard) or 'none'}",
                              len(with_discard) >= len(unmap)))
    return out


def _sizes_match(expected: list[int], seen: list[int]) -> bool:
    """Every expected size is seen (a guest disk may be larger: qcow2 rounds nothing, raw rounds to sectors)."""
    pool = list(seen)
    for size in expected:
        hit = next((s for s in pool if abs(s - size) < 1024**2), None)
        if hit is None:
            return False
        pool.remove(hit)
    return True


def _capacity(dom: Any, path: str, target: Optional[str]) -> Optional[int]:
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    for name in (target, path):
        if not name:
            continue
        try:
            return int(dom.blockInfo(name)[0])
        except libvirt.libvirtError:
            continue
    return None


def check_nics(domain: Any, probe: Optional[Probe]) -> list[GuestCheck]:
    vcpus = int(domain.findtext("vcpu") or 1)
    nics = domain.findall("devices/interface")
    macs = [(n.find("mac").get("address").lower() if n.find("mac") is not None else "?") for n in nics]
    expected = f"{len(nics)}: {', '.join(macs)}" if nics else "0"
    if probe is None:
        return [GuestCheck("NICs", expected, NOT_OBSERVED, None)]
    seen = {mac: (name, rx) for name, mac, rx in probe.nics}
    observed = f"{len(probe.nics)}: " + ", ".join(f"{n} {m}" for n, m, _q in probe.nics) if probe.nics else "0"
    out = [GuestCheck("NICs", expected, observed, len(probe.nics) == len(nics) and all(m in seen for m in macs))]
    for nic, mac in zip(nics, macs):
        model = nic.find("model")
        driver = nic.find("driver")
        queues = int(driver.get("queues")) if driver is not None and driver.get("queues") else 1
        if model is None or model.get("type") != "virtio":
            continue
        # virtio-net uses min(queue pairs, online CPUs) (drivers/net/virtio_net.c, virtnet_probe).
        want = min(queues, vcpus)
        if mac not in seen:
            out.append(GuestCheck(f"queue pairs {mac}", str(want), "NIC not found", False))
            continue
        name, rx = seen[mac]
        out.append(GuestCheck(f"queue pairs {name}", f"{want} (queues={queues}, {vcpus} vCPUs)", str(rx), rx == want))
    return out


def check_tpm(domain: Any, probe: Optional[Probe]) -> GuestCheck:
    tpm = domain.find("devices/tpm")
    if tpm is not None:
        backend = tpm.find("backend")
        version = backend.get("version") if backend is not None and backend.get("version") else "host's"
        expected = f"TPM {version} ({tpm.get('model')})"
    else:
        expected = "absent"
    if probe is None:
        return GuestCheck("TPM", expected, NOT_OBSERVED, None)
    if not probe.tpms:
        return GuestCheck("TPM", expected, "absent", tpm is None)
    name, major, driver = probe.tpms[0]
    observed = f"{name}: TPM {major}.0, driver {driver or '?'}"
    ok = tpm is not None
    if ok and backend is not None and backend.get("version"):
        ok = backend.get("version").split(".")[0] == major
    if ok and driver:
        ok = driver.replace("_", "-") == tpm.get("model")
    return GuestCheck("TPM", expected, observed, ok)


def check_shares(vm: VerifiedVm, guest: Guest, linux: bool) -> list[GuestCheck]:
    """Each virtiofs share mounted in the guest (and written to, where it must be read-only)."""
    out = []
    for fs in vm.domain.findall("devices/filesystem"):
        driver = fs.find("driver")
        if driver is None or driver.get("type") != "virtiofs":
            continue
        tag = fs.find("target").get("dir")
        enforced = fs.find("readonly") is not None
        decided = bool(vm.settings.get("filesystem.readonly"))
        expected = "mountable, read-only" if enforced else "mountable, writable" + (
            " (read-only was decided, but this libvirt cannot enforce it: mount -o ro)" if decided else "")
        name = f"virtiofs share {tag}"
        if not linux:
            out.append(GuestCheck(name, expected, NOT_OBSERVED, None))
            continue
        out.append(GuestCheck(name, expected, *_mount_share(guest, tag, enforced)))
    return out


def _mount_share(guest: Guest, tag: str, readonly: bool) -> tuple[str, bool]:
    point = f"/run/virtscenario-verify-{re.sub(r'[^A-Za-z0-9_-]', '_', tag)}"
    # Mounted, probed and unmounted in one script: nothing is left mounted in the guest. The
    # write probe only runs where the share must be read-only (it must fail there).
    script = (f'mkdir -p {point} && mount -t virtiofs "$1" {point} || exit 3; '
              + (f'if touch {point}/.virtscenario-verify 2>/dev/null; then rm -f {point}/.virtscenario-verify; '
                 'w=writable; else w=read-only; fi; ' if readonly else 'w=writable; ')
              + f'umount {point}; rmdir {point}; echo "$w"')
    result = guest.run(["sh", "-c", script, "sh", tag])
    if result.exitcode == 3:
        return f"mount failed: {result.stderr.strip()[:120] or 'no message'}", False
    if result.exitcode != 0:
        return f"check failed ({result.exitcode}): {result.stderr.strip()[:120]}", False
    state = result.stdout.strip()
    return f"mounted, {state}", (state == "read-only") == readonly


def check_clock(domain: Any, probe: Optional[Probe]) -> GuestCheck:
    kvm = domain.get("type") == "kvm"
    timers = {t.get("name"): t.get("present") for t in domain.findall("clock/timer")}
    if kvm and timers.get("kvmclock") != "no":
        allowed: Optional[set[str]] = {"kvm-clock"}
        expected = "kvm-clock"
        if timers.get("hypervclock") == "yes":
            allowed = {"kvm-clock", "hyperv_clocksource_tsc_page"}
    else:
        banned = {"kvm-clock"} | ({"hpet"} if timers.get("hpet") == "no" else set())
        expected = "not " + " or ".join(sorted(banned)) + (" (TCG: no kvmclock)" if not kvm else "")
        allowed = None
    if probe is None or not probe.clocksource:
        return GuestCheck("clocksource", expected, "not readable", None)
    seen = probe.clocksource
    ok = seen in allowed if allowed is not None else seen not in banned
    return GuestCheck("clocksource", expected, seen, ok)


def check_encryption(domain: Any, guest: Guest, linux: bool) -> GuestCheck:
    ls = domain.find("launchSecurity")
    expected = f"active ({ls.get('type')})" if ls is not None else "inactive"
    if not linux:
        return GuestCheck("memory encryption", expected, NOT_OBSERVED, None)
    result = guest.run(["dmesg"])
    if result.exitcode != 0:
        return GuestCheck("memory encryption", expected, f"dmesg failed: {result.stderr.strip()[:80]}", None)
    # Linux prints "Memory Encryption Features active: AMD SEV SEV-ES" (arch/x86/mm/mem_encrypt.c).
    line = next((ln for ln in result.stdout.splitlines() if "Memory Encryption Features active" in ln), "")
    observed = ("active: " + line.split("active:", 1)[1].strip()) if line else "inactive"
    return GuestCheck("memory encryption", expected, observed, bool(line) == (ls is not None))


# -- the run --------------------------------------------------------------------------------

def verify(vm: VerifiedVm, conn: Any, timeout: float, catalog: Any = None) -> Report:
    """Every check on the running domain ``vm.name`` of ``conn``; :class:`AgentSilent` when nothing answers."""
    import time

    from ..host.hypervisor import quiet_libvirt
    from .agent import AGENT_CHANNEL, AgentError, wait_for_agent
    libvirt = quiet_libvirt()
    if vm.domain.find(f"devices/channel/target[@name='{AGENT_CHANNEL}']") is None:
        raise AgentSilent(f"{vm.name} has no guest agent channel (channel.guest_agent is off in scenario "
                          f"{vm.scenario}): nothing inside it can be observed")
    try:
        dom = conn.lookupByName(vm.name)
    except libvirt.libvirtError:
        raise VirtscenarioError(f"{vm.name} is not defined on {conn.getURI()} (virtscenario create --define, or "
                                f"virsh define {vm.directory / 'domain.xml'})") from None
    if not dom.isActive():
        raise AgentSilent(f"{vm.name} is not running on {conn.getURI()} (virsh start {vm.name})")
    start = time.monotonic()
    try:
        wait_for_agent(dom, timeout)
    except AgentError as exc:
        raise AgentSilent(f"{vm.name}: {exc} (is qemu-guest-agent installed and running in the guest?)") from None
    waited = time.monotonic() - start
    guest = Guest(dom, timeout=max(30.0, timeout))
    linux = guest.is_linux
    probe = None
    first: list[GuestCheck] = []
    if linux:
        try:
            result = guest.run(["sh", "-c", PROBE])
        except AgentError as exc:  # e.g. guest-exec disabled in qemu-ga's configuration (RHEL's default)
            linux = False
            first.append(GuestCheck("in-guest commands", "guest-exec of sh", f"refused: {exc}", None))
        else:
            if result.exitcode == 0:
                probe = parse_probe(result.stdout)
            else:
                first.append(GuestCheck("in-guest commands", "guest-exec of sh",
                                        f"sh exited {result.exitcode}: {result.stderr.strip()[:120]}", None))
    else:
        name = guest.osinfo.get("pretty-name") or guest.osinfo.get("name") or "not Linux"
        first.append(GuestCheck("in-guest commands", "a Linux guest (sh, /sys, /proc)", str(name), None))
    checks = [*first, *check_cpus(vm.domain, guest, probe), check_memory(vm.domain, probe),
              *check_disks(vm, dom, probe), *check_nics(vm.domain, probe), check_tpm(vm.domain, probe),
              *check_shares(vm, guest, linux), check_clock(vm.domain, probe), check_encryption(vm.domain, guest, linux)]
    if catalog is None:
        from ..plugin.hooks import Catalog
        catalog = Catalog()
    checks += catalog.verify_checks(vm, guest)
    return Report(vm.name, checks, waited)
