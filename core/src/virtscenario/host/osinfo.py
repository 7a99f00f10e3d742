"""libosinfo's database (osinfo-db), read directly: an OS by its short id, its family and resources.

The database folders are libosinfo's own, later ones overriding earlier ones:
``$OSINFO_SYSTEM_DIR`` or ``/usr/share/osinfo``, ``$OSINFO_LOCAL_DIR`` or ``/etc/osinfo``,
``$OSINFO_USER_DIR`` or ``$XDG_CONFIG_HOME/osinfo`` (osinfo-db-tools ``database.c``). Each
``os/VENDOR/NAME.xml`` holds ``<os id=URI>`` with ``<short-id>``, ``<family>``,
``<derives-from id=URI/>`` and ``<resources arch=...>`` (``<minimum>``/``<recommended>`` with
``<n-cpus>``, ``<ram>``, ``<storage>`` in bytes). ``<resources inherit="true"/>`` takes the
resources of the OS it derives from, as the generic ``linux2022`` does from Ubuntu 22.04.

Files are read through a :class:`~virtscenario.host.root.HostRoot`, so ``--host-root`` works;
only the file naming the id (and the chain it derives from) is parsed.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional

from ..records import FrozenRecord, frozen_record

if TYPE_CHECKING:  # pragma: no cover
    from .root import HostRoot

OSINFO_DOC = "https://libosinfo.org/"
#: Families the core adapts for: libosinfo's <family> mapped to linux|windows|other.
WINDOWS_FAMILIES = frozenset({"winnt", "win9x", "win16", "msdos"})
FAMILY_WORDS = ("linux", "windows")
_OS_ID = re.compile(rb'<os\s+id="([^"]+)"')


@frozen_record
class Resources(FrozenRecord):
    n_cpus: Optional[int] = None
    ram: Optional[int] = None  # bytes
    storage: Optional[int] = None  # bytes


@frozen_record
class OsInfo(FrozenRecord):
    """One OS of the database (or a bare family given as ``--os linux|windows``)."""

    short_id: str
    uri: str
    name: str
    family: str  # linux|windows|other
    osinfo_family: str  # libosinfo's own word: linux, winnt, freebsd...
    minimum: Resources = Resources()
    recommended: Resources = Resources()
    source: str = ""  # the file it came from


def database_dirs(environ: Optional[dict[str, str]] = None) -> list[str]:
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [env.get("OSINFO_SYSTEM_DIR") or "/usr/share/osinfo", env.get("OSINFO_LOCAL_DIR") or "/etc/osinfo",
            env.get("OSINFO_USER_DIR") or os.path.join(config, "osinfo")]


def family_of(osinfo_family: str) -> str:
    word = osinfo_family.strip().lower()
    if word in WINDOWS_FAMILIES:
        return "windows"
    return word if word == "linux" else "other"


class OsDatabase:
    """The OS files of the database folders; an id is looked up by a byte search, then parsed."""

    def __init__(self, host: HostRoot, dirs: Optional[list[str]] = None) -> None:
        self.host = host
        self.dirs = dirs if dirs is not None else database_dirs()
        self._files: Optional[list[tuple[str, bytes]]] = None

    @property
    def installed(self) -> bool:
        return bool(self.files())

    def files(self) -> list[tuple[str, bytes]]:
        """(path, content) of every os/*/*.xml, in override order (later folders last)."""
        if self._files is None:
            out = []
            for base in self.dirs:
                os_dir = f"{base.rstrip('/')}/os"
                if not self.host.exists(os_dir):
                    continue
                for vendor in sorted(self.host.listdir(os_dir)):
                    folder = f"{os_dir}/{vendor}"
                    try:
                        names = sorted(self.host.listdir(folder))
                    except OSError:
                        continue
                    for name in names:
                        if name.endswith(".xml"):
                            try:
                                out.append((f"{folder}/{name}", self.host.read_bytes(f"{folder}/{name}")))
                            except OSError:
                                continue
            self._files = out
        return self._files

    def _element(self, needle: bytes, match: str, attribute: bool) -> Optional[tuple[str, object]]:
        """The last (overriding) <os> element whose short-id (or id) is ``match``."""
        from lxml import etree
        found = None
        for path, data in self.files():
            if needle not in data:
                continue
            try:
                root = etree.fromstring(data)
            except etree.XMLSyntaxError:
                continue
            for os_el in root.iter("os"):
                if (os_el.get("id") == match) if attribute else match in [s.text for s in os_el.iter("short-id")]:
                    found = (path, os_el)
        return found

    def by_short_id(self, short_id: str) -> Optional[OsInfo]:
        hit = self._element(f"<short-id>{short_id}</short-id>".encode(), short_id, attribute=False)
        return None if hit is None else self._info(short_id, *hit)

    def _by_uri(self, uri: str) -> Optional[tuple[str, object]]:
        return self._element(f'id="{uri}"'.encode(), uri, attribute=True)

    def _info(self, short_id: str, path: str, os_el: object) -> OsInfo:
        el: object = os_el
        fam = _text(el, "family")
        minimum, recommended = self._resources(el)
        return OsInfo(short_id, el.get("id") or "", _text(el, "name") or short_id,  # type: ignore[attr-defined]
                      family_of(fam), fam, minimum, recommended, path)

    def _resources(self, os_el: object, depth: int = 0) -> tuple[Resources, Resources]:
        """x86_64 (else 'all') resources; ``inherit="true"`` follows derives-from, as libosinfo does."""
        chosen = None
        for arch in ("x86_64", "all"):
            chosen = next((r for r in os_el.iter("resources") if r.get("arch") == arch), None)  # type: ignore[attr-defined]
            if chosen is not None:
                break
        if chosen is not None and chosen.get("inherit") == "true" and depth < 16:
            parent = os_el.find("derives-from")  # type: ignore[attr-defined]
            hit = self._by_uri(parent.get("id")) if parent is not None else None
            if hit is not None:
                return self._resources(hit[1], depth + 1)
        if chosen is None:
            return Resources(), Resources()
        return _res(chosen.find("minimum")), _res(chosen.find("recommended"))


def _text(el: object, tag: str) -> str:
    child = el.find(tag)  # type: ignore[attr-defined]
    return (child.text or "").strip() if child is not None else ""


def _res(el: object) -> Resources:
    if el is None:
        return Resources()

    def num(tag: str) -> Optional[int]:
        text = _text(el, tag)
        return int(text) if text.isdigit() else None
    return Resources(num("n-cpus"), num("ram"), num("storage"))


def lookup(os_id: str, host: HostRoot, dirs: Optional[list[str]] = None) -> tuple[OsInfo, Optional[str]]:
    """The OS ``os_id`` names, and a note when it could not be checked against the database.

    ``linux`` and ``windows`` are families, valid without the database. An id the installed
    database does not know is an error with the closest known ids; without a database the id's
    family is guessed from its name and a note says so.
    """
    from ..errors import ConfigError
    word = os_id.strip()
    if word in FAMILY_WORDS:
        return OsInfo(word, "", f"generic {word}", word, word), None
    if not re.match(r"^[a-z0-9][a-z0-9.+_-]{0,63}$", word):
        raise ConfigError(f"os.id={os_id[:60]!r} (--os): not a libosinfo short id (such as win11, fedora40, "
                          "linux2022) or a family (linux, windows)")
    db = OsDatabase(host, dirs)
    if not db.installed:
        family = "windows" if word.startswith("win") else "linux"
        return OsInfo(word, "", word, family, family), (
            f"os.id={word}: libosinfo's database is not installed (Debian, SUSE, Fedora: osinfo-db), so the id "
            f"was not checked and its family guessed as {family}")
    info = db.by_short_id(word)
    if info is None:
        import difflib
        found = (m for _p, data in db.files() for m in re.findall(rb"<short-id>([^<]+)</short-id>", data))
        ids = sorted({m.decode() for m in found})
        close = difflib.get_close_matches(word, ids, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"os.id={word} (--os): libosinfo knows no such OS{hint} (osinfo-query os lists them; "
                          "or use a family: linux, windows)")
    return info, None
