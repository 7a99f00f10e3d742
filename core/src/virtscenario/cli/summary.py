"""What ``create`` says by default: one screen (about 40 lines at 80 columns).

What was written where; the scenario's decisions that differ from the defaults (which
follow libvirt and virt-install: each default's rationale says so) and every value the
user set, each with its reason on one line; a one-line host plan summary; the next
command. ``--explain`` prints every setting with its source, reason and reference
instead, ``--json`` the whole result for scripts, ``--quiet`` nothing but errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .output import one_line, setting_json, terminal_width, wrapped

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from ..domain.generate import Generated
    from ..settings.registry import SettingRegistry

#: Rows of decisions shown by default; the rest is one line pointing at --explain.
MAX_DECISIONS = 22


Row = tuple[str, str, str]


def decisions(gen: Generated, registry: SettingRegistry) -> tuple[list[Row], list[Row]]:
    """(scenario decisions that differ from the default, values the user set): (key, value, reason)."""
    from ..settings.display import display_value
    decided, by_user = [], []
    for key in sorted(gen.settings):
        item = gen.settings[key]
        if key.startswith("host."):
            continue  # summarised by the host plan line
        spec = registry.find(key)
        row = (key, display_value(spec, item.value), item.rationale)
        if item.by_user or item.layer == "adapted":
            by_user.append(row)
        elif item.layer in ("scenario", "plugin") and spec is not None and item.value != spec.default \
                and not (spec.default is None and item.value in (False, "none", 0)):
            # (an explicit "off" where the default is "unset" is what libvirt does anyway)
            decided.append(row)
    return decided, by_user


def render(gen: Generated, registry: SettingRegistry, directory: Path, written: list[str], changes: list[Any],
           defined_on: Optional[str], started: bool, width: Optional[int] = None,
           argv: Optional[list[str]] = None) -> str:
    width = width or terminal_width()
    sc = gen.provided.scenario
    # Paths and commands wrap (never cut): the user must be able to copy them.
    lines = wrapped(f"Created {gen.domain.name} (scenario {sc.name} {sc.version}) in", width)
    lines += wrapped(f"{directory}/: " + ", ".join(_short(text, directory) for text in written), width, "  ")
    if defined_on:
        lines += wrapped(f"{'Started' if started else 'Defined'} {gen.domain.name} on {defined_on}", width, "  ")
    decided, by_user = decisions(gen, registry)
    key_w = min(26, max([len(k) for k, _v, _r in decided + by_user] or [10]))
    val_w = min(16, max([len(v) for _k, v, _r in decided + by_user] or [5]))

    def row(key: str, value: str, reason: str) -> str:
        head = f"  {one_line(key, key_w):<{key_w}}  {one_line(value, val_w):<{val_w}}  "
        return head + one_line(reason, max(10, width - len(head)))

    if decided:
        lines.append(one_line(f"What {sc.name} decides differently from libvirt's and virt-install's defaults:",
                              width))
        lines += [row(*r) for r in decided[:MAX_DECISIONS]]
        if len(decided) > MAX_DECISIONS:
            lines.append(f"  ... and {len(decided) - MAX_DECISIONS} more")
    if by_user:
        lines.append("What you set (or the hypervisor required):")
        lines += [row(*r) for r in by_user]
    needed = [c for _p, c in changes if c.needed and not c.advice_only]
    advice = [c for _p, c in changes if c.needed and c.advice_only]
    if needed or advice:
        what = ", ".join(part for part in (_count(len(needed), "change") + " recommended" if needed else "",
                                           _count(len(advice), "boot option") + " advised" if advice else "")
                         if part)
        lines += wrapped(f"Host: {what}: virtscenario host plan {sc.name} --vm {gen.domain.name}", width)
    lines += wrapped("Every setting with its source, reason and reference: add --explain", width)
    lines += wrapped(next_step(gen, directory, defined_on, started, argv), width)
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _short(line: str, directory: Path) -> str:
    """``Wrote /store/vm/domain.xml`` -> ``domain.xml``; other lines as they are."""
    for verb, suffix in (("Wrote ", ""), ("Created image ", " (new image)"), ("Created volume ", " (new volume)")):
        if line.startswith(verb):
            path = line[len(verb):]
            prefix = f"{directory}/"
            return (path[len(prefix):] if path.startswith(prefix) else path) + suffix
    return line


def next_step(gen: Generated, directory: Path, defined_on: Optional[str], started: bool,
              argv: Optional[list[str]] = None) -> str:
    """The command to run next. ``argv``: the create command as given (without the program name)."""
    name = gen.domain.name
    if started and defined_on:
        graphics = gen.domain.devices.graphics
        if graphics and graphics[0].type in ("spice", "vnc"):
            return f"Next: virt-viewer --connect {defined_on} {name}"
        return f"Next: virsh --connect {defined_on} console {name}"
    if defined_on:
        return f"Next: virsh --connect {defined_on} start {name}"
    if any(d.encrypted for d in gen.disks):
        # The disks' libvirt secrets must exist before the domain starts: create defines them.
        # The same command again, so that every value the user gave stays (--force keeps the
        # VM's identity, images and keys).
        import shlex
        if argv is None:
            argv = ["create", gen.provided.scenario.name, "--name", name, "--output", str(directory.parent)]
        again = [a for a in argv if a not in ("--define", "--start", "--force", "--dry-run")]
        return "Next: " + shlex.join(["virtscenario", *again, "--force", "--start"])
    return f"Next: virsh define {directory}/domain.xml && virsh start {name}"


def as_json(gen: Generated, directory: Path, written: list[str], changes: list[Any], defined_on: Optional[str],
            started: bool) -> dict[str, Any]:
    sc = gen.provided.scenario
    return {
        "name": gen.domain.name, "uuid": gen.identity.uuid, "scenario": sc.name, "scenario_version": sc.version,
        "plugin": gen.provided.distribution, "directory": str(directory), "written": written,
        "images": [{"path": i.path, "format": i.format, "size": i.size, "options": list(i.options),
                    "encrypted": i.encrypt} for i in gen.images],
        "settings": [setting_json(k, gen.settings[k]) for k in sorted(gen.settings)],
        "notes": [{"level": n.level, "message": n.message, "source": n.source} for n in gen.notes],
        "host_plan": [{"plugin": p, "knob": c.knob, "current": c.current, "target": c.target, "needed": c.needed,
                       "reason": c.reason, "source": c.source, "advice_only": c.advice_only} for p, c in changes],
        "defined_on": defined_on, "started": started,
    }
