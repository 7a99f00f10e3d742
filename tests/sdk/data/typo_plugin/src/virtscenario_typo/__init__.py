"""Test fixture: a hook name with a typo (register_scenario, not register_scenarios)."""

from virtscenario.api import Choice, Scenario, hookimpl


@hookimpl
def register_scenario():
    return [Scenario("typo", "never registered", "1.0",
                     (Choice("vm.vcpus", 1, "test", "https://libvirt.org/formatdomain.html"),))]
