"""Golden domain XML per scenario, for a fixed host (AMD EPYC, 8 cores x 2 threads, 64 GiB).

The goldens are reviewed by reading them, not regenerated blindly. After an intended
change, rewrite them with ``VIRTSCENARIO_REGEN_GOLDEN=1 pytest tests/scenarios/test_golden.py``
and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree
from virtscenario.domain.validate import load_schema, validate_tree

from .support import SCENARIOS, gen

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("VIRTSCENARIO_REGEN_GOLDEN") == "1"


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_xml(name: str) -> None:
    generated = gen(name)
    path = GOLDEN / f"{name}.xml"
    if REGEN:
        path.write_bytes(generated.xml)
    assert path.is_file(), f"{path} is missing: VIRTSCENARIO_REGEN_GOLDEN=1 writes it (then read it!)"
    assert generated.xml.decode() == path.read_text(), \
        f"{name}: generated XML differs from {path}; if intended, regenerate and review the diff"
    assert generated.validated, "libvirt's RelaxNG schema must be installed for this test (libvirt0)"


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_is_relaxng_valid(name: str) -> None:
    assert load_schema() is not None, "libvirt's RelaxNG schema (/usr/share/libvirt/schemas) is not installed"
    root = etree.fromstring((GOLDEN / f"{name}.xml").read_bytes())
    assert validate_tree(root, what=f"golden {name}") is True


@pytest.mark.parametrize("name", SCENARIOS)
def test_generation_is_deterministic(name: str) -> None:
    assert gen(name).xml == gen(name).xml


def test_golden_notes_are_the_expected_adaptations() -> None:
    """The goldens are offline with a known host: what the core adapted is said, and only that."""
    desktop = [n.message for n in gen("desktop").notes]
    assert len(desktop) == 1 and "refuses <readonly/> on virtiofs" in desktop[0]
    computation = [n.message for n in gen("computation").notes]
    assert computation == ["cpu.iothreads=4 reduced to 1: one iothread per virtio disk",
                           "vm.on_crash=restart: without a panic device (panic.model) QEMU does not see a guest "
                           "crash, so the action applies only to crashes QEMU itself detects"]
    assert gen("securevm").notes == []
