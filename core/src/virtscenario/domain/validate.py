"""RelaxNG validation against libvirt's installed schemas, with errors that name the element."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Optional

from lxml import etree

from ..errors import ValidationError

DEFAULT_SCHEMA = "/usr/share/libvirt/schemas/domain.rng"


def schema_path(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("VIRTSCENARIO_DOMAIN_SCHEMA") or DEFAULT_SCHEMA)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(path))


def load_schema(override: Optional[str] = None) -> Optional[etree.RelaxNG]:
    """The compiled schema (loaded once per process), or None when it is not installed."""
    path = schema_path(override)
    if not path.is_file():
        return None
    try:
        return _load(str(path))
    except (etree.RelaxNGParseError, etree.XMLSyntaxError, OSError) as exc:
        raise ValidationError(f"cannot load the libvirt schema {path}: {exc}") from None


def _path_of(el: etree._Element) -> str:
    parts = []
    while el is not None:
        parent = el.getparent()
        tag = etree.QName(el).localname if isinstance(el.tag, str) else "?"
        if parent is None:
            parts.append(tag)
        else:
            same = [c for c in parent if c.tag == el.tag]
            parts.append(f"{tag}[{same.index(el) + 1}]" if len(same) > 1 else tag)
        el = parent
    return "/" + "/".join(reversed(parts))


def _locate(schema: etree.RelaxNG, root: etree._Element) -> Optional[str]:
    """Find the offending element: the deepest one whose removal makes the document valid,
    then, inside it, an attribute whose removal does (a bad value, or one not allowed there)."""
    doc = copy.deepcopy(root)
    current = doc
    found: Optional[etree._Element] = None
    while True:
        culprit = None
        for idx, child in enumerate(list(current)):
            if not isinstance(child.tag, str):
                continue
            current.remove(child)
            ok = schema.validate(doc)
            current.insert(idx, child)
            if ok:
                culprit = child
                break
        if culprit is None:
            break
        found = current = culprit
    scope = found if found is not None else doc
    for el in scope.iter():
        if not isinstance(el.tag, str):
            continue
        for name, value in list(el.attrib.items()):
            del el.attrib[name]
            ok = schema.validate(doc)
            el.set(name, value)
            if ok:
                return f"{_path_of(el)}: attribute {name}={value!r} is not valid there"
    if found is None:
        return None
    return f"{_path_of(found)}: element is not valid there"


def validate_tree(root: etree._Element, schema_override: Optional[str] = None, what: str = "domain XML",
                  document: Optional[bytes] = None) -> bool:
    """Validate; return False when no schema is installed; raise ValidationError when invalid.

    With ``document`` (``root`` serialised) and no schema compiled yet in this process, a
    document this user's earlier runs validated is accepted without compiling the schema
    (:mod:`.validcache`).
    """
    path = schema_path(schema_override)
    cache_key = ""
    if document is not None and _load.cache_info().currsize == 0:
        if not path.is_file():
            return False
        from . import validcache
        cache_key = validcache.key(path, document)
        if validcache.known_valid(cache_key):
            return True
    schema = load_schema(schema_override)
    if schema is None:
        return False
    if schema.validate(root):
        if cache_key:
            from . import validcache
            validcache.remember(cache_key)
        return True
    errors = [e.message for e in schema.error_log]  # type: ignore[attr-defined]
    detail = _locate(schema, root)
    # libxml2's last specific message (not its generic "failed to validate content").
    fallback = errors[-1] if errors else ""
    specific = next((e for e in reversed(errors) if "failed to validate content" not in e), fallback)
    head = detail or "the document"
    message = f"{what} does not match libvirt's schema ({schema_path(schema_override)}): {head}"
    if specific:
        message += f" (libxml2: {specific})"
    raise ValidationError(message, tuple(errors))
