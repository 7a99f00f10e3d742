"""Fixtures for booting generated guests on libvirt: the in-process test driver and the real libvirtd.

The real daemon is started by ``scripts/test.sh`` / ``.ci/run`` (``scripts/libvirtd.sh``).
Tests that need it are marked ``@pytest.mark.libvirtd`` and *fail* (never skip) when it
cannot be reached, so a CI run without a daemon is red, not silently green.

Rules for guests on these machines (../shared/reference/libvirt-qemu-on-ci.md): type
``qemu`` (TCG; KVM is advertised but cannot run guests), ``interface type='user'``
(network ``default`` is inactive: no dnsmasq), no ``<locked/>`` (memlock is 8 MiB),
unique names, and ``undefineFlags(NVRAM|TPM)`` in teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

SYSTEM_URI = os.environ.get("VIRTSCENARIO_TEST_LIBVIRTD_URI", "qemu:///system")
TEST_URI = "test:///default"


def import_libvirt() -> Any:
    try:
        import libvirt
    except ImportError as exc:  # the setup always installs it: missing means a broken venv
        pytest.fail(f"libvirt-python is not importable ({exc}); run scripts/setup.sh --tests", pytrace=False)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def open_libvirtd(uri: str = SYSTEM_URI) -> Any:
    """Open the real daemon, or fail the test with one clear line (never skip)."""
    libvirt = import_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not reachable on {uri}: {exc.get_error_message()}. "
                    "Run the suite with scripts/test.sh (or .ci/run), which starts virtlogd and libvirtd.",
                    pytrace=False)


def remove_domain(conn: Any, name: str) -> None:
    """Destroy and undefine ``name`` with its NVRAM and TPM state, if it exists."""
    libvirt = import_libvirt()
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    nvram = getattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM", 0)
    tpm = getattr(libvirt, "VIR_DOMAIN_UNDEFINE_TPM", 0)
    # The test driver rejects the NVRAM/TPM flags ("unsupported flags"): fall back.
    for flags in (nvram | tpm, nvram, 0):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError:
            continue
    dom.undefine()


#: Prefix of every domain the tests create; on a daemon shared with others, give yours
#: (VIRTSCENARIO_TEST_DOMAIN_PREFIX=mybranch) so that what is left over is recognisably yours.
DOMAIN_PREFIX = re.sub(r"[^A-Za-z0-9-]+", "-", os.environ.get("VIRTSCENARIO_TEST_DOMAIN_PREFIX", "vs-it"))[:20]


def unique_name(label: str) -> str:
    """A domain name no other run or test uses (definitions persist in /etc/libvirt/qemu)."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", label).strip("-")[:24] or "vm"
    return f"{DOMAIN_PREFIX}-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def libvirt_module() -> Any:
    return import_libvirt()


@pytest.fixture()
def test_conn(libvirt_module: Any) -> Iterator[Any]:
    """``test:///default``: in-process and shared by every connection of this process."""
    conn = libvirt_module.open(TEST_URI)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def libvirtd_conn() -> Iterator[Any]:
    """A connection to the real libvirtd (qemu:///system); fails clearly when unreachable."""
    conn = open_libvirtd()
    yield conn
    conn.close()


@pytest.fixture()
def domain_cleanup() -> Iterator[Callable[[Any, str], None]]:
    """Register (conn, name) pairs; each is destroyed and undefined after the test, pass or fail."""
    registered: list[tuple[Any, str]] = []

    def register(conn: Any, name: str) -> None:
        registered.append((conn, name))

    yield register
    errors = []
    for conn, name in reversed(registered):
        try:
            remove_domain(conn, name)
        except Exception as exc:  # noqa: BLE001 - report every leftover, not only the first
            errors.append(f"{name}: {exc}")
    if errors:
        pytest.fail("teardown could not remove: " + "; ".join(errors), pytrace=False)


@pytest.fixture()
def guest_dir() -> Iterator[Path]:
    """A directory for images that QEMU can traverse even when it runs as libvirt-qemu.

    pytest's tmp_path lives under a 0700 directory; with qemu.conf user=root that is
    fine, on a developer's default install it is not.
    """
    path = Path(tempfile.mkdtemp(prefix="virtscenario-it-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def make_qcow2() -> Callable[[Path, str], Path]:
    """Create a small qcow2 image with qemu-img (qemu-utils)."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        pytest.fail("qemu-img is not installed; run scripts/setup.sh", pytrace=False)

    def make(path: Path, size: str = "64M") -> Path:
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), size], check=True,
                       capture_output=True, text=True, timeout=60)
        path.chmod(0o644)
        return path

    return make
