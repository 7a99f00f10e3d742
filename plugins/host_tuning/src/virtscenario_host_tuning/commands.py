"""``virtscenario host check | plan | apply | revert``.

Importing this module costs click only; everything else is imported by the
command that needs it. Errors are one ``Error: ...`` line and exit 1.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Optional

import click

JSON_HELP = "JSON output."
#: This plugin's entry-point name (its own host_plan answer is the plan it applies).
PLUGIN_NAME = "host_tuning"


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from virtscenario.api import VirtscenarioError

        from .engine import EngineError
        from .journal import JournalError
        from .rootfs import RootError
        try:
            return fn(*args, **kwargs)
        except (VirtscenarioError, EngineError, JournalError, RootError) as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and (ctx.find_root().obj or {}).get("debug"):
                raise
            error = click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            setattr(error, "exit_code", getattr(exc, "exit_code", 1))  # noqa: B010 - 130: interrupted, rolled back
            raise error from None
    return wrapper


def _host(ctx: click.Context) -> Any:
    from virtscenario.api import host_root
    return host_root(ctx)


def _where(host: Any) -> str:
    return f"host root {host.root}" if host.is_fake else "this host"


@click.group("host")
def host_group() -> None:
    """Holder of this plugin's host subcommands; register() moves them into the core's ``host`` group.

    Every change is journaled before it is made (/var/lib/virtscenario/host-journal.json);
    'host revert' restores the previous values byte for byte, also after a crash. One
    apply or revert at a time per tree. --host-root DIR (global option) works on a copy
    of a host's /proc, /sys, /etc and /dev under DIR, and nothing outside it.
    """


# -- plan -----------------------------------------------------------------------------------------------
def _complete_scenarios() -> Any:
    from virtscenario.api import complete_scenarios
    return complete_scenarios


def _plan_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("scenario", shell_complete=_complete_scenarios()),
        click.option("--vm", "vms", multiple=True, metavar="NAME",
                     help="A VM in the store to plan for (repeatable): its scenario, memory and settings count."),
        click.option("--all-vms", is_flag=True, help="Plan for every VM in the store."),
        click.option("--output", type=click.Path(file_okay=False), help="Store root (as for create)."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="User settings file (YAML)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override a setting; host.* keys apply to every VM of the plan (repeatable)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _prepare(ctx: click.Context, scenario: str, vms: tuple[str, ...], all_vms: bool, output: Optional[str],
             config_file: Optional[str], sets: tuple[str, ...]) -> tuple[Any, Any, Any]:
    from .inputs import gather
    from .plan import build_plan
    host = _host(ctx)
    inputs = gather(scenario, vms, all_vms, config_file, output, sets, host)
    return host, inputs, build_plan(inputs.requirements, host)


def _other_plugins(inputs: Any, host: Any) -> list[tuple[str, Any]]:
    """host_plan answers of other plugins: shown by 'host plan', never applied by 'host apply'."""
    from virtscenario.api import collect_host_plan
    return [(plugin, change) for plugin, change in collect_host_plan(inputs.requirements, host)
            if plugin != PLUGIN_NAME]


def _action_word(change: Any) -> str:
    word = "advice" if change.advice_only else ("change" if change.needed else "ok")
    return word + ("+reboot" if change.reboot_required and change.needed else "")


def _title(inputs: Any) -> str:
    vms = f" with VMs {', '.join(inputs.vms)}" if inputs.vms else ""
    return f"scenario {inputs.scenario}{vms}"


@host_group.command("plan")
@_plan_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
@_one_line_errors
def plan_cmd(ctx: click.Context, scenario: str, vms: tuple[str, ...], all_vms: bool, output: Optional[str],
             config_file: Optional[str], sets: tuple[str, ...], as_json: bool) -> None:
    """Show every host knob SCENARIO (and the --vm VMs) need: current -> target, why, from which scenario.

    Nothing is changed. Conflicting requirements are resolved by documented rules
    and listed; requirements this host cannot meet end with one Error line (exit 1).

    \b
    Examples:
      virtscenario host plan computation
      virtscenario host plan desktop --vm work --vm lab
      virtscenario host plan securevm --json
    """
    host, inputs, plan = _prepare(ctx, scenario, vms, all_vms, output, config_file, sets)
    others = _other_plugins(inputs, host)
    if as_json:
        rows = [{**_change_json(a.change), "reference": a.reference, "plugin": "host_tuning"} for a in plan.actions]
        rows += [{**_change_json(c), "reference": "", "plugin": p} for p, c in others]
        click.echo(json.dumps({"scenario": scenario, "vms": inputs.vms,
                               "host_root": str(host.root) if host.is_fake else None, "changes": rows,
                               "conflicts": plan.conflicts, "refusals": plan.refusals}, indent=2))
    else:
        _print_plan(plan, others, inputs, host)
    if plan.refusals:
        more = f" (and {len(plan.refusals) - 1} more)" if len(plan.refusals) > 1 else ""
        raise click.ClickException(plan.refusals[0] + more)


def _change_json(change: Any) -> dict[str, Any]:
    return {"knob": change.knob, "path": change.path, "current": change.current, "target": change.target,
            "needed": change.needed and not change.advice_only, "reason": change.reason, "source": change.source,
            "reboot_required": change.reboot_required, "advice_only": change.advice_only,
            "conflict": change.conflict}


def _print_plan(plan: Any, others: list[tuple[str, Any]], inputs: Any, host: Any) -> None:
    import shutil
    import textwrap

    from virtscenario.api import format_table as table
    width = shutil.get_terminal_size((80, 24)).columns  # COLUMNS, else the terminal, else 80
    click.echo("\n".join(textwrap.wrap(f"Host plan for {_title(inputs)} on {_where(host)}:", width,
                                        subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)))
    rows = [[a.change.knob, a.change.current or "-", a.change.target or "-", _action_word(a.change),
             a.change.source, a.change.reason] for a in plan.actions]
    rows += [[c.knob, c.current or "-", c.target or "-", f"plugin {p}, not applied", c.source, c.reason]
             for p, c in others]
    if rows:
        click.echo(table(["KNOB", "CURRENT", "TARGET", "ACTION", "SOURCE", "WHY"], rows))
    else:
        click.echo("  (no host requirement)")
    if plan.conflicts:
        click.echo("\nConflicts (resolved by rule):")
        for line in plan.conflicts:
            click.echo(f"  {line}")
    needed = plan.needed
    if needed:
        vms = "".join(f" --vm {v}" for v in inputs.vms)
        click.echo(f"\n{len(needed)} change(s) to make: virtscenario host apply {inputs.scenario}{vms}")
    elif not plan.refusals:
        click.echo("\nThe host already matches: nothing to apply.")


# -- apply ----------------------------------------------------------------------------------------------
def _confirm(question: str) -> None:
    try:
        answer = click.confirm(question, default=False)
    except click.Abort:
        click.echo()  # end the unanswered prompt line
        raise click.ClickException("no answer (stdin is closed or not a terminal): nothing was changed; "
                                   "use --yes to apply without asking") from None
    if not answer:
        raise click.ClickException("not confirmed: nothing was changed")


def build_steps(plan: Any, host: Any, persist: bool, backend: str, scenario: str,
                vms: list[str]) -> list[Any]:
    """The ordered steps of an apply: tunables, mounts, module options, then persisted files."""
    from . import persist as persist_mod
    from . import rootfs
    from .engine import Step
    steps = [Step("tunable", a.change.path, a.data, a.change.knob) for a in plan.needed if a.op == "tunable"]
    steps += [Step("mount", a.change.path, a.data, a.change.knob) for a in plan.needed if a.op == "mount"]
    steps += [Step("pci-driver", a.change.path, a.data, a.change.knob) for a in plan.needed if a.op == "pci-driver"]
    files: dict[str, bytes] = {a.change.path: a.data for a in plan.needed if a.op == "file"}
    if persist:
        from .vfio import persist_files
        files.update(persist_files(host, plan.actions))
        if backend == "tuned":
            files.update(persist_mod.tuned_backend(host, plan.actions, scenario, vms))
        else:
            files.update(persist_mod.files_backend(host, plan.actions))
    for path, content in files.items():
        if rootfs.read_file(host, path) == content:  # through real directories only, as it will be written
            continue
        steps.append(Step("file", path, content, f"write {path}"))
    return steps


@host_group.command("apply")
@_plan_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--persist", is_flag=True, help="Also make the values survive a reboot (see --backend).")
@click.option("--backend", type=click.Choice(["files", "tuned"]), default="files", show_default=True,
              help="files: sysctl.d, tmpfiles.d, a udev rule, fstab; tuned: a tuned profile (implies --persist, "
                   "not activated).")
@click.pass_context
@_one_line_errors
def apply_cmd(ctx: click.Context, scenario: str, vms: tuple[str, ...], all_vms: bool, output: Optional[str],
              config_file: Optional[str], sets: tuple[str, ...], yes: bool, persist: bool, backend: str) -> None:
    """Apply the host plan of SCENARIO (and the --vm VMs): journaled, verified, rolled back on failure.

    Needs root. Module options (SEV) are written to /etc/modprobe.d and apply at the
    next boot or module load: virtscenario never reloads a module. Undo with 'host revert'.

    \b
    Examples:
      virtscenario host apply computation
      virtscenario host apply computation --all-vms --yes --persist
      virtscenario host apply securevm --backend tuned
    """
    host = _host(ctx)
    if not host.is_root_user():
        raise click.ClickException("host apply changes the running kernel and /etc: run it as root "
                                   "(nothing was changed)")
    from .engine import host_lock
    with host_lock(host):  # planned under the lock: what another apply changed is seen
        _apply_locked(ctx, scenario, vms, all_vms, output, config_file, sets, yes, persist, backend)


def _apply_locked(ctx: click.Context, scenario: str, vms: tuple[str, ...], all_vms: bool, output: Optional[str],
                  config_file: Optional[str], sets: tuple[str, ...], yes: bool, persist: bool, backend: str) -> None:
    from . import journal
    from .engine import require_finished
    host, inputs, plan = _prepare(ctx, scenario, vms, all_vms, output, config_file, sets)
    require_finished(journal.load(host))  # an untrusted or unfinished journal stops here, before anything
    if plan.refusals:
        more = f" (and {len(plan.refusals) - 1} more)" if len(plan.refusals) > 1 else ""
        raise click.ClickException(plan.refusals[0] + more + " (nothing was changed)")
    persist = persist or backend == "tuned"
    steps = build_steps(plan, host, persist, backend, scenario, inputs.vms)
    advice = [a.change for a in plan.actions if a.change.advice_only and a.change.needed]
    if not steps:
        click.echo(f"Nothing to change: {_where(host)} already matches {_title(inputs)}.")
        _print_advice(advice)
        return
    from . import facts
    env = facts.environment(host)
    if env.container:
        click.echo(f"Warning: running inside a container ({env.container}): these changes affect the kernel "
                   "shared by the whole machine, if it lets them through.", err=True)
    click.echo(f"Host changes for {_title(inputs)} on {_where(host)}:")
    current = {a.change.path: a.change for a in plan.needed}
    for step in steps:
        if step.kind == "tunable":
            click.echo(f"  {step.label}: {current[step.path].current if step.path in current else '?'} -> "
                       f"{step.data.decode().strip()}  ({step.path})")
        elif step.kind == "mount":
            click.echo(f"  mount hugetlbfs on {step.path}" + (f" ({step.data.decode()})" if step.data else ""))
        elif step.kind == "pci-driver":
            now = current[step.path].current
            lost = "no host driver had it" if now in ("", "(no driver)") else f"{now} loses it"
            click.echo(f"  bind {os.path.basename(step.path)} to {step.data.decode()} ({lost})")
        else:
            click.echo(f"  write {step.path}")
    if not yes:
        _confirm(f"Apply these {len(steps)} change(s)?")
    from .engine import JOURNAL, apply_locked
    apply_locked(host, steps, {"scenario": scenario, "vms": inputs.vms, "persist": persist, "backend": backend})
    click.echo(f"Applied {len(steps)} change(s); previous values journaled in {JOURNAL}"
               f"{' (under ' + str(host.root) + ')' if host.is_fake else ''}. Undo: virtscenario host revert")
    if persist and backend == "tuned":
        from .persist import tuned_profile_name
        click.echo(f"tuned profile written, not activated: tuned-adm profile {tuned_profile_name(scenario)}")
    if any(c.reboot_required for c in plan.changes if c.needed):
        click.echo("Some changes take effect at the next boot (or module load with no VM running).")
    _print_advice(advice)


def _print_advice(advice: list[Any]) -> None:
    if not advice:
        return
    click.echo("Advice (not done by virtscenario):")
    for change in advice:
        reboot = " [reboot]" if change.reboot_required else ""
        click.echo(f"  {change.knob}: {change.target}{reboot} - {change.reason}")


# -- revert ---------------------------------------------------------------------------------------------
@host_group.command("revert")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@_one_line_errors
def revert_cmd(ctx: click.Context, yes: bool) -> None:
    """Restore every value and file recorded in the host journal, then remove the journal.

    Safe to run twice, and after a crash of apply or revert: without a journal there is
    nothing to revert (exit 0); temporary files an interrupted run left are removed.

    \b
    Examples:
      virtscenario host revert
      virtscenario host revert --yes
    """
    from . import journal
    from .engine import JOURNAL, host_lock, revert_locked
    host = _host(ctx)
    where = f" (under {host.root})" if host.is_fake else ""
    if not host.is_root_user():
        if not journal.exists(host):
            click.echo(f"Nothing to revert: no host journal at {JOURNAL}{where}.")
            return
        raise click.ClickException("host revert changes the running kernel and /etc: run it as root "
                                   "(nothing was changed)")
    with host_lock(host):
        loaded = journal.load(host)  # validated as a whole before anything is touched
        if loaded is None:
            removed = journal.leftovers(host, None)
            cleaned = f" Removed {len(removed)} temporary file(s) an interrupted run left." if removed else ""
            click.echo(f"Nothing to revert: no host journal at {JOURNAL}{where}.{cleaned}")
            return
        click.echo(f"Will restore on {_where(host)}:")
        for entry in loaded.entries:
            if isinstance(entry, journal.TunableEntry):
                click.echo(f"  {entry.path}: {entry.applied or '?'} -> {entry.restore.strip()}")
            elif isinstance(entry, journal.FileEntry):
                click.echo(f"  {'restore' if entry.existed else 'remove'} {entry.path}")
            elif isinstance(entry, journal.PciDriverEntry):
                click.echo(f"  {entry.address}: back to {entry.driver or 'no driver'} (driver_override "
                           f"{entry.override.strip()})")
            else:
                click.echo(f"  unmount {entry.path}")
        if not yes:
            _confirm(f"Revert these {len(loaded.entries)} change(s)?")
        removed = journal.leftovers(host, loaded)
        if removed:
            click.echo(f"Removed {len(removed)} temporary file(s) an interrupted run left.")
        count, notes = revert_locked(host, loaded)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Reverted {count} change(s); journal removed.")


def register(cli: click.Group) -> None:
    """Add plan, apply and revert to the core's ``host`` group (which holds ``check``)."""
    from virtscenario.api import command_group
    group = command_group(cli, "host")
    for name, command in host_group.commands.items():
        group.add_command(command, name)
