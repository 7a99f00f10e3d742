"""Fleet fixtures: real transports to the shared libvirtd, test:/// hosts, recorded hosts, the CLI.

- TCP: the libvirtd started by scripts/libvirtd.sh listens on 127.0.0.1 (``--listen``);
  ``VIRTSCENARIO_TEST_TCP_URI`` overrides ``qemu+tcp://127.0.0.1/system``.
- SSH: a private ``sshd`` on a free loopback port with generated host and client keys,
  started for the session and stopped by PID; libvirt's ssh transport reaches the same
  daemon through it (``virt-ssh-helper`` on the "remote" side).
- test:/// hosts: the node XML files in tests/data/fleet.
- recorded hosts: domain capabilities and host capabilities recorded by the research
  branch (tests/data/domcaps, tests/data/caps), assembled into facts without I/O.
Tests marked ``libvirtd`` fail (never skip) when a transport is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "fleet"
TCP_URI = os.environ.get("VIRTSCENARIO_TEST_TCP_URI", "qemu+tcp://127.0.0.1/system")
UNREACHABLE_URI = "qemu+tcp://127.0.0.1:1/system"  # port 1: nothing listens, the kernel refuses at once
#: Recordings of the research branch; its worktree is read until that branch is merged.
RECORDED = ROOT / "tests" / "data"


def recorded(kind: str, name: str) -> str:
    """A recorded XML (``kind`` domcaps or caps) from tests/data."""
    path = RECORDED / kind / name
    if not path.is_file():
        pytest.fail(f"recording {kind}/{name} not found in {RECORDED}", pytrace=False)
    return path.read_text()


def node_uri(name: str) -> str:
    return f"test://{DATA / name}"


def import_libvirt() -> Any:
    from virtscenario.host.hypervisor import quiet_libvirt
    return quiet_libvirt()


def open_or_fail(uri: str) -> Any:
    libvirt = import_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.fail(f"{uri} is not reachable: {exc.get_error_message()}. scripts/libvirtd.sh starts libvirtd with "
                    "--listen (loopback TCP); run the suite with scripts/test.sh", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tcp_uri() -> str:
    open_or_fail(TCP_URI).close()
    return TCP_URI


@pytest.fixture(scope="session")
def ssh_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``qemu+ssh://root@127.0.0.1:PORT/system?keyfile=KEY&no_verify=1`` through a private sshd."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    keygen = shutil.which("ssh-keygen")
    if not os.path.exists(sshd) or keygen is None or shutil.which("ssh") is None:
        pytest.fail("openssh-server and openssh-client are needed (scripts/setup.sh --tests)", pytrace=False)
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"virtscenario-fleet-{key}", "-f",
                        str(d / key)], check=True, capture_output=True, timeout=30)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    (d / "authorized_keys").chmod(0o600)
    port = free_port()
    conf = d / "sshd_config"
    conf.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
        f"PidFile {d / 'sshd.pid'}", "",
    ]))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    log = d / "sshd.log"
    proc = subprocess.Popen([sshd, "-D", "-f", str(conf), "-E", str(log)])
    known = Path(os.path.expanduser("~")) / ".ssh" / "known_hosts"
    had_known, had_old = known.exists(), known.with_name("known_hosts.old").exists()
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited ({proc.returncode}): {log.read_text() if log.exists() else ''}",
                            pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd did not listen on 127.0.0.1:{port}", pytrace=False)
                time.sleep(0.05)
        uri = f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={d / 'client_key'}&no_verify=1"
        open_or_fail(uri).close()
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        # no_verify=1 let ssh add this throw-away host key to known_hosts: take it out again.
        if known.exists():
            subprocess.run([keygen, "-R", f"[127.0.0.1]:{port}", "-f", str(known)], capture_output=True, timeout=30)
            if not had_old:
                known.with_name("known_hosts.old").unlink(missing_ok=True)
            if not had_known and known.stat().st_size == 0:
                known.unlink()


@pytest.fixture
def hung_uri() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a host that hangs in libvirt's handshake."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"qemu+tcp://127.0.0.1:{server.getsockname()[1]}/system"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[..., Path]:
    """write_inventory({name: uri or {uri:, labels:}}) -> path of a hosts.yaml."""
    def write(hosts: dict[str, Any], name: str = "hosts.yaml") -> Path:
        import yaml
        entries = {n: (v if isinstance(v, dict) else {"uri": v}) for n, v in hosts.items()}
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"hosts": entries}, sort_keys=False))
        return path
    return write


@pytest.fixture
def fleet_cli(monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``virtscenario ARGS`` in-process through the real entry point with the fleet commands registered,
    as the CLI will have them: (exit code, stdout, stderr)."""
    import virtscenario.cli.app as cli_module

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = 0
        try:
            cli_module.main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def dir_pool() -> Iterator[Callable[..., tuple[str, Path]]]:
    """dir_pool(uri, prefix="fleet-") -> (name, directory): a started dir pool 'PREFIX...' in a fresh directory
    on that daemon; its volumes, the pool and the directory are removed after the test."""
    made: list[tuple[Any, str, Path]] = []

    def make(uri: str, prefix: str = "fleet-") -> tuple[str, Path]:
        import tempfile
        conn = open_or_fail(uri)
        directory = Path(tempfile.mkdtemp(prefix=f"{prefix}pool-"))
        directory.chmod(0o755)  # QEMU may run as libvirt-qemu on a developer's machine
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        made.append((conn, name, directory))
        pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{name}</name><target><path>{directory}</path>"
                                         "</target></pool>", 0)
        pool.build(0)
        pool.create(0)
        return name, directory

    yield make
    libvirt = import_libvirt()
    errors = []
    for conn, name, directory in made:
        try:
            pool = conn.storagePoolLookupByName(name)
            if pool.isActive():
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as exc:
            errors.append(f"{name}: {exc.get_error_message()}")
        finally:
            conn.close()
        shutil.rmtree(directory, ignore_errors=True)
    if errors:
        pytest.fail("teardown could not remove pools: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    path.chmod(0o755)
    return path


def answers_from(caps: str, domcaps: dict[str, str], running: tuple[str, ...] = (),
                 free_pages: Optional[dict[int, dict[int, int]]] = None, cells_free: Optional[dict[int, int]] = None,
                 lib_version: int = 9000000, hv_version: int = 7002000) -> Any:
    """Answers of a recorded host: free memory and free hugepages default to what its cells have
    (an idle host: everything the recording lists is free)."""
    from virtscenario.fleet.facts import Answers, parse_capabilities
    parsed = parse_capabilities(caps)
    if free_pages is None:
        free_pages = {c.id: {size: count for size, count in c.pages if size > 4} for c in parsed.cells}
    if cells_free is None:
        cells_free = {c.id: c.memory_bytes or 0 for c in parsed.cells}
    return Answers(lib_version, "QEMU", hv_version, "recorded", caps, (), cells_free, None, free_pages,
                   dict(domcaps), {}, running)
