"""Progress reports on stderr without dependencies: a redrawn bar on a terminal, and on anything else
(a log file, a pipe, CI) one plain line every `LOG_EVERY` seconds once work has run `LOG_AFTER` seconds,
so that long fits and evaluations are visibly alive without flooding logs."""
from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_AFTER = 5.0    # seconds before the first line on a non-terminal (short work prints nothing)
LOG_EVERY = 10.0   # seconds between lines on a non-terminal


class Progress:
    """Counts work done out of ``total`` units and reports it: a one-line bar redrawn at most 10 times a
    second on a terminal, periodic plain lines elsewhere. ``enabled`` None reports (on stderr); False is
    silent."""

    def __init__(self, total: float, label: str = "", stream: TextIO | None = None, enabled: bool | None = None):
        self.total = max(float(total), 1e-12)
        self.done = 0.0
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = True if enabled is None else bool(enabled)
        isatty = getattr(self.stream, "isatty", None)
        #: "bar" on a terminal, "log" elsewhere.
        self.style = "bar" if isatty is not None and isatty() else "log"
        self._start = time.monotonic()
        self._last = 0.0
        self._logged = False

    def update(self, amount: float = 1.0) -> None:
        self.done = min(self.total, self.done + amount)
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self._start
        frac = self.done / self.total
        if self.style == "bar":
            if now - self._last > 0.1 or self.done >= self.total:
                self._last = now
                bar = "#" * int(30 * frac)
                self.stream.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {elapsed:6.1f}s")
                self.stream.flush()
        elif elapsed >= LOG_AFTER and now - self._last >= LOG_EVERY:
            self._last = now
            self._logged = True
            self.stream.write(f"{self.label}: {100 * frac:.0f}% after {elapsed:.0f} s\n")
            self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.style == "bar":
            self.stream.write("\n")
        elif self._logged:
            self.stream.write(f"{self.label}: done in {time.monotonic() - self._start:.0f} s\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def null_progress(total: float = 1.0, label: str = "") -> Progress:
    """A progress object that reports nothing (for library calls)."""
    return Progress(total, label, enabled=False)
