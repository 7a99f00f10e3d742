"""The known setting keys (the domain sections' and the plugins') and how a raw value
(YAML or command line) becomes a typed one."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from ..errors import ConfigError
from ..units import parse_size
from .types import DEVICE_KEY, SettingSpec

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}
#: Per-device key prefixes and the setting section they override: disks[0].cache -> disk.cache.
DEVICE_KINDS = {"disks": "disk", "networks": "network"}
#: Longest raw value echoed back in an error message (a value may be megabytes long).
SHOWN_VALUE = 60
#: Longest string setting (titles, paths, CPU models): libvirt's own fields are far shorter.
MAX_STRING = 4096


def base_key(key: str) -> str:
    """``disks[1].cache`` -> ``disk.cache``; other keys unchanged."""
    m = DEVICE_KEY.match(key)
    if m and m.group("kind") in DEVICE_KINDS:
        return f"{DEVICE_KINDS[m.group('kind')]}.{m.group('name')}"
    return key


def shown(value: Any) -> str:
    """A raw value for an error message: repr, cut to SHOWN_VALUE characters."""
    text = repr(value) if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE] + f"... ({len(text)} characters)"


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


class SettingRegistry:
    """All known setting keys: the core's plus those plugins register."""

    def __init__(self, specs: Optional[Iterable[SettingSpec]] = None) -> None:
        self._specs: dict[str, SettingSpec] = {}
        self._owner: dict[str, str] = {}
        if specs is None:
            from ..domain.sections import all_specs
            specs = all_specs()
        for spec in specs:
            self.add(spec, "core")

    def add(self, spec: SettingSpec, owner: str) -> None:
        """Declare ``spec``; ``owner`` is ``core`` or the declaring plugin's name."""
        if spec.key in self._specs:
            from ..errors import PluginError

            def who(name: str) -> str:
                return "core" if name == "core" else f"plugin {name!r}"
            raise PluginError(f"setting {spec.key!r} is declared by both {who(self._owner[spec.key])} and {who(owner)}")
        self._specs[spec.key] = spec
        self._owner[spec.key] = owner

    def __contains__(self, key: str) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[SettingSpec]:
        return iter(self._specs.values())

    def spec(self, key: str) -> SettingSpec:
        """The spec of ``key`` (of its base key for ``disks[0].cache``)."""
        try:
            return self._specs[base_key(key)]
        except KeyError:
            raise ConfigError(self.unknown_key_message(key)) from None

    def find(self, key: str) -> Optional[SettingSpec]:
        return self._specs.get(base_key(key))

    def owner(self, key: str) -> str:
        return self._owner[base_key(key)]

    def unknown_key_message(self, key: str, where: str = "") -> str:
        import difflib
        key = key if len(key) <= SHOWN_VALUE else key[:SHOWN_VALUE] + "..."
        close = difflib.get_close_matches(key, list(self._specs), n=1, cutoff=0.6)
        if not close:
            # also try matching on the last component: "cache" -> "disk.cache"
            tails = [k for k in self._specs if k.split(".")[-1] == key.split(".")[-1]]
            close = tails[:1]
        hint = f"; did you mean {close[0]!r}?" if close else "; see 'virtscenario settings'"
        return f"unknown setting {key!r}{where}{hint}"

    def coerce(self, key: str, value: Any, where: str = "") -> Any:
        """Convert a raw value (YAML or command-line string) to the key's type."""
        spec = self.spec(key) if not where else self._spec_or_error(key, where)
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "unset")):
            return None
        bad = ConfigError(f"setting {key!r}{where}: expected {spec.type_name}, got {shown(value)}")
        if spec.kind == "bool":
            result = parse_bool(value)
            if result is None:
                raise bad
            return result
        if spec.kind == "int":
            if isinstance(value, bool):
                raise bad
            try:
                number = int(value, 0) if isinstance(value, str) else int(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: .inf, 1e400 from YAML
                raise bad from None
            if isinstance(value, float) and value != number:
                raise bad
            if spec.minimum is not None and number < spec.minimum:
                raise ConfigError(f"setting {key!r}{where}: {number} is below the minimum {spec.minimum}")
            if spec.maximum is not None and number > spec.maximum:
                raise ConfigError(f"setting {key!r}{where}: {number} is above the maximum {spec.maximum}")
            return number
        if spec.kind == "size":
            size = parse_size(value, spec.unit, what=f"setting {key!r}{where}")
            from ..units import format_size
            if spec.minimum is not None and size < spec.minimum:
                raise ConfigError(f"setting {key!r}{where}: {format_size(size)} is below the minimum "
                                  f"{format_size(spec.minimum)}")
            if spec.maximum is not None and size > spec.maximum:
                raise ConfigError(f"setting {key!r}{where}: {format_size(size)} is above the maximum "
                                  f"{format_size(spec.maximum)}")
            return size
        if spec.kind == "choice":
            text = str(value).strip() if not isinstance(value, bool) else ("on" if value else "off")
            if text not in spec.choices:
                import difflib
                close = difflib.get_close_matches(text[:SHOWN_VALUE], spec.choices, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"setting {key!r}{where}: {shown(text)} is not {spec.type_name}{hint}")
            return text
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad
        text = str(value)
        if len(text) > MAX_STRING:
            raise ConfigError(f"setting {key!r}{where}: {len(text)} characters is longer than the "
                              f"{MAX_STRING} a setting may hold")
        return text

    def _spec_or_error(self, key: str, where: str) -> SettingSpec:
        if key not in self._specs:
            raise ConfigError(self.unknown_key_message(key, where))
        return self._specs[key]
