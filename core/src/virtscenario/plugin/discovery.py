"""Entry-point discovery that reads ``*.dist-info/entry_points.txt`` directly.

``importlib.metadata`` costs ~30 ms to import (it pulls in email, zipfile, csv...),
which would be a tenth of a ``create --print-xml`` run. Reading the files is what
it does anyway; zip archives on ``sys.path`` fall back to ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, Optional


class EntryPoint:
    """An entry point with the name and version of its distribution."""

    __slots__ = ("name", "value", "group", "dist_name", "dist_version")

    def __init__(self, name: str, value: str, group: str, dist_name: str, dist_version: str) -> None:
        self.name, self.value, self.group = name, value, group
        self.dist_name, self.dist_version = dist_name, dist_version

    def load(self) -> Any:
        module, _, attrs = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return obj

    def __repr__(self) -> str:
        return f"EntryPoint({self.name!r}, {self.value!r}, dist={self.dist_name!r})"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_of(dirname: str) -> str:
    """``my_plugin-1.0.dist-info`` -> ``my_plugin``; ``thing.egg-info`` -> ``thing``."""
    base = dirname.rsplit(".", 1)[0] if dirname.endswith(".egg-info") else dirname[:-len(".dist-info")]
    head, sep, version = base.rpartition("-")
    return head if sep and version[:1].isdigit() else base


def _headers(path: str) -> tuple[str, str]:
    """Name and Version from a METADATA/PKG-INFO header (read only up to the first blank line)."""
    name = version = ""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    break
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
    except OSError:
        pass
    return name, version


def _parse(text: str, group: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == group and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), value.strip()))
    return out


def entry_points(group: str, path: Optional[list[str]] = None) -> list[EntryPoint]:
    """Entry points of ``group``; the first distribution of a name on the path wins, as in importlib."""
    search = sys.path if path is None else path
    if any(os.path.isfile(entry) for entry in search if entry):
        return _from_importlib(group)
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in search:
        directory = entry or "."
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                meta = "METADATA"
            elif name.endswith(".egg-info"):
                meta = "PKG-INFO"
            else:
                continue
            info = os.path.join(directory, name)
            # Deduplicate by the directory's name (as importlib does) and read METADATA only for the
            # few distributions that have entry points of the group: a venv holds dozens of others.
            key = _normalise(_project_of(name))
            if key in seen:
                continue
            seen.add(key)
            try:
                with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            entries = _parse(text, group)
            if not entries:
                continue
            dist_name, version = _headers(os.path.join(info, meta))
            dist_name = dist_name or _project_of(name)
            found.extend(EntryPoint(n, v, group, dist_name, version) for n, v in entries)
    return found


def _from_importlib(group: str) -> list[EntryPoint]:
    from importlib import metadata
    out = []
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        out.append(EntryPoint(ep.name, ep.value, group, dist.metadata["Name"] if dist else "",
                              dist.version if dist else ""))
    return out
