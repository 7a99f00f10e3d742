"""The console script ``virtscenario`` and ``python -m virtscenario``.

:func:`virtscenario.cli.app.main` turns Ctrl-C during a command into ``Interrupted.`` and
exit 130. This module closes the two gaps around it: Ctrl-C while the CLI is still being
imported (Python would print a traceback) and Ctrl-C as the process exits, after the
work is done (Python would print "Exception ignored in threading").
"""

from __future__ import annotations

# The C module that signal.py wraps: already loaded at start-up, while signal.py builds its
# enums on import (~0.4 ms of every run).
import _signal as signal
import sys
from typing import NoReturn

INTERRUPTED = 130


def main() -> None:
    try:
        from .app import main as run
    except KeyboardInterrupt:
        _interrupted()
    try:
        run()
    except KeyboardInterrupt:  # between app.main's own handlers, or in them
        _interrupted()
    finally:
        # The command is over (its exit status is set): a Ctrl-C from now on changes nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted() -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stderr.write("Interrupted.\n")
        sys.stderr.flush()
    except OSError:
        pass
    sys.exit(INTERRUPTED)
