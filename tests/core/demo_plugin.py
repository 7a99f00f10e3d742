"""A test-only scenario plugin that exercises many core settings."""

from __future__ import annotations

from virtscenario.api import Choice, Scenario, hookimpl

REF = "https://libvirt.org/formatdomain.html"


def _c(key: str, value: object) -> Choice:
    return Choice(key, value, f"demo decides {key}", REF)


DEMO = Scenario(
    name="demo",
    summary="Test scenario for the core's own tests",
    version="1.2",
    settings=(
        _c("vm.vcpus", 4), _c("vm.memory", "1GiB"), _c("cpu.iothreads", 1), _c("disk.cache", "writeback"),
        _c("memory.source", "memfd"), _c("memory.access", "shared"), _c("filesystem.share", True),
        _c("tpm.model", "tpm-crb"), _c("sound.model", "ich9"), _c("firmware.secure_boot", True),
    ),
    host=(Choice("host.swappiness", 20, "demo wants less swapping", "https://docs.kernel.org"),),
)

PLAIN = Scenario(name="plain", summary="Core defaults only", version="0.1")


@hookimpl
def register_scenarios():
    return [DEMO, PLAIN]
