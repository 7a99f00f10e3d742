"""The console script around app.main: Ctrl-C before the CLI is imported, or as it exits,
is 'Interrupted.' and 130 (or nothing), never a Python traceback (issue 9)."""

from __future__ import annotations

import subprocess
import sys

INTERRUPT_THE_IMPORT = """
import sys
class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == "virtscenario.cli.app":
            raise KeyboardInterrupt  # what Ctrl-C during the ~30 ms of imports does
        return None
sys.meta_path.insert(0, Interrupting())
from virtscenario.cli.entry import main
sys.argv = ["virtscenario", "scenarios", "list"]
main()
"""


def test_ctrl_c_while_the_cli_is_imported_is_interrupted_not_a_traceback() -> None:
    result = subprocess.run([sys.executable, "-c", INTERRUPT_THE_IMPORT], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 130
    assert result.stderr == "Interrupted.\n"


def test_after_the_command_ctrl_c_is_ignored() -> None:
    code = ("import signal, sys\nfrom virtscenario.cli.entry import main\n"
            "sys.argv = ['virtscenario', '--version']\n"
            "code = 0\ntry:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "print(code, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.splitlines()[-1] == "0 True", result.stdout + result.stderr


def test_the_console_script_and_python_m_use_it() -> None:
    from pathlib import Path
    script = Path(sys.executable).with_name("virtscenario").read_text()
    assert "from virtscenario.cli.entry import main" in script
    result = subprocess.run([sys.executable, "-m", "virtscenario", "--version"], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("virtscenario")
