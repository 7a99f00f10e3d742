"""Test fixture: a plugin that needs plugin API 2.0, which this core does not provide."""

from virtscenario.api import Choice, Scenario, hookimpl

VIRTSCENARIO_API = (2, 0)


@hookimpl
def register_scenarios():
    return [Scenario("future", "needs API 2.0", "1.0",
                     (Choice("vm.vcpus", 1, "test", "https://libvirt.org/formatdomain.html"),))]
