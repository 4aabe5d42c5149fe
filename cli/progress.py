"""A one-line progress bar for a terminal, redrawn in place with a carriage return."""

from __future__ import annotations

from typing import TextIO


class ProgressBar:
    """Draws `[#####-----]  50%  note` on `stream`; `done` and `total` share any unit (bytes, records)."""

    def __init__(self, total: int, stream: TextIO, width: int = 30):
        self._total = max(total, 1)
        self._stream = stream
        self._width = width
        self._last_length = 0

    def update(self, done: int, note: str = "") -> None:
        fraction = min(max(done / self._total, 0.0), 1.0)
        filled = int(fraction * self._width)
        line = f"[{'#' * filled}{'-' * (self._width - filled)}] {fraction:4.0%}  {note}".rstrip()
        # Pad with spaces so a shorter line fully covers the previous one.
        self._stream.write("\r" + line.ljust(self._last_length))
        self._stream.flush()
        self._last_length = len(line)

    def message(self, text: str) -> None:
        """Prints a line of its own above the bar; the bar is redrawn by the next update()."""
        self._stream.write("\r" + text.ljust(self._last_length) + "\n")
        self._stream.flush()
        self._last_length = 0

    def close(self) -> None:
        if self._last_length:
            self._stream.write("\n")
            self._stream.flush()
        self._last_length = 0


class NoProgress:
    """Stands in for ProgressBar when the stream is not a terminal (a log file, a pipe): messages only."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def update(self, done: int, note: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


def progress_for(stream: TextIO, total: int) -> ProgressBar | NoProgress:
    """A bar when `stream` is a terminal, otherwise plain messages."""
    isatty = getattr(stream, "isatty", None)
    return ProgressBar(total, stream) if isatty is not None and isatty() else NoProgress(stream)
