"""Every declared key is live (in the spirit of virt-manager's tests/test_checkprops.py).

For every setting key, some built-in scenario and some value different from the one it
resolves to must change something visible: the domain XML, the image plan, the host
requirements (the host plan's input), or a note that names the key (saying why it has no
effect here), or a refusal that names it. A key nobody reads fails this test.
"""

from __future__ import annotations

from typing import Any

import pytest
import virtscenario_computation
import virtscenario_desktop
import virtscenario_host_tuning
import virtscenario_securevm
import virtscenario_testing
from virtscenario.domain.generate import Request, generate
from virtscenario.errors import VirtscenarioError
from virtscenario.plugin.hooks import Catalog
from virtscenario.testing import make_plugin_manager
from virtscenario.vm.identity import Identity

SCENARIOS = ("desktop", "computation", "securevm", "testing")
#: Values to try for free-form string keys (one of them must differ from the scenario's).
STRINGS = {
    "vm.emulator": ["/usr/bin/qemu-system-x86_64"],
    "vm.title": ["probe title"],
    "vm.machine": ["pc-q35-7.2"],
    "cpu.model": ["EPYC"],
    "cpu.features": ["-svm", "avx2"],
    "graphics.listen": ["none", "0.0.0.0"],
    "graphics.keymap": ["de"],
    "network.default": ["user", "network=other"],
    "filesystem.source_dir": ["/srv/probe"],
    "filesystem.target": ["probe_tag"],
    "disk.directory": ["/srv/probe-images"],
    "host.isolated_cpus": ["2-3"],
    "host.hugepages_nodes": ["0"],
    "os.id": ["win11", "linux"],
}
IDENTITY = ("0b6c2a56-4d61-4c1e-9b57-5a1f43a1c0de", ["52:54:00:00:00:01"])


def candidates(spec: Any, current: Any) -> list[Any]:
    if spec.kind == "choice":
        return [c for c in spec.choices if c != current]
    if spec.kind == "bool":
        return [True, False] if current is None else [not current]
    if spec.kind == "int":
        lo, hi = spec.minimum if spec.minimum is not None else 0, spec.maximum or 10**6
        return [v for v in {(current or 0) + 1, lo, min(hi, 8)} if lo <= v <= hi and v != current]
    if spec.kind == "size":
        base = current or 1024**3
        return [v for v in (base * 2, 1024**3, 2 * 1024**2) if v != current and (spec.maximum or v) >= v]
    return [v for v in STRINGS.get(spec.key, ["probe"]) if v != current]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    pm = make_plugin_manager([("desktop", virtscenario_desktop), ("computation", virtscenario_computation),
                              ("securevm", virtscenario_securevm), ("testing", virtscenario_testing),
                              ("host_tuning", virtscenario_host_tuning)])
    return Catalog(pm)


def observe(catalog: Catalog, scenario: str, sets: list[tuple[str, Any, str]], tmp_path: Any) -> Any:
    req = Request(scenario=scenario, name="probe", cli_settings=sets, store_root=tmp_path,
                  identity=Identity(IDENTITY[0], list(IDENTITY[1])), libvirt_version=9_000_000,
                  inspect_images=False)
    try:
        gen = generate(req, catalog)
    except VirtscenarioError as exc:
        return ("refused", str(exc))
    return ("ok", gen.xml, gen.images, sorted((r.key, repr(r.value)) for r in gen.host_requirements),
            [n.message for n in gen.notes])


def effect(base: Any, probe: Any, key: str) -> bool:
    if probe[0] == "refused":
        return key in probe[1]
    if base[0] == "refused":
        return False
    if probe[1:4] != base[1:4]:
        return True
    return any(key in note for note in probe[4] if note not in base[4])


def test_every_key_has_a_visible_effect_or_a_note(catalog, tmp_path):
    dead = []
    for spec in sorted(catalog.registry, key=lambda s: s.key):
        found = False
        for scenario in SCENARIOS:
            base = observe(catalog, scenario, [], tmp_path)
            _p, settings = catalog.resolved[next(k for k in catalog.resolved if k[0] == scenario)]
            for value in candidates(spec, settings[spec.key].value):
                probe = observe(catalog, scenario, [(spec.key, value, f"--set {spec.key}")], tmp_path)
                if effect(base, probe, spec.key):
                    found = True
                    break
            if found:
                break
        if not found:
            dead.append(spec.key)
    assert dead == [], f"keys with no visible effect and no note naming them: {dead}"


def test_the_meta_test_catches_a_dead_key(tmp_path):
    """A key nothing reads is reported: the check itself can fail."""
    from virtscenario.api import SettingSpec
    from virtscenario.settings.registry import SettingRegistry
    catalog = Catalog(make_plugin_manager([("desktop", virtscenario_desktop)]))
    registry = SettingRegistry(specs=())
    for spec in catalog.registry:
        registry.add(spec, catalog.registry.owner(spec.key))
    registry.add(SettingSpec("probe.nothing", "bool", False, "read by nobody", rationale="r", reference="ref"),
                 "test")
    catalog._registration = type(catalog._registration)(catalog.scenarios, registry, catalog.rules)
    base = observe(catalog, "desktop", [], tmp_path)
    probe = observe(catalog, "desktop", [("probe.nothing", True, "--set probe.nothing")], tmp_path)
    assert not effect(base, probe, "probe.nothing")
