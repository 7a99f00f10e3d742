"""The domain's sections, one module each, in the order their build steps run.

Every section module has:

* ``SPECS``: the setting keys it owns (whatever their prefix: ``vm.memory`` lives in
  :mod:`.memory`, next to the ``<memory>`` element it becomes);
* its model records (re-exported by :mod:`virtscenario.domain.model`);
* ``build(dom, settings, ctx, plan)``: settings -> model;
* one ``render_*`` function per element it writes; :mod:`virtscenario.domain.render`
  lists them in libvirt's element order.

A key that has no effect in the resolved combination must say so with a note
(:func:`unused`): a value the user or the scenario gave is never silently ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from . import (
    clock,
    cpu,
    devices,
    disks,
    display,
    features,
    filesystem,
    firmware,
    guestos,
    host,
    hostdevs,
    lifecycle,
    memory,
    nics,
    numa,
    security,
    vm,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...settings.types import Settings, SettingSpec
    from ..context import BuildContext

#: Build order: later sections read what earlier ones decided (disks use the iothreads
#: cpu declared; controllers follow the disks and channels that need them).
SECTIONS = (vm, guestos, memory, cpu, numa, firmware, features, clock, lifecycle, disks, filesystem, nics, display,
            hostdevs, devices, security, host)


def all_specs() -> Iterator[SettingSpec]:
    for section in SECTIONS:
        yield from section.SPECS


def unused(ctx: BuildContext, settings: Settings, key: str, why: str) -> None:
    """Note that ``key`` has no effect here, when someone (scenario, plugin, file, flag) set it to a
    value that asks for something (unset, off, none and 0 ask for nothing, so nothing is ignored)."""
    item = settings.get(key)
    if item is None or item.layer == "default" or item.value in (None, False, 0, "none", "off"):
        return
    from ...settings.display import display_value
    ctx.note(f"{key}={display_value(_spec_index().get(key), item.value)} has no effect here: {why}")


_SPEC_INDEX: dict[str, SettingSpec] = {}


def _spec_index() -> dict[str, SettingSpec]:
    if not _SPEC_INDEX:
        _SPEC_INDEX.update((spec.key, spec) for spec in all_specs())
    return _SPEC_INDEX
