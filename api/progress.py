"""A progress bar on stderr for long command-line jobs: redrawn in place on a terminal, one line per phase otherwise
(so logs and CI output stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_REDRAW_S = 0.1


class ProgressBar:
    """Call with (phase, done, total) as work advances; ``close()`` ends the last line."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.phase = ""
        self.drawn_at = 0.0
        self.open_line = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        finished = done >= total
        if phase != self.phase:
            self.close()
            self.phase = phase
        if self.interactive:
            now = time.monotonic()
            if finished or now - self.drawn_at >= _REDRAW_S:  # redrawing on every row would cost more than the work
                self.drawn_at = now
                self.stream.write("\r" + self._line(phase, done, total))
                self.stream.flush()
                self.open_line = True
        elif finished:
            self.stream.write(self._line(phase, done, total) + "\n")
            self.stream.flush()

    @staticmethod
    def _line(phase: str, done: int, total: int) -> str:
        fraction = done / total if total else 1.0
        filled = round(fraction * _WIDTH)
        return f"{phase:<9} [{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%}  {done}/{total} rows"

    def close(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False
