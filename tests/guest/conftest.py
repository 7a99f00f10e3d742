"""Fixtures for tests that boot the test guest (scripts/build-test-guest.sh) on the real libvirtd.

The guest is built once per session into ``$VIRTSCENARIO_TEST_GUEST_DIR`` (default
/var/cache/virtscenario/test-guest as root) and reused across sessions while its inputs
are unchanged. A build failure or an unreachable libvirtd fails the tests, never skips them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from .guest import BuildResult, build_guest_image, default_cache_dir

SYSTEM_URI = os.environ.get("VIRTSCENARIO_TEST_LIBVIRTD_URI", "qemu:///system")


@pytest.fixture(scope="session")
def guest_build() -> BuildResult:
    directory = default_cache_dir()
    try:
        result = build_guest_image(directory)
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"cannot build the test guest in {directory}: {exc}", pytrace=False)
    print(f"test guest: build step took {result.seconds:.1f} s ({result.output.strip()})")
    return result


@pytest.fixture(scope="session")
def guest_libvirtd() -> Iterator[Any]:
    """The real libvirtd; fails with one line when unreachable (scripts/test.sh or .ci/run start it)."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not reachable on {SYSTEM_URI}: {exc.get_error_message()}. "
                    "Run the suite with scripts/test.sh (or .ci/run), which starts virtlogd and libvirtd.",
                    pytrace=False)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def guest_workdir() -> Iterator[Path]:
    """Overlay and console log live here: 0755 so QEMU can reach them as libvirt-qemu too."""
    path = Path(tempfile.mkdtemp(prefix="virtscenario-guest-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
