"""Registering the fleet commands costs nothing heavy: lxml, libvirt and yaml load only when a command runs."""

from __future__ import annotations

import subprocess
import sys


def test_registering_imports_nothing_heavy() -> None:
    from virtscenario.fleet import check, commands
    assert commands.DEFAULT_TIMEOUT == check.DEFAULT_TIMEOUT
    code = ("import sys, click; from virtscenario.fleet.commands import register; g = click.Group(); register(g); "
            "print(sorted(m for m in ('lxml', 'libvirt', 'yaml', 'virtscenario.domain.generate', "
            "'virtscenario.fleet.facts', 'virtscenario.fleet.inventory', 'virtscenario.fleet.check') "
            "if m in sys.modules)); "
            "print(sorted(g.commands))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.splitlines() == ["[]", "['hosts', 'migrate-check']"]
