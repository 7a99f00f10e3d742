"""The user settings file: our YAML format, and upstream virt-scenario's virtscenario.yaml.

Our format::

    store: /srv/virtscenario/vms      # optional store root
    settings:                         # every scenario
      disk.cache: writeback           # dotted keys ...
      memory: {hugepages: true}       # ... or nested maps
    scenarios:                        # one scenario only
      computation: {vm.vcpus: 8}

Search order without ``--config``: ``./virtscenario.yaml``,
``$XDG_CONFIG_HOME/virtscenario/config.yaml``, ``/etc/virtscenario/config.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..records import Record, record

TOP_KEYS = ("store", "settings", "scenarios")
UPSTREAM_SECTIONS = ("config", "hypervisors", "emulator", "input", "architecture", "STORAGE_DATA",
                     "host_filesystem")


@record
class UserConfig(Record):
    path: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    per_scenario: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    upstream: bool = False

    def values_for(self, scenario: str) -> dict[str, Any]:
        out = dict(self.settings)
        out.update(self.per_scenario.get(scenario, {}))
        return out


def candidate_paths() -> list[Path]:
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [Path("virtscenario.yaml"), Path(xdg) / "virtscenario" / "config.yaml",
            Path("/etc/virtscenario/config.yaml")]


def find_config(explicit: Optional[str]) -> Optional[Path]:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist or is not a file")
        return path
    for path in candidate_paths():
        if path.is_file():
            return path
    return None


def load_config(explicit: Optional[str] = None) -> UserConfig:
    path = find_config(explicit)
    if path is None:
        return UserConfig()
    from ..safefiles import load_yaml
    data = load_yaml(path, "settings file")
    if data is None:
        return UserConfig(path=str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if any(k in UPSTREAM_SECTIONS for k in data):
        return _upstream(data, str(path))
    return _ours(data, str(path))


def _flatten(data: Any, prefix: str, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {prefix or 'settings'} must be a mapping of setting keys")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: setting names must be strings, got {str(key)[:40]!r}")
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, full, path))
        else:
            out[full] = value
    return out


def _ours(data: dict[str, Any], path: str) -> UserConfig:
    for key in data:
        if key not in TOP_KEYS:
            import difflib
            close = difflib.get_close_matches(str(key), TOP_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(TOP_KEYS)})"
            raise ConfigError(f"{path}: unknown top-level key {key!r}{hint}")
    cfg = UserConfig(path=path)
    if data.get("store") is not None:
        if not isinstance(data["store"], str):
            raise ConfigError(f"{path}: 'store' must be a directory path")
        cfg.store = os.path.expanduser(data["store"])
    cfg.settings = _flatten(data.get("settings") or {}, "", path)
    scenarios = data.get("scenarios") or {}
    if not isinstance(scenarios, dict):
        raise ConfigError(f"{path}: 'scenarios' must map scenario names to settings")
    for name, values in scenarios.items():
        cfg.per_scenario[str(name)] = _flatten(values or {}, "", path)
    return cfg


def _items(section: Any, name: str, path: str) -> list[tuple[str, Any]]:
    if isinstance(section, dict):
        return list(section.items())
    if isinstance(section, list):
        out: list[tuple[str, Any]] = []
        for entry in section:
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: section {name!r} must be a list of 'key: value' entries")
            out.extend(entry.items())
        return out
    raise ConfigError(f"{path}: section {name!r} must be a list of 'key: value' entries")


def _onoff(value: Any) -> Any:
    return {True: True, False: False}.get(value, value)


def _upstream(data: dict[str, Any], path: str) -> UserConfig:
    """Map upstream virt-scenario 2.x keys to ours; say what has no equivalent."""
    cfg = UserConfig(path=path, upstream=True)
    s = cfg.settings
    storage_unit, capacity = "G", None
    for section, raw in data.items():
        if section not in UPSTREAM_SECTIONS:
            raise ConfigError(f"{path}: unknown virt-scenario section {section!r} "
                              f"(known: {', '.join(UPSTREAM_SECTIONS)})")
        for key, value in _items(raw, section, path):
            where = f"{section}.{key}"
            if section == "config" and key == "vm-config-store":
                cfg.store = os.path.expanduser(str(value))
            elif section == "emulator" and key == "emulator":
                s["vm.emulator"] = value
            elif section == "input" and key in ("keyboard", "mouse"):
                s[f"input.{key}"] = value
            elif section == "architecture" and key == "arch":
                if str(value) != "x86_64":
                    raise ConfigError(f"{path}: {where}={str(value)[:40]!r}: virtscenario generates x86_64 guests "
                                      "only")
            elif section == "STORAGE_DATA":
                mapping = {"disk_cache": "disk.cache", "disk_bus": "disk.bus", "path": "disk.directory",
                           "format": "disk.format", "preallocation": "disk.preallocation",
                           "compression_type": "disk.compression", "lazy_refcounts": "disk.lazy_refcounts",
                           "encryption": "disk.encryption"}
                if key in mapping:
                    if value not in (None, ""):
                        s[mapping[key]] = _onoff(value)
                elif key == "unit":
                    storage_unit = str(value)
                elif key == "capacity":
                    capacity = value
                elif key == "cluster_size":
                    s["disk.cluster_size"] = f"{value}K" if str(value).isdigit() else value
                elif key in ("disk_type", "disk_target"):
                    cfg.notes.append(f"{where}: ignored (virtscenario chooses file disks and names targets itself)")
                else:
                    raise ConfigError(f"{path}: unknown key {where!r}")
            elif section == "host_filesystem" and key == "source_dir":
                s["filesystem.source_dir"] = value
            elif section == "host_filesystem" and key == "target_dir":
                s["filesystem.target"] = str(value).strip("/").replace("/", "_") or "host_share"
            elif section == "host_filesystem" and key in ("fmode", "dmode"):
                cfg.notes.append(f"{where}: ignored (9p file modes; virtscenario shares with virtiofs)")
            elif section == "emulator" and key == "fw_meta":
                cfg.notes.append(f"{where}: ignored (libvirt's firmware autoselection reads the descriptors)")
            elif section == "config" and key == "path":
                cfg.notes.append(f"{where}: ignored (unused by virt-scenario too)")
            elif section == "hypervisors" and key == "hvconf":
                cfg.notes.append(f"{where}: ignored (use --connect URI)")
            else:
                raise ConfigError(f"{path}: unknown key {where!r}")
    if capacity not in (None, ""):
        s["disk.size"] = f"{capacity}{storage_unit}"
    return cfg
