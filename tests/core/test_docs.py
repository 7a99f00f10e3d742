"""Docs that are generated stay in sync with the code."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from virtscenario.cli.app import cli

from ..conftest import make_pm

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_settings_table_is_current(use_pm):
    use_pm(make_pm())  # core keys only, whatever plugins are installed
    result = CliRunner().invoke(cli, ["settings", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    text = (DOCS / "settings.md").read_text()
    begin = text.index("-->\n", text.index("<!-- BEGIN settings table")) + 4
    end = text.index("<!-- END settings table -->")
    if os.environ.get("VIRTSCENARIO_REGEN_DOCS") == "1":
        (DOCS / "settings.md").write_text(text[:begin] + result.output + text[end:])
        return
    assert text[begin:end] == result.output, "docs/settings.md is stale: regenerate the table " \
                                             "with `virtscenario settings --format markdown`"
