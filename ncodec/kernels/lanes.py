"""How many rANS lanes a GPU stream gets: many short lanes, since a lane is a sequential coder."""
from __future__ import annotations

from ..entropy.rans import MAX_LANES

__all__ = ["GPU_SYMBOLS_PER_LANE", "gpu_default_lanes"]

GPU_SYMBOLS_PER_LANE = 4096


def gpu_default_lanes(n: int) -> int:
    """Lanes for N symbols on a GPU: one per 4096 symbols (~0.5% of the stream at 4 bits/symbol)."""
    return int(max(1, min(n // GPU_SYMBOLS_PER_LANE, MAX_LANES)))
