"""Every host at once, each with its own timeout; one bad host never hides the others.

One thread per host opens the connection (``virConnectOpenAuth`` with a credential
callback that answers nothing, so a check never stops at a prompt), asks for its
facts and closes it. The caller waits until the deadline and reports a host that has
not answered by then as "no answer within S s (while STEP)". Python cannot kill a
thread blocked in libvirt, so such a thread is left behind as a daemon thread; the
keepalive (libvirt's default event loop runs in a daemon thread for it) makes libvirt
itself close that dead connection a little later, which ends the thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .facts import HostFacts, facts_json, gather
from .inventory import Host

DEFAULT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 5  # seconds between keepalive probes on an idle connection
KEEPALIVE_COUNT = 3  # unanswered probes before libvirt closes the connection

_loop_lock = threading.Lock()
_loop_started = False


@dataclass(frozen=True)
class HostResult:
    host: Host
    facts: Optional[HostFacts]
    error: Optional[str]
    elapsed: float
    conn: Any = field(default=None, compare=False, repr=False)  # kept open only with keep_open=True

    @property
    def ok(self) -> bool:
        return self.facts is not None

    def as_json(self) -> dict[str, Any]:
        return {**self.host.as_json(), "reachable": self.ok, "error": self.error,
                "elapsed_s": round(self.elapsed, 3), "facts": facts_json(self.facts) if self.facts else None}


def ensure_event_loop(libvirt: Any) -> None:
    """Register libvirt's default event loop once per process and run it in a daemon thread.

    The client side of keepalive needs it ("the application has to run an event loop",
    virConnectSetKeepAlive docs).
    """
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                if libvirt.virEventRunDefaultImpl() < 0:
                    time.sleep(0.1)

        threading.Thread(target=run, name="libvirt-event-loop", daemon=True).start()
        _loop_started = True


def open_host(uri: str) -> Any:
    """Open ``uri`` without ever prompting; keepalive on where the driver has it."""
    from ..host.hypervisor import quiet_libvirt
    libvirt = quiet_libvirt()
    ensure_event_loop(libvirt)

    def no_credentials(_creds: Any, _data: Any) -> int:
        return -1  # non-interactive: libvirt reports "authentication failed"

    creds = [libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE, libvirt.VIR_CRED_ECHOPROMPT,
             libvirt.VIR_CRED_NOECHOPROMPT, libvirt.VIR_CRED_REALM]
    conn = libvirt.openAuth(uri, [creds, no_credentials, None], 0)
    try:
        conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
    except libvirt.libvirtError:
        pass  # local and test drivers have no keepalive: nothing to detect there
    return conn


def error_line(exc: Exception) -> str:
    from ..host.hypervisor import libvirt_error_text
    # libvirt's messages can span lines (ssh's stderr): one line
    return " ".join(libvirt_error_text(exc).split()) or type(exc).__name__


def check_hosts(hosts: Sequence[Host], timeout: float = DEFAULT_TIMEOUT,
                probe: Optional[Callable[[Any], HostFacts]] = None,
                opener: Callable[[str], Any] = open_host, keep_open: bool = False) -> list[HostResult]:
    """Facts of every host, in inventory order; a host that fails or is late gets its error line.

    With ``keep_open`` the answering hosts' connections stay open in ``HostResult.conn``
    for the caller to use and close.
    """
    probe = probe or gather
    results: dict[int, HostResult] = {}
    steps: dict[int, str] = {}
    lock = threading.Lock()
    start = time.monotonic()

    def work(i: int, host: Host) -> None:
        conn = None
        facts: Optional[HostFacts] = None
        error: Optional[str] = None
        t0 = time.monotonic()
        try:
            steps[i] = "connecting"
            conn = opener(host.uri)
            steps[i] = "reading its facts"
            facts = probe(conn)
        except Exception as exc:  # noqa: BLE001 - any failure of one host is that host's error line
            error = error_line(exc)
        keep = keep_open and facts is not None
        with lock:
            late = i in results  # the caller gave up on this host: nobody will close the connection
            if not late:
                results[i] = HostResult(host, facts, error, time.monotonic() - t0, conn if keep else None)
        if conn is not None and (late or not keep):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    threads = []
    for i, host in enumerate(hosts):
        t = threading.Thread(target=work, args=(i, host), name=f"check-{host.name}", daemon=True)
        t.start()
        threads.append(t)
    deadline = start + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out = []
    with lock:
        for i, host in enumerate(hosts):
            if i not in results:
                step = steps.get(i, "starting")
                results[i] = HostResult(host, None, f"no answer within {timeout:g} s (while {step})", timeout)
            out.append(results[i])
    return out
