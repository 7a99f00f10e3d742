"""Private libvirt test-driver connections (``test:///DIR/node.xml``), unlike the shared ``test:///default``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union


def libvirt_node_xml(cpus: int = 8, sockets: int = 1, threads_per_core: int = 1, memory_kib: int = 16 * 1024**2,
                     domains: Sequence[str] = ()) -> str:
    """A custom test-driver file: node topology, memory and optional inline domains."""
    cores = cpus // (sockets * threads_per_core)
    return ("<node>\n  <cpu>\n    <nodes>1</nodes>\n"
            f"    <sockets>{sockets}</sockets>\n    <cores>{cores}</cores>\n    <threads>{threads_per_core}</threads>\n"
            f"    <active>{cpus}</active>\n    <mhz>3000</mhz>\n    <model>x86_64</model>\n  </cpu>\n"
            f"  <memory>{memory_kib}</memory>\n" + "".join(domains) + "</node>\n")


def open_test_connection(directory: Union[str, Path], **node: Any) -> Any:
    """Open ``test:///DIR/node.xml``: private state, unlike ``test:///default`` (shared per process)."""
    try:
        import libvirt
    except ImportError:  # pragma: no cover - depends on the environment
        import pytest
        pytest.fail("virtscenario_libvirt_conn needs libvirt-python (pip install libvirt-python; "
                    "it builds against libvirt-dev and pkg-config)")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    path = Path(directory).absolute() / "node.xml"
    path.write_text(libvirt_node_xml(**node))
    return libvirt.open(f"test://{path}")


