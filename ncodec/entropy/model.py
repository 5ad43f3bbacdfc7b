"""Shared base of the entropy models: quantisation, the likelihood bound, integer table buffers.

Every model trains on a differentiable likelihood and codes through integer `CdfTables`
with the rANS coder, one stream per batch element. Models whose tables do not depend on
the data (factorized, scale-indexed, categorical) keep them as integer buffers, so the
encoder and the decoder read the very same integers whatever machine built them.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import BitstreamError, EntropyCodingError
from . import rans
from .cdf import DEFAULT_PRECISION, CdfTables

QuantizeMode = Literal["noise", "ste"]
MAX_SUPPORT = 8191  # widest stored table (symbols); values beyond it take the escape path


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it pushes x up toward the bound."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: Tensor) -> Tensor:
        ctx.save_for_backward(x, bound)
        return torch.maximum(x, bound)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        x, bound = ctx.saved_tensors
        return grad * ((x >= bound) | (grad < 0)).to(grad.dtype), None


def lower_bound(x: Tensor, bound: float | Tensor) -> Tensor:
    """``max(x, bound)`` with a straight-through gradient below the bound (as CompressAI's LowerBound).

    A plain clamp would zero the gradient of values stuck under the bound, so they could
    never recover; this lets gradients that would increase x pass.
    """
    b = torch.as_tensor(bound, dtype=x.dtype, device=x.device)
    return _LowerBound.apply(x, b)


def quantize_values(y: Tensor, training: bool, mode: QuantizeMode = "noise", means: Tensor | None = None) -> Tensor:
    """The training proxy (uniform noise, or straight-through rounding) or, in eval, rounding around ``means``."""
    if mode not in ("noise", "ste"):
        raise ValueError(f'quantize must be "noise" or "ste", got {mode!r}')
    if training and mode == "noise":
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)
    rounded = torch.round(y) if means is None else torch.round(y - means) + means
    if training:  # straight-through: the value is rounded, the gradient is the identity
        return y + (rounded - y).detach()
    return rounded


def symbols_to_numpy(symbols: Tensor) -> np.ndarray:
    """Integer-valued tensor ``[B, ...]`` as a CPU int64 array ``[B, N]`` (coding happens in numpy)."""
    if not torch.all(torch.isfinite(symbols)):
        raise EntropyCodingError("cannot code non-finite values")
    return symbols.detach().to("cpu", torch.float64).reshape(symbols.shape[0], -1).numpy().astype(np.int64)


def check_strings(strings: Sequence[bytes], batch: int) -> None:
    """Raise unless ``strings`` is a list of one stream per batch element."""
    if not isinstance(strings, (list, tuple)) or not all(isinstance(s, (bytes, bytearray, memoryview))
                                                         for s in strings):
        raise BitstreamError("strings must be a list of bytes, one stream per batch element")
    if len(strings) != batch:
        raise BitstreamError(f"got {len(strings)} streams for a batch of {batch}")


class EntropyModel(nn.Module):
    """Base of all entropy models: the likelihood bound and the train/eval quantisation switch."""

    def __init__(self, likelihood_bound: float = 1e-9, precision: int = DEFAULT_PRECISION):
        super().__init__()
        self.likelihood_bound = float(likelihood_bound)
        self.precision = int(precision)

    def _training(self, training: bool | None) -> bool:
        """Resolve the ``training`` argument of forward (None follows the module's mode)."""
        return self.training if training is None else bool(training)

    def _bound(self, likelihood: Tensor) -> Tensor:
        """Likelihoods floored at ``likelihood_bound`` so -log2 stays finite."""
        return lower_bound(likelihood, self.likelihood_bound) if self.likelihood_bound > 0 else likelihood

    def update(self, force: bool = False) -> bool:
        """Build the coding tables; True if they were (re)built."""
        raise NotImplementedError


class TableEntropyModel(EntropyModel):
    """An entropy model whose coding tables are fixed integer buffers, rebuilt by `update`.

    The buffers follow CompressAI's names: ``_quantized_cdf`` ``[T, stride]`` (our
    `CdfTables.cdf`), ``_offset`` ``[T]`` and ``_cdf_length`` ``[T]`` (= size + 2, the
    escape included). They travel in ``state_dict`` and may change size on load.
    """

    _quantized_cdf: Tensor
    _offset: Tensor
    _cdf_length: Tensor
    _resizable_buffers: tuple[str, ...] = ("_quantized_cdf", "_offset", "_cdf_length")

    def __init__(self, likelihood_bound: float = 1e-9, precision: int = DEFAULT_PRECISION):
        super().__init__(likelihood_bound, precision)
        self.register_buffer("_quantized_cdf", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_offset", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_cdf_length", torch.zeros(0, dtype=torch.int32))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Tables (and scale tables) may differ in size from this module's: take the incoming shape.
        for name in self._resizable_buffers:
            incoming = state_dict.get(prefix + name)
            current = self._buffers.get(name)
            if incoming is not None and current is not None and incoming.shape != current.shape:
                self._buffers[name] = torch.empty(incoming.shape, dtype=current.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def has_tables(self) -> bool:
        """Whether `update` (or a loaded state_dict) has provided coding tables."""
        return self._quantized_cdf.numel() > 0

    def tables(self) -> CdfTables:
        """The coding tables as a `CdfTables` (its precision read from the table itself)."""
        if not self.has_tables:
            raise EntropyCodingError(f"{type(self).__name__} has no coding tables yet: call update() "
                                     "(or load a state_dict that has them) before compress/decompress")
        cdf = self._quantized_cdf.detach().cpu().numpy()
        lengths = self._cdf_length.detach().cpu().numpy().astype(np.int64)
        precision = int(cdf[0, lengths[0] - 1]).bit_length() - 1
        return CdfTables(cdf, lengths - 2, self._offset.detach().cpu().numpy(), precision)

    def _store_tables(self, tables: CdfTables) -> None:
        """Write ``tables`` into the integer buffers, on the buffers' device."""
        device = self._quantized_cdf.device
        self._quantized_cdf = torch.from_numpy(tables.cdf.copy()).to(device)
        self._offset = torch.from_numpy(tables.offsets.copy()).to(device)
        self._cdf_length = torch.from_numpy(tables.sizes + 2).to(device)

    def _encode(self, symbols: Tensor, indexes: Tensor) -> list[bytes]:
        """One rANS stream per batch element: ``symbols[b]`` coded with tables ``indexes[b]``."""
        tables = self.tables()
        sym = symbols_to_numpy(symbols)
        idx = indexes.detach().cpu().reshape(sym.shape[0], -1).numpy()
        return [rans.encode(s, i, tables) for s, i in zip(sym, idx)]

    def _decode(self, strings: Sequence[bytes], indexes: Tensor) -> Tensor:
        """Decode one stream per batch element with table ``indexes[b]``; int64 CPU tensor of ``indexes``' shape."""
        check_strings(strings, indexes.shape[0])
        tables = self.tables()
        idx = indexes.detach().cpu().reshape(indexes.shape[0], -1).numpy()
        out = np.stack([rans.decode(s, i, tables).astype(np.int64) for s, i in zip(strings, idx)]) \
            if len(strings) else np.zeros(idx.shape, dtype=np.int64)
        return torch.from_numpy(out).reshape(indexes.shape)
