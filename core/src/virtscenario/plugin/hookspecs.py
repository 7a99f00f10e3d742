"""Hook specifications: the contract between the core and every plugin.

Each hook is documented with its contract here and in ``docs/plugin-hooks.md``
(one section per hook, with a tested example). Calls go through pluggy's own loop:
``tryfirst`` implementations run first, then normal ones, then ``trylast``; inside a
tier in **ascending plugin-name order** whatever the registration order; hook
wrappers (``wrapper=True``) run around them. Where two plugins contribute the same
name or setting, the first in that order wins and the conflict is reported naming
both. A failure in a registration hook (``register_scenarios``,
``register_settings``, ``domain_rules``, ``register_commands``, ``host_checks``)
disables only that plugin for the run; in any other hook it stops the command with
one line naming the plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import pluggy

from .. import PROJECT_NAME

if TYPE_CHECKING:  # pragma: no cover
    import click
    from lxml import etree

    from ..domain.context import BuildContext
    from ..domain.model import Domain
    from ..host.hypervisor import DomainCaps
    from ..host.root import HostRoot
    from ..settings.types import Choice, Settings, SettingSpec
    from ..types import DomainRule, GuestCheck, HostChange, HostCheck, HostRequirement, Scenario
    from ..vm.verify import Guest, VerifiedVm


hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_scenarios() -> Iterable[Scenario]:
    """Contribute scenarios.

    Called once per process, the first time scenarios are listed or resolved.

    :return: an iterable of :class:`virtscenario.api.Scenario`.

    Not firstresult: every plugin's scenarios are collected. Two scenarios with
    the same name: the first plugin in call order wins, the other is reported.

    Example::

        @hookimpl
        def register_scenarios():
            yield Scenario(name="lab", summary="Throw-away lab VM", version="1.0",
                           settings=(Choice("disk.cache", "unsafe", "lab data is disposable",
                                            "https://libvirt.org/formatdomain.html"),))
    """


@hookspec
def register_settings() -> Iterable[SettingSpec]:
    """Declare new setting keys (beyond the core's) that scenarios and users may set.

    Called once per process, before any scenario is resolved.

    :return: an iterable of :class:`virtscenario.api.SettingSpec`, each with the
        rationale and reference of its default. A key already declared (by the core
        or another plugin) disables this plugin for the run, naming both owners.

    Example::

        @hookimpl
        def register_settings():
            yield SettingSpec("lab.ttl_days", "int", 7, "Days before the lab VM is deleted",
                              rationale="a week covers a lab exercise", reference="https://wiki/lab")
    """


@hookspec
def scenario_overrides(scenario: Scenario) -> Iterable[Choice]:
    """Adjust another plugin's scenario: return choices that replace its settings.

    Called each time ``scenario`` is resolved, after its own choices and before
    the user's file and flags (which still win). Use it for site policy, e.g.
    "every VM on this site uses bridge br0".

    :param scenario: the scenario being resolved.
    :return: choices, each with its rationale and reference. When two plugins
        set the same key, the first in call order wins and the conflict is
        reported naming both.

    Example::

        @hookimpl
        def scenario_overrides(scenario):
            if scenario.name == "desktop":
                yield Choice("graphics.type", "spice", "site uses virt-viewer", "https://site/wiki")
    """


@hookspec
def customize_model(domain: Domain, settings: Settings, context: BuildContext) -> None:
    """Adjust the VM model after the core built it from the resolved settings.

    Called once per generated VM, before semantic rules and rendering. Mutate
    ``domain`` in place; report adaptations with ``context.note(...)``.

    :param domain: the :class:`virtscenario.api.Domain` model.
    :param settings: the resolved settings (read-only).
    :param context: scenario, host facts, domain capabilities and notes.
    :return: nothing. Not firstresult: every implementation runs.

    Example::

        @hookimpl
        def customize_model(domain, settings, context):
            if context.scenario.name == "lab":
                domain.description = "disposable"
    """


@hookspec
def postprocess_xml(root: etree._Element, settings: Settings, context: BuildContext) -> None:
    """Edit the rendered lxml tree in place (escape hatch for XML the model lacks).

    Called once per generated VM after rendering and before schema validation,
    so whatever a plugin adds is still validated.

    :param root: the ``<domain>`` element.
    :return: nothing. Not firstresult: every implementation runs.

    Runs for every VM, whatever its scenario: test ``context.scenario.name``.

    Example::

        @hookimpl
        def postprocess_xml(root, settings, context):
            if context.scenario.name == "lab":
                root.find("devices").append(etree.Element("panic", model="isa"))
    """


@hookspec
def domain_rules() -> Iterable[DomainRule]:
    """Contribute semantic rules checked on every generated VM model.

    Called once per process. Each rule's ``check(domain, settings)`` yields
    problem messages; errors refuse the VM with the rule's explanation,
    warnings are printed as notes. Rules are checked on every VM: a rule for one
    scenario tests ``domain.metadata.scenario``.

    :return: an iterable of :class:`virtscenario.api.DomainRule`.

    Example::

        @hookimpl
        def domain_rules():
            yield DomainRule("lab-small", "lab VMs stay small", "site policy",
                             lambda d, s: ["more than 8 vCPUs"]
                             if d.metadata.scenario == "lab" and d.vcpus > 8 else [])
    """


@hookspec(firstresult=True)
def select_machine(caps: Optional[DomainCaps], settings: Settings) -> Optional[str]:
    """Choose the machine type written to ``<os><type machine=...>``.

    Called once per generated VM. Stops at first non-None result. The core's
    implementation (``trylast``) returns the newest versioned q35 from domain
    capabilities when connected, and the ``vm.machine`` setting (``q35``) offline.

    :param caps: domain capabilities, or ``None`` offline.
    :return: a machine name, or ``None`` to let the next implementation decide.

    Example::

        @hookimpl(tryfirst=True)
        def select_machine(caps, settings):
            return "pc-q35-7.2"   # keep a fleet on one versioned machine
    """


@hookspec(firstresult=True)
def select_launch_security(caps: Optional[DomainCaps], settings: Settings) -> Optional[str]:
    """Choose the launch-security type: ``none``, ``sev``, ``sev-es``, ``sev-snp`` or ``tdx``.

    Called once per generated VM. Stops at first non-None result. The core's
    implementation (``trylast``) honours ``launch_security.type``; for ``auto`` it
    picks the strongest type domain capabilities offer (SEV-SNP, SEV-ES, SEV on
    AMD; TDX on Intel) and refuses with one line when there is none. The answer is
    then checked against the host's firmware descriptors (``BuildContext.firmware``):
    with ``auto``, ``sev-es`` becomes ``sev`` when no descriptor offers ``amd-sev-es``
    or they cannot be read; a type the user named is refused instead.

    Example::

        @hookimpl(tryfirst=True)
        def select_launch_security(caps, settings):
            return "sev-es" if caps and caps.sev.supported else None
    """


@hookspec
def host_checks() -> Iterable[HostCheck]:
    """Contribute host checks for ``virtscenario host check``.

    Called once per ``host check`` run (a core command). Each :class:`HostCheck`'s
    ``run(host)`` receives a :class:`virtscenario.api.HostRoot` and returns a
    :class:`CheckResult`; an exception becomes a FAIL naming the plugin.

    Example::

        @hookimpl
        def host_checks():
            yield HostCheck("tun", "/dev/net/tun present",
                            lambda host: CheckResult("tun", "PASS" if host.exists("/dev/net/tun") else "FAIL", "..."))
    """


@hookspec
def host_plan(requirements: Sequence[HostRequirement], host: HostRoot) -> Iterable[HostChange]:
    """Turn scenario host requirements into planned host changes.

    Called by ``virtscenario create`` (plan shown, not applied) and by the
    ``host plan``/``host apply`` commands. Reads current values through
    ``host`` (which honours ``--host-root``); must not write anything.

    :param requirements: every ``host.*`` choice of the scenarios involved, with
        the scenario and VM that asked for it.
    :return: :class:`HostChange` items (current -> target, reason, source).

    Example::

        @hookimpl
        def host_plan(requirements, host):
            for req in requirements:
                if req.key == "host.swappiness":
                    yield HostChange("vm.swappiness", "/proc/sys/vm/swappiness",
                                     host.read("/proc/sys/vm/swappiness").strip(), str(req.value),
                                     req.rationale, req.scenario)
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``virtscenario`` CLI.

    Called only when a command that is not built in is looked up or when help
    lists commands, so plugins cost nothing for ``--version``. An exception
    disables the plugin for the run and removes what it added before raising.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello")
    """


@hookspec
def verify_checks(vm: VerifiedVm, guest: Guest) -> Iterable[GuestCheck]:
    """Contribute rows to ``virtscenario verify``: what the scenario decided against what the guest sees.

    Called once per ``verify`` run, after the core's checks, while the guest's agent answers.
    ``vm`` is the VM of the store (``name``, ``scenario``, ``settings`` as vm.yaml records them,
    ``domain``: the stored domain.xml as an lxml element); ``guest`` runs commands in the guest
    (``guest.run(argv)`` -> exitcode, stdout, stderr; ``guest.read(path)``; ``guest.is_linux``).
    Runs for every VM: test ``vm.scenario``. An exception becomes a MISMATCH row naming the plugin.

    :return: :class:`virtscenario.api.GuestCheck` rows (``ok=None`` for a check that does not apply).

    Example::

        @hookimpl
        def verify_checks(vm, guest):
            if vm.scenario == "lab" and guest.is_linux:
                seen = guest.read("/proc/sys/kernel/hostname").strip()
                yield GuestCheck("hostname", vm.name, seen, seen == vm.name)
    """
