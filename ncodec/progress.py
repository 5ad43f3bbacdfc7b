"""A dependency-free progress bar on stderr, silent when stderr is not a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts work done out of ``total`` units and redraws a one-line bar at most 10 times a second."""

    def __init__(self, total: float, label: str = "", stream: TextIO | None = None, enabled: bool | None = None):
        self.total = max(float(total), 1e-12)
        self.done = 0.0
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, amount: float = 1.0) -> None:
        self.done = min(self.total, self.done + amount)
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = self.done / self.total
            bar = "#" * int(30 * frac)
            elapsed = now - self._start
            self.stream.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {elapsed:6.1f}s")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def null_progress(total: float = 1.0, label: str = "") -> Progress:
    """A progress object that draws nothing (for library calls)."""
    return Progress(total, label, enabled=False)
