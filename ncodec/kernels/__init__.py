"""GPU kernels (Triton / CUDA) for the entropy coder and other hot paths live in this package.

Nothing here imports Triton at package import time: ncodec works without it, and the
kernels load on first use (`rans_triton`).
"""
from __future__ import annotations

from ._triton import interpreting, triton_available, triton_missing_reason

__all__ = ["interpreting", "triton_available", "triton_missing_reason"]
