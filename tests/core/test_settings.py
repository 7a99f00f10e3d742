"""Precedence, provenance, types and the user settings file (ours and upstream's)."""

from __future__ import annotations

import pytest
from virtscenario.api import hookimpl
from virtscenario.errors import ConfigError, PluginError
from virtscenario.settings.registry import SettingRegistry
from virtscenario.settings.resolve import resolve_scenario as resolve_settings
from virtscenario.settings.userfile import UserConfig, load_config
from virtscenario.types import Choice, Scenario, SettingSpec

from . import demo_plugin


class Override:
    __name__ = "site_policy"

    @hookimpl
    def scenario_overrides(self, scenario):
        yield Choice("disk.cache", "directsync", "site wants directsync", "https://site")
        yield Choice("vm.vcpus", 6, "site sizes VMs", "https://site")


class OtherOverride:
    __name__ = "zz_policy"

    @hookimpl
    def scenario_overrides(self, scenario):
        yield Choice("disk.cache", "writethrough", "another site rule", "https://other")


def test_precedence_and_provenance(catalog_of):
    cat = catalog_of(("demo", demo_plugin), ("site_policy", Override()))
    user = UserConfig(path="/tmp/u.yaml", settings={"vm.vcpus": 8, "vm.memory": "3G"},
                      per_scenario={"demo": {"vm.memory": "5G"}, "other": {"vm.memory": "7G"}})
    _, s = resolve_settings(cat, "demo", user, [("vm.memory", "6GiB", "--memory")])
    assert (s["rng.model"].value, s["rng.model"].source) == ("virtio", "core default")
    assert s["sound.model"].source == "scenario demo (demo)"
    assert s["sound.model"].rationale == "demo decides sound.model"
    assert (s["disk.cache"].value, s["disk.cache"].source) == ("directsync", "plugin site_policy")
    assert s["disk.cache"].reference == "https://site"
    assert (s["vm.vcpus"].value, s["vm.vcpus"].source) == (8, "file /tmp/u.yaml")
    assert "plugin site_policy chose 6" in s["vm.vcpus"].rationale
    # Provenance is data: layer and origin, whatever the display text says.
    assert [(s[k].layer, s[k].origin) for k in ("rng.model", "sound.model", "disk.cache", "vm.vcpus", "vm.memory")] \
        == [("default", "core"), ("scenario", "demo"), ("plugin", "site_policy"), ("file", "/tmp/u.yaml"),
            ("flag", "--memory")]
    assert (s["vm.memory"].value, s["vm.memory"].source) == (6 * 1024**3, "flag --memory")
    assert "scenario chose" in s["vm.memory"].rationale


def test_override_conflict_is_deterministic_and_names_both(catalog_of):
    for order in ((Override(), OtherOverride()), (OtherOverride(), Override())):
        plugins = [(p.__name__, p) for p in order]
        cat = catalog_of(("demo", demo_plugin), *plugins)
        _, s = resolve_settings(cat, "demo", UserConfig(), [])
        assert s["disk.cache"].value == "directsync"
        [note] = [n for n in cat.notes if "disk.cache" in n.message]
        assert "plugin site_policy" in note.message and "plugin zz_policy" in note.message


def test_unknown_key_suggests_and_wrong_type_names_key(catalog_of):
    cat = catalog_of(("demo", demo_plugin))
    with pytest.raises(ConfigError, match=r"unknown setting 'disk.cahce' \(--set\); did you mean 'disk.cache'\?"):
        resolve_settings(cat, "demo", UserConfig(), [("disk.cahce", "none", "--set")])
    with pytest.raises(ConfigError, match=r"unknown setting 'iothreads'.*did you mean 'cpu.iothreads'"):
        resolve_settings(cat, "demo", UserConfig(), [("iothreads", "2", "--set")])
    with pytest.raises(ConfigError, match=r"setting 'vm.vcpus' \(--vcpus\): expected an integer, got 'many'"):
        resolve_settings(cat, "demo", UserConfig(), [("vm.vcpus", "many", "--vcpus")])
    with pytest.raises(ConfigError, match=r"setting 'pm.suspend_to_mem' in f.yaml: expected a boolean"):
        resolve_settings(cat, "demo", UserConfig(path="f.yaml", settings={"pm.suspend_to_mem": "maybe"}), [])
    with pytest.raises(ConfigError, match=r"'unsafe ' is not one of|'unsafer' is not one of .*did you mean 'unsafe'"):
        resolve_settings(cat, "demo", UserConfig(), [("disk.cache", "unsafer", "--set")])
    with pytest.raises(ConfigError, match="below the minimum 1"):
        resolve_settings(cat, "demo", UserConfig(), [("vm.vcpus", "0", "--vcpus")])


def test_scenario_with_bad_value_is_refused_naming_it(catalog_of):
    class Bad:
        @hookimpl
        def register_scenarios(self):
            yield Scenario("bad", "bad", "1", settings=(Choice("disk.cache", "fast", "x", "y"),))
    cat = catalog_of(("bad", Bad()))
    with pytest.raises(ConfigError, match=r"setting 'disk.cache' \(scenario bad\)"):
        resolve_settings(cat, "bad", UserConfig(), [])


def test_choices_need_rationale_and_reference():
    with pytest.raises(ValueError, match="rationale and a reference"):
        Choice("disk.cache", "none", "", "ref")
    with pytest.raises(ValueError, match="belongs in host="):
        Scenario("x", "x", "1", settings=(Choice("host.ksm", "on", "r", "ref"),))
    with pytest.raises(ValueError, match="twice"):
        Scenario("x", "x", "1", settings=(Choice("vm.vcpus", 1, "r", "ref"), Choice("vm.vcpus", 2, "r", "ref")))


def test_duplicate_setting_declaration_names_both_owners():
    registry = SettingRegistry()
    with pytest.raises(PluginError, match="declared by both core and plugin 'x'"):
        registry.add(SettingSpec("disk.cache", "str", None, "dup", rationale="r", reference="ref"), "x")


def write(tmp_path, text):
    path = tmp_path / "vs.yaml"
    path.write_text(text)
    return str(path)


def test_our_file_format_nested_and_dotted(tmp_path, catalog_of):
    path = write(tmp_path, "store: ~/vms\nsettings:\n  disk.cache: writeback\n  memory:\n    hugepages: true\n"
                           "scenarios:\n  demo:\n    vm.vcpus: 7\n")
    cfg = load_config(path)
    assert cfg.store.endswith("/vms") and not cfg.store.startswith("~")
    _, s = resolve_settings(catalog_of(("demo", demo_plugin)), "demo", cfg, [])
    assert s["disk.cache"].value == "writeback" and s["memory.hugepages"].value is True and s["vm.vcpus"].value == 7
    assert s["vm.vcpus"].source == f"file {path}"


@pytest.mark.parametrize("text, message", [
    ("setings: {}\n", "unknown top-level key 'setings'; did you mean 'settings'"),
    ("settings: [1, 2]\n", "must be a mapping"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("settings:\n  disk.cache: [oops\n", "line 3: not valid YAML"),
])
def test_bad_files_give_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/vs.yaml")


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(None).path == ""
    xdg = tmp_path / "xdg"
    (xdg / "virtscenario").mkdir(parents=True)
    (xdg / "virtscenario" / "config.yaml").write_text("settings: {vm.vcpus: 3}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert load_config(None).settings == {"vm.vcpus": 3}
    (tmp_path / "virtscenario.yaml").write_text("settings: {vm.vcpus: 5}\n")
    assert load_config(None).settings == {"vm.vcpus": 5}  # ./virtscenario.yaml comes first


UPSTREAM = """\
config:
  - path: /var/lib/libvirt/images
  - vm-config-store: '/srv/vmconfig'
emulator:
  - emulator: /usr/bin/qemu-system-x86_64
  - fw_meta: /usr/share/qemu/firmware
input:
  - keyboard: virtio
  - mouse: virtio
architecture:
  - arch: x86_64
STORAGE_DATA:
  - disk_type: file
  - disk_cache: writethrough
  - disk_target: vda
  - disk_bus: virtio
  - path: /srv/images
  - format: qcow2
  - unit: G
  - capacity: 8
  - cluster_size: 1024
  - lazy_refcounts: on
  - preallocation: metadata
  - compression_type: zlib
  - encryption: off
host_filesystem:
  - fmode: 644
  - dmode: 755
  - source_dir: /tmp
  - target_dir: /tmp/host
hypervisors:
  - hvconf: virthosts.yaml
"""


def test_upstream_virtscenario_yaml_is_read(tmp_path, catalog_of):
    cfg = load_config(write(tmp_path, UPSTREAM))
    assert cfg.upstream and cfg.store == "/srv/vmconfig"
    _, s = resolve_settings(catalog_of(("demo", demo_plugin)), "demo", cfg, [])
    v = {k: s[k].value for k in s}
    assert v["disk.cache"] == "writethrough" and v["disk.directory"] == "/srv/images"  # upstream bugs 10 and 12
    assert v["disk.size"] == 8 * 1024**3 and v["disk.cluster_size"] == 1024 * 1024
    assert v["disk.lazy_refcounts"] is True and v["disk.encryption"] is False  # upstream bug 11: 'on' works here
    assert v["disk.preallocation"] == "metadata" and v["disk.compression"] == "zlib"
    assert v["input.keyboard"] == "virtio" and v["input.mouse"] == "virtio"
    assert v["vm.emulator"] == "/usr/bin/qemu-system-x86_64"
    assert v["filesystem.source_dir"] == "/tmp" and v["filesystem.target"] == "tmp_host"
    assert any("fmode" in n for n in cfg.notes) and any("hvconf" in n for n in cfg.notes)


def test_upstream_unknown_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'STORAGE_DATA.disk_size'"):
        load_config(write(tmp_path, "STORAGE_DATA:\n  - disk_size: 3\n"))


def test_every_number_and_size_has_an_upper_bound_and_says_so() -> None:
    """Issue 9: every size and count has a documented upper bound (a YAML 1e400 or a 2^80 TiB size
    once reached vm.yaml). The bound is shown by 'virtscenario settings'."""
    from virtscenario.cli.commands.settings import kind_text
    from virtscenario.plugin.hooks import Catalog
    registry = Catalog().registry
    # The core's keys and the built-in scenarios' (a third-party plugin installed here is not ours to check).
    numbers = [s for s in registry if s.kind in ("int", "size")
               and registry.owner(s.key) in ("core", "desktop", "computation", "securevm", "testing")]
    assert numbers
    for spec in numbers:
        assert spec.maximum is not None, f"{spec.key} has no maximum"
        assert kind_text(spec).split("..")[1], kind_text(spec)  # shown in the TYPE column


@pytest.mark.parametrize("key", ["memory.hugepage_size", "memory.hard_limit_overhead", "host.hugepages_reserve"])
def test_sizes_above_their_bound_are_refused(key: str) -> None:
    from virtscenario.errors import ConfigError
    from virtscenario.plugin.hooks import Catalog
    with pytest.raises(ConfigError, match=f"setting '{key}'.*is above the maximum"):
        Catalog().registry.coerce(key, "99999999999999TiB", where=" (--set)")
