"""The device coder `ncodec.entropy.rans` hands CUDA inputs to: the Triton kernels, or the CPU coder
without Triton. `ncodec.kernels` registers it with the CPU coder (`rans.register_device_coder`)
when imported, which ``import ncodec`` does.

Importing this module does not import Triton. Without Triton, CUDA inputs are coded by the
CPU coder with the GPU lane count, so the bytes are the same either way (only slower), and a
warning says so once.
"""
from __future__ import annotations

import warnings
from typing import Any

from ..entropy import rans as cpu_rans
from ..entropy.cdf import CdfTables
from ._triton import triton_available, triton_missing_reason
from .lanes import gpu_default_lanes

_warned = False


def _fallback_warning() -> None:
    """Warn, once per process, that CUDA inputs are coded on the CPU."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"CUDA tensors are entropy coded on the CPU: {triton_missing_reason()}", RuntimeWarning,
                      stacklevel=3)


def _host(values: Any) -> Any:
    """A tensor as a numpy array (so the CPU coder does not send it back here); anything else as is."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else values


def encode(symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None) -> bytes:
    """Encode CUDA inputs with the Triton kernels (`gpu_default_lanes` unless ``lanes`` is given)."""
    if triton_available():
        from . import rans_triton

        return rans_triton.encode(symbols, table_index, tables, lanes)
    _fallback_warning()
    symbols = cpu_rans.as_int32(_host(symbols), "symbols")
    lanes = gpu_default_lanes(symbols.size) if lanes is None else lanes
    return cpu_rans.encode(symbols, _host(table_index), tables, lanes)


def decode(data: Any, table_index: Any, tables: CdfTables, count: int | None = None, device: Any = None) -> Any:
    """Decode on the GPU into an int32 CUDA tensor (on ``device``, else the inputs' device)."""
    if triton_available():
        from . import rans_triton

        return rans_triton.decode(data, table_index, tables, count, device=device)
    import torch

    _fallback_warning()
    if device is None:
        device = next(x.device for x in (data, table_index) if isinstance(x, torch.Tensor))
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy().tobytes()
    return torch.from_numpy(cpu_rans.decode(data, _host(table_index), tables, count)).to(device)
