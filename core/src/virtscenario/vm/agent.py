"""Talk to the QEMU guest agent of a running domain through libvirt (``virDomainQemuAgentCommand``).

Used by ``virtscenario verify`` and by the tests that boot the test guest:
:func:`wait_for_agent`, :func:`agent_command` and :func:`agent_exec` (``guest-exec`` +
``guest-exec-status``, output base64-decoded). libvirt and lxml are imported on first use.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, NamedTuple, Optional, Sequence

from ..errors import VirtscenarioError

AGENT_CHANNEL = "org.qemu.guest_agent.0"


class AgentError(VirtscenarioError):
    """The agent did not answer, or answered with an error."""


class ExecResult(NamedTuple):
    exitcode: int  # the signal number, negated, when the process was killed
    stdout: str
    stderr: str


def _libvirt() -> tuple[Any, Any]:
    import libvirt
    import libvirt_qemu

    return libvirt, libvirt_qemu


def agent_command(dom: Any, execute: str, arguments: Optional[dict[str, Any]] = None, timeout: int = 10) -> Any:
    """Run one agent command and return its ``return`` member; :class:`AgentError` otherwise."""
    libvirt, libvirt_qemu = _libvirt()
    request: dict[str, Any] = {"execute": execute}
    if arguments is not None:
        request["arguments"] = arguments
    try:
        reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
    except libvirt.libvirtError as exc:
        raise AgentError(f"{execute}: {exc.get_error_message()}") from exc
    data = json.loads(reply)
    if "error" in data:
        raise AgentError(f"{execute}: {data['error'].get('desc', data['error'])}")
    return data.get("return")


def agent_channel_state(dom: Any) -> Optional[str]:
    """``connected``/``disconnected`` as libvirt saw the guest open the agent port (None: not reported)."""
    from lxml import etree
    root = etree.fromstring(dom.XMLDesc(0).encode())
    target = root.find(f"devices/channel/target[@name='{AGENT_CHANNEL}']")
    return None if target is None else target.get("state")


def wait_for_agent(dom: Any, timeout: float, interval: float = 0.2) -> float:
    """Wait until ``guest-ping`` answers; return the seconds waited.

    Pings (with a real timeout) once libvirt reports the port opened by the guest; until
    then libvirt refuses at once. Do not poll with timeout 0 (NOWAIT): done here, the first
    answer came after 117 s instead of about 9 s.
    """
    start = time.monotonic()
    deadline = start + timeout
    last = "the guest never opened the agent port"
    while True:
        if not dom.isActive():
            raise AgentError(f"the domain stopped while waiting for its agent ({last})")
        if agent_channel_state(dom) != "disconnected":
            remaining = max(1, int(deadline - time.monotonic()))
            try:
                agent_command(dom, "guest-ping", timeout=min(5, remaining))
                return time.monotonic() - start
            except AgentError as exc:
                last = str(exc)
        if time.monotonic() >= deadline:
            raise AgentError(f"no answer from the guest agent within {timeout:.0f} s ({last})")
        time.sleep(interval)


def agent_exec(dom: Any, argv: Sequence[str], timeout: float = 30.0, stdin: Optional[bytes] = None) -> ExecResult:
    """Run ``argv`` in the guest (PATH lookup for a bare name), wait for it, return its result.

    Raises :class:`AgentError` when it cannot start, outlives ``timeout``, or its output
    was truncated by the agent (16 MiB per stream).
    """
    if not argv:
        raise ValueError("agent_exec needs a command")
    arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
    if stdin is not None:
        arguments["input-data"] = base64.b64encode(stdin).decode()
    pid = agent_command(dom, "guest-exec", arguments)["pid"]
    deadline = time.monotonic() + timeout
    while True:
        # The agent forgets the process once it has reported it exited: ask again only while running.
        status = agent_command(dom, "guest-exec-status", {"pid": pid})
        if status.get("exited"):
            break
        if time.monotonic() >= deadline:
            raise AgentError(f"{list(argv)} still running in the guest after {timeout:.0f} s")
        time.sleep(0.05)
    if status.get("out-truncated") or status.get("err-truncated"):
        raise AgentError(f"{list(argv)}: output truncated by the guest agent")
    exitcode = status["exitcode"] if "exitcode" in status else -int(status.get("signal", 0))
    return ExecResult(
        exitcode,
        base64.b64decode(status.get("out-data", "")).decode(errors="replace"),
        base64.b64decode(status.get("err-data", "")).decode(errors="replace"),
    )


def guest_read(dom: Any, path: str) -> str:
    """The content of a guest file (through ``cat``); :class:`AgentError` when cat fails."""
    result = agent_exec(dom, ["cat", path])
    if result.exitcode != 0:
        raise AgentError(f"cat {path} failed in the guest ({result.exitcode}): {result.stderr.strip()}")
    return result.stdout
