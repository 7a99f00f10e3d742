"""The few lxml helpers every section renderer uses (libvirt's spellings of booleans and sizes)."""

from __future__ import annotations

from typing import Optional

from lxml import etree
from lxml.etree import _Element as Element


def sub(parent: Element, tag: str, text: Optional[str] = None, **attrs: Optional[str]) -> Element:
    """A child element; ``None`` attributes are left out. ``type_`` stands for ``type`` (a builtin)."""
    el = etree.SubElement(parent, tag, {("type" if k == "type_" else k): v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def yes(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("yes" if value else "no")


def on(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("on" if value else "off")


def num(value: Optional[int]) -> Optional[str]:
    return None if value is None else str(value)


def kib(nbytes: int) -> str:
    return str(nbytes // 1024)


def driver_iommu(parent: Element, iommu: Optional[bool]) -> None:
    if iommu is not None:
        sub(parent, "driver", iommu=on(iommu))
