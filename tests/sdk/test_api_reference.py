"""docs/api-reference.md is generated from virtscenario.api and stays current; every public name is documented."""

from __future__ import annotations

import inspect
import os
import re

import pytest
from virtscenario import api
from virtscenario.domain import model
from virtscenario.sdk import apiref

from .venvs import REPO

PAGE = REPO / "docs" / "api-reference.md"


def test_page_is_current() -> None:
    text = PAGE.read_text()
    fresh = apiref.update(text)
    if os.environ.get("VIRTSCENARIO_REGEN_DOCS") == "1":
        PAGE.write_text(fresh)
        return
    assert text == fresh, "docs/api-reference.md is stale: run `python -m virtscenario.sdk.apiref " \
                          "docs/api-reference.md` (or VIRTSCENARIO_REGEN_DOCS=1 pytest tests/sdk/test_api_reference.py)"


def test_every_public_name_has_a_docstring() -> None:
    assert apiref.undocumented() == []


def test_every_public_name_and_model_record_is_on_the_page() -> None:
    text = PAGE.read_text()
    for name in api.__all__:
        shown = f"### `{name}()`" if inspect.isfunction(getattr(api, name)) else f"### `{name}`"
        assert shown in text, name
    for name in model.__all__:
        if name != "Domain":
            assert f"#### `model.{name}`" in text, name


def test_the_page_answers_what_plugin_authors_asked() -> None:
    """The questions of the third-party plugin report (issue 12), each answered on the page."""
    text = PAGE.read_text()
    for needle in (
        "never a second `<description>`",                     # what the core emits
        "`<metadata>` | always",                              # ... and metadata
        "`.read(host_path: str, default: Optional[str] = None) -> str`",  # HostRoot methods
        "`.listdir(host_path: str) -> list[str]`",
        "`.read_bytes(host_path: str) -> bytes`",
        "`.exists(host_path: str) -> bool`",
        "`.is_fake` → `bool` (property)",
        "`.path(host_path: str) -> Path`",
        "choices=(\"slow\", \"fast\")",                       # how choice values are given
        "both are required",                                  # rationale/reference
        "| `layer` | `Layer` | `'default'` |",                # ResolvedSetting fields
        "### `Note`", "### `CheckResult`", "### `HostCheck`", "### `HostChange`", "### `HostRequirement`",
        "#### `model.Disk`", "#### `model.Watchdog`",
    ):
        assert needle in text, needle


def test_markdown_conversion() -> None:
    doc = '''Summary with ``code`` and :class:`virtscenario.api.HostRoot`, :func:`read_host`.

    :param host: the host.
        Continued.
    :return: facts.
    :raises ConfigError: bad input.

    Example::

        @hookimpl
        def f():
            pass
    '''
    assert apiref.markdown(doc) == (
        "Summary with `code` and `HostRoot`, `read_host()`.\n\n"
        "- `host`: the host. Continued.\n- returns: facts.\n- raises `ConfigError`: bad input.\n\n"
        "Example:\n\n```python\n@hookimpl\ndef f():\n    pass\n```")
    assert apiref.markdown("Thing record.") == ""  # the record decorator's placeholder is no documentation


def test_a_stale_or_incomplete_page_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    text = PAGE.read_text()
    stale = text.replace("| `key` | `str` | required |", "| `key` | `int` | required |", 1)
    assert apiref.update(stale) != stale
    with pytest.raises(RuntimeError, match="no <!-- BEGIN generated: api --> ... <!-- END generated: api --> region"):
        apiref.update(re.sub(r"<!-- BEGIN generated: api -->.*", "", text, flags=re.S))
    monkeypatch.setattr(api, "__all__", [*api.__all__, "hookimpl_extra"])
    with pytest.raises(RuntimeError, match=r"not listed \['hookimpl_extra'\]"):
        apiref.api_region()


def test_field_comments_reach_the_table() -> None:
    rows = "\n".join(apiref.record_fields(model.Watchdog))
    assert "| `model` | `str` | required | i6300esb\\|ib700 (libvirt 9.0 has no itco) |" in rows
    assert "| `action` | `str` | `'reset'` |  |" in rows
