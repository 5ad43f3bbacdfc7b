"""Timing helpers shared by the benchmarks: best-of-N wall time of a call."""
from __future__ import annotations

import time
from typing import Any, Callable


def best_time(fn: Callable[[], Any], repeats: int = 5, min_total: float = 0.0) -> tuple[float, Any]:
    """Smallest wall time of ``repeats`` calls (at least until ``min_total`` seconds passed), and the last result."""
    best = float("inf")
    result: Any = None
    spent = 0.0
    runs = 0
    while runs < repeats or spent < min_total:
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
    return best, result
