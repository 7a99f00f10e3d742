"""The host inventory: ``hosts.yaml``, or upstream virt-scenario's ``virthosts.yaml``.

Ours::

    hosts:
      epyc1: {uri: "qemu+ssh://root@epyc1/system", labels: [sev, nvme]}
      xeon2: {uri: "qemu+tls://xeon2.example.org/system"}

Upstream's (``NAME: {url: URI, sev-cert: PDH}``) is read too. Its loader kept going
on a YAML error, turned a missing ``url`` into "", dropped a ``sev-cert`` whose file
was missing without a word, and let a later duplicate name win; here every one of
those is one clear line.

Search order without ``--hosts FILE``: ``$XDG_CONFIG_HOME/virtscenario/hosts.yaml``,
then ``/etc/virtscenario/hosts.yaml``.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from .uri import LibvirtUri, parse_uri

MAX_BYTES = 1024 * 1024  # an inventory of thousands of hosts is ~100 KiB; anything bigger is a mistake
HOST_KEYS = ("uri", "labels")
UPSTREAM_KEYS = ("url", "sev-cert")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=/-]{0,62}$")


@dataclass(frozen=True)
class Host:
    name: str
    uri: str
    labels: tuple[str, ...] = ()
    sev_cert: Optional[str] = None  # upstream's PDH certificate path, kept for reference

    @property
    def parsed(self) -> LibvirtUri:
        return parse_uri(self.uri)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "uri": self.uri, "labels": list(self.labels)}
        if self.sev_cert:
            out["sev_cert"] = self.sev_cert
        return out


@dataclass(frozen=True)
class Inventory:
    path: str
    hosts: tuple[Host, ...]
    upstream: bool = False

    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def get(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (hosts: {', '.join(self.names()) or 'none'})"
        raise ConfigError(f"no host {name!r} in {self.path}{hint}")

    def resolve(self, name_or_uri: str) -> Host:
        """An inventory name, or a libvirt URI given directly (an ad-hoc host named by its URI)."""
        if "://" in name_or_uri:
            for host in self.hosts:
                if host.uri == name_or_uri:
                    return host
            parse_uri(name_or_uri)
            return Host(name_or_uri, name_or_uri)
        return self.get(name_or_uri)


def resolve_uris(names_or_uris: list[str], inventory_file: Optional[str] = None) -> list[str]:
    """Libvirt URIs for inventory names (or URIs given as they are), e.g. for ``migration.hosts``.

    The inventory is read only when a name needs it.
    """
    if all("://" in item for item in names_or_uris):
        return [parse_uri(item).text for item in names_or_uris]
    inv = load_inventory(inventory_file)
    return [inv.resolve(item).uri for item in names_or_uris]


def candidate_paths() -> list[Path]:
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [Path(xdg) / "virtscenario" / "hosts.yaml", Path("/etc/virtscenario/hosts.yaml")]


def find_inventory(explicit: Optional[str]) -> Path:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--hosts {explicit}: no such file")
        return path
    for path in candidate_paths():
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidate_paths())
    raise ConfigError(f"no host inventory: write one at {tried}, or pass --hosts FILE (format: docs/fleet.md)")


def load_inventory(explicit: Optional[str] = None) -> Inventory:
    from ..safefiles import read_trusted
    path = find_inventory(explicit)
    # The inventory names the hypervisors create, place and delete talk to (with SSH and TLS
    # identities): trusted like a settings file, checked on the descriptor it is read from.
    data = read_trusted(path, "host inventory", MAX_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_inventory(text, str(path))


def parse_inventory(text: str, path: str = "hosts.yaml") -> Inventory:
    data = _load_yaml(text, path)
    if data is None:
        raise ConfigError(f"{path}: empty; expected 'hosts:' with one entry per host")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_kind(data)}")
    if _is_upstream(data):
        return Inventory(path, _upstream_hosts(data, path), upstream=True)
    for key in data:
        if key != "hosts":
            close = difflib.get_close_matches(str(key), ["hosts"], n=1)
            hint = "; did you mean 'hosts'?" if close else " (the only key is 'hosts')"
            raise ConfigError(f"{path}: unknown top-level key {key!r}{hint}")
    entries = data.get("hosts")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: 'hosts' must map host names to {{uri: ..., labels: [...]}}")
    hosts = []
    for name, entry in entries.items():
        where = f"{path}: host {name!r}"
        _check_name(name, path)
        if isinstance(entry, str):
            raise ConfigError(f"{where}: expected {{uri: {entry}}}, not a bare string")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with 'uri' (and 'labels'), got {_kind(entry)}")
        for key in entry:
            if key not in HOST_KEYS:
                close = difflib.get_close_matches(str(key), HOST_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(HOST_KEYS)})"
                raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        if "uri" not in entry:
            raise ConfigError(f"{where}: 'uri' is missing")
        uri = entry["uri"]
        if not isinstance(uri, str):
            raise ConfigError(f"{where}: 'uri' must be a string")
        parse_uri(uri, where)
        hosts.append(Host(name, uri, _labels(entry.get("labels"), where)))
    _no_duplicate_uris(hosts, path)
    return Inventory(path, tuple(hosts))


def _is_upstream(data: dict[Any, Any]) -> bool:
    """Upstream's file maps names straight to {url: ...}; ours has one 'hosts' key of {uri: ...}."""
    hosts = data.get("hosts")
    if isinstance(hosts, dict) and "url" not in hosts:
        return False
    return any(isinstance(v, dict) and "url" in v for v in data.values())


def _upstream_hosts(data: dict[Any, Any], path: str) -> tuple[Host, ...]:
    hosts = []
    for name, entry in data.items():
        where = f"{path}: host {name!r}"
        _check_name(name, path)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected {{url: URI}} (virt-scenario format), got {_kind(entry)}")
        for key in entry:
            if key not in UPSTREAM_KEYS:
                close = difflib.get_close_matches(str(key), UPSTREAM_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (virt-scenario's: {', '.join(UPSTREAM_KEYS)})"
                raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}: 'url' is missing or empty")
        parse_uri(url, where)
        cert = entry.get("sev-cert")
        if cert is not None:
            if not isinstance(cert, str) or not Path(os.path.expanduser(cert)).is_file():
                raise ConfigError(f"{where}: sev-cert {cert!r} is not a file")
            cert = os.path.expanduser(cert)
        hosts.append(Host(name, url, (), cert))
    _no_duplicate_uris(hosts, path)
    return tuple(hosts)


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{path}: host name {name!r} must be 1-63 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")


def _labels(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'labels' must be a list, e.g. [sev, nvme]")
    seen: list[str] = []
    for label in value:
        if not isinstance(label, str) or not _LABEL.match(label):
            raise ConfigError(f"{where}: label {label!r} must be a word (letters, digits, '.', '_', '-', '=', '/')")
        if label in seen:
            raise ConfigError(f"{where}: label {label!r} is listed twice")
        seen.append(label)
    return tuple(seen)


def _no_duplicate_uris(hosts: list[Host], path: str) -> None:
    seen: dict[str, str] = {}
    for host in hosts:
        if host.uri in seen:
            raise ConfigError(f"{path}: hosts {seen[host.uri]!r} and {host.name!r} have the same uri {host.uri}")
        seen[host.uri] = host.name


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _load_yaml(text: str, path: str) -> Any:
    """Safe YAML that refuses duplicate keys (PyYAML silently keeps the last one)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[valid-type,misc]
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise ConfigError(f"{path} line {key_node.start_mark.line + 1}: a mapping key must be a "
                                  "plain value") from None
            if first is not None:
                raise ConfigError(f"{path} line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                  f"(first on line {first.start_mark.line + 1})")
            seen[key] = key_node
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
