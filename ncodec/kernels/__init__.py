"""GPU kernels (Triton / CUDA) for the entropy coder and other hot paths live in this package.

Nothing here imports Triton at package import time: ncodec works without it, and the
kernels load on first use (`rans_triton`). The kernels import the CPU coder's stream format
(`ncodec.entropy.rans`), never the other way round: importing this package registers the
device coder (`rans_device`) with the CPU coder, and ``import ncodec`` imports it.
"""
from __future__ import annotations

from ..entropy import rans as _rans
from . import rans_device as _rans_device
from ._triton import interpreting, triton_available, triton_missing_reason

_rans.register_device_coder(_rans_device)  # CUDA tensors given to ncodec.entropy.rans come here

__all__ = ["interpreting", "triton_available", "triton_missing_reason"]
