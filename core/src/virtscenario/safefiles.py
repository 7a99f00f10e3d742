"""Reading files a hostile local user might have prepared: ownership, size and YAML limits.

A settings file can move the store, share host directories and open displays, so it is
only read when it belongs to the invoking user or root and nobody else may write it (the
rule sudo and ssh apply to their own configuration). YAML is parsed without anchors and
aliases (a few hundred bytes of aliases expand to gigabytes), without duplicate keys,
and only up to a size no real file needs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError

#: The largest settings or inventory file read (ours are a few KiB).
MAX_YAML_BYTES = 1024 * 1024


def check_trusted(path: Path, what: str, st: Optional[os.stat_result] = None) -> os.stat_result:
    """Refuse ``path`` unless root or the invoking user owns it and only its owner may write it.

    ``st``: the status of the file already opened (``fstat``), so that what is checked is
    what is read; without it the path is looked up (a check that a swap can outrun).
    """
    if st is None:
        try:
            st = path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    euid = os.geteuid()
    if st.st_uid not in (0, euid):
        raise ConfigError(f"{what} {path} belongs to uid {st.st_uid}, not to you or root: refusing to use it "
                          "(another user could redirect the store or expose host files)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{what} {path} is writable by its group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
                          f"refusing to use it (chmod go-w {path})")
    return st


def read_trusted(path: Path, what: str, limit: int = 0) -> bytes:
    """The bytes of a trusted file, checked on the descriptor they are read from.

    Opened once, then ``fstat``: a symbolic link that someone flips between a good file and
    theirs cannot pass the check with one and be read as the other. O_NONBLOCK: a FIFO
    put there does not hang the command (it is then refused as not a regular file).
    """
    limit = limit or MAX_YAML_BYTES
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        st = check_trusted(path, what, os.fstat(fd))
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if st.st_size > limit:
            raise ConfigError(f"{what} {path} is {st.st_size} bytes; the limit is {limit}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise ConfigError(f"{what} {path} is larger than {limit} bytes")
    return raw


def check_trusted_dir(path: Path, what: str) -> None:
    """Refuse a directory (a store root, an image directory) that someone else could swap or fill.

    The directory must belong to the invoking user or root and be writable by nobody else;
    every directory above it must belong to the invoking user or root and be writable by
    nobody else unless it is sticky (like ``/tmp``, where others cannot rename what is not
    theirs). A symbolic link on the way must belong to the invoking user or root too.
    Missing trailing components are fine (they are created later, by us).
    """
    euid = os.geteuid()
    absolute = Path(os.path.abspath(path))
    # Symlinks in the path as given: their owner could point them elsewhere later.
    for prefix in [*reversed(absolute.parents), absolute]:
        try:
            st = os.lstat(prefix)
        except OSError:
            break
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, euid):
            raise ConfigError(f"{what} {absolute}: the symbolic link {prefix} belongs to uid {st.st_uid}, not to "
                              "you or root: refusing to use it")
    real = Path(os.path.realpath(absolute))
    for prefix in [*reversed(real.parents), real]:
        try:
            st = os.stat(prefix)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise ConfigError(f"cannot check {what} {absolute}: {prefix}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{what} {absolute}: {prefix} is not a directory")
        if st.st_uid not in (0, euid):
            raise ConfigError(f"{what} {absolute}: {prefix} belongs to uid {st.st_uid}, not to you or root: "
                              "refusing to use it (its owner could swap what is inside)")
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and (prefix == real or not st.st_mode & stat.S_ISVTX):
            raise ConfigError(f"{what} {absolute}: {prefix} is writable by its group or others "
                              f"(mode {stat.S_IMODE(st.st_mode):04o}): refusing to use it (chmod go-w {prefix})")


def load_yaml(path: Path, what: str) -> Any:
    """Parse a trusted YAML file: size-bounded, no aliases, no duplicate keys, one-line errors."""
    raw = read_trusted(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, f"{what} {path}")


def parse_yaml(text: str, where: str) -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)):
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {str(key)[:40]!r} appears twice", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        # Anchors and aliases are refused before anything is constructed (the C parser is fast).
        for event in yaml.parse(text, Loader=base):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise ConfigError(f"{where} line {mark.line + 1}: YAML anchors and aliases (&name, *name) are "
                                  "not allowed")
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{line}: not valid YAML ({str(problem)[:120]})") from None
