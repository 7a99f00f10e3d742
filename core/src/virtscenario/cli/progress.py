"""Progress for steps that take more than a second (image creation, LUKS key derivation,
preallocation, libvirt define/start), on a terminal only.

``Progress.step(text)`` is the callback the store and libvirt code call when a long step
begins; the line it shows (``text ... 3.2 s``) is redrawn by a timer thread until the next
step or :meth:`Progress.close`, which prints how long the step took. Nothing is printed
when stderr is not a terminal (scripts, CI logs), nor for steps shorter than
``MIN_SECONDS``. Imported only by ``create`` when it writes something: ``--print-xml``
and ``--version`` never load it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any, Optional

MIN_SECONDS = 1.0
TICK = 0.2


class Progress:
    def __init__(self, stream: Optional[IO[str]] = None, enabled: Optional[bool] = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._text = ""
        self._started = 0.0
        self._shown = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(ok=exc[0] is None)

    def step(self, text: str) -> None:
        """A long step begins (ends the previous one)."""
        if not self.enabled:
            return
        with self._lock:
            self._finish_locked(ok=True)
            self._text, self._started, self._shown = text, time.monotonic(), False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="virtscenario-progress", daemon=True)
            self._thread.start()

    def close(self, ok: bool = True) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        with self._lock:
            self._finish_locked(ok)

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                if not self._text:
                    continue
                elapsed = time.monotonic() - self._started
                if elapsed >= MIN_SECONDS:
                    self._draw(f"{self._text} ... {elapsed:.1f} s")
                    self._shown = True

    def _finish_locked(self, ok: bool) -> None:
        if self._text and self._shown:
            elapsed = time.monotonic() - self._started
            self._draw(f"{self._text} ... {'done' if ok else 'interrupted'} ({elapsed:.1f} s)")
            self.stream.write("\n")
            self.stream.flush()
        self._text, self._shown = "", False

    def _draw(self, line: str) -> None:
        # \r and clear-to-end-of-line redraw in place only on one terminal row: a longer line
        # wraps, \r goes back to its last row, and every tick would scroll. The elapsed time
        # at the end is what changes, so the middle of the text gives way.
        width = self._columns() - 1  # the last column would wrap on some terminals
        if len(line) > width:
            tail = line[line.rfind(" ... "):] if " ... " in line else ""
            keep = max(0, width - len(tail) - 1)
            line = (line[:keep] + "…" + tail)[:width]
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80
