"""libvirt connection URIs: ``driver[+transport]://[user@][host][:port]/path[?query]``.

The rules are libvirt's (docs/uri.rst, src/remote/remote_driver.c, libvirt 9.0):
the transports are the remote driver's ``remoteDriverTransport`` names; the query
parameters are those ``doRemoteOpen`` extracts (any other one libvirt passes through
to the remote daemon, where the QEMU driver knows none, so here it is a typo); the
``no_*`` flags must be 0 or 1 ("Failed to parse value of URI component"). Only the
QEMU driver (and the ``test`` driver, for tests and demos) are hosts virtscenario
can place VMs on.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError

DRIVERS = ("qemu", "test")
TRANSPORTS = ("tls", "unix", "ssh", "libssh2", "ext", "tcp", "libssh")
PARAMS = ("name", "command", "socket", "auth", "sshauth", "netcat", "keyfile", "pkipath", "known_hosts",
          "known_hosts_verify", "tls_priority", "mode", "proxy", "no_sanity", "no_verify", "no_tty", "authfile")
BOOL_PARAMS = ("no_sanity", "no_verify", "no_tty")
QEMU_PATHS = ("/system", "/session", "/embed")
_SCHEME = re.compile(r"^([a-z][a-z0-9]*)(?:\+([a-z0-9]+))?$")


@dataclass(frozen=True)
class LibvirtUri:
    text: str
    driver: str
    transport: Optional[str]
    user: Optional[str]
    host: Optional[str]
    port: Optional[int]
    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def remote(self) -> bool:
        """True when libvirt goes through its remote driver to another machine (or a daemon by TCP/SSH)."""
        return bool(self.host) or self.transport not in (None, "unix")

    @property
    def local(self) -> bool:
        return not self.remote


def parse_uri(text: str, where: str = "") -> LibvirtUri:
    """Check ``text`` the way libvirt would read it; one ConfigError line naming the problem."""
    from urllib.parse import parse_qsl, urlsplit

    label = f"{where}: " if where else ""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{label}{text!r} is not a libvirt URI: {why}")

    if not isinstance(text, str) or not text:
        raise ConfigError(f"{label}a libvirt URI is required (e.g. qemu+ssh://root@host/system)")
    if any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise bad("it contains spaces or control characters")
    if "://" not in text:
        raise bad("expected driver[+transport]://[user@]host[:port]/path, e.g. qemu+ssh://root@host/system")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise bad(str(exc)) from None
    if parts.password is not None:
        # Not echoed: the URI holds a secret.
        raise ConfigError(f"{label}a libvirt URI must not hold a password (use an SSH key, or libvirt's auth file)")
    m = _SCHEME.match(parts.scheme)
    if not m:
        raise bad(f"bad scheme {parts.scheme!r} (driver[+transport])")
    driver, transport = m.group(1), m.group(2)
    if driver not in DRIVERS:
        raise bad(f"driver {driver!r} is not a hypervisor virtscenario places VMs on ({', '.join(DRIVERS)})")
    if transport is not None and transport not in TRANSPORTS:
        close = difflib.get_close_matches(transport, TRANSPORTS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (libvirt's transports: {', '.join(TRANSPORTS)})"
        raise bad(f"unknown transport {transport!r}{hint}")
    if parts.fragment:
        raise bad("a '#fragment' has no meaning in a libvirt URI")
    if port is not None and not 0 < port < 65536:
        raise bad(f"port {port} is out of range")
    if transport == "unix" and parts.hostname:
        raise bad("the unix transport reaches the local daemon: give no host")
    path = parts.path
    if driver == "qemu" and path not in QEMU_PATHS:
        shown = repr(path) if path else "an empty path"
        raise bad(f"the QEMU driver's path is {' or '.join(QEMU_PATHS)}, not {shown}")
    if driver == "test" and not path.startswith("/"):
        raise bad("the test driver's path is /default or an absolute node XML file")
    params: list[tuple[str, str]] = []
    if parts.query:
        try:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise bad("the query is not key=value&key=value") from None
    allowed = PARAMS + (("root",) if path == "/embed" else ())
    for key, value in params:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"libvirt's are {', '.join(allowed)}"
            raise bad(f"unknown parameter {key!r} ({hint})")
        if key in BOOL_PARAMS and value not in ("0", "1"):
            raise bad(f"{key} must be 0 or 1, not {value!r}")
    if path == "/embed" and not any(k == "root" for k, _v in params):
        raise bad("qemu:///embed needs ?root=DIR")
    return LibvirtUri(text, driver, transport, parts.username or None, parts.hostname or None, port, path,
                      tuple(params))
