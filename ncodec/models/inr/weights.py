"""Quantization and entropy coding of the decoder networks' weights (synthesis, upsampler, ARM).

Each tensor gets its own step ``2**-e`` (``e`` an integer exponent, so dequantized weights
``k * 2**-e`` are exact in float32 and float64 alike, which the exact ARM relies on), chosen
greedily by rate-distortion: for each tensor in turn, every candidate exponent is tried on
the model and the one with the lowest ``distortion + lambda * rate`` is kept (`rd_quantize`).
The integers of all tensors form one rANS stream; each tensor is coded with the zero-mean
Laplace table (`tables.weight_tables`) of the rung that codes it in the fewest bits.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ...entropy import rans
from ...errors import BitstreamError
from . import tables as tb

MAX_EXPONENT = 24                      # steps 1 .. 2**-24
CANDIDATE_EXPONENTS = tuple(range(3, 15))
WEIGHT_INT_MAX = 1 << 24               # |k| bound: k * 2**-e stays exact in float32


@dataclass(frozen=True)
class TensorCode:
    """How one tensor is coded: step exponent and table rung."""

    exponent: int
    rung: int


def to_integers(t: Tensor, exponent: int) -> np.ndarray:
    """``round(t * 2**e)`` as int64 (flattened, on the CPU)."""
    return torch.round(t.detach().to("cpu", torch.float64) * 2.0 ** exponent).reshape(-1).numpy().astype(np.int64)


def from_integers(ints: np.ndarray, exponent: int, like: Tensor) -> Tensor:
    """``ints * 2**-e`` shaped, typed and placed like ``like`` (exact: |ints| <= 2**24)."""
    values = torch.from_numpy(np.asarray(ints, dtype=np.float64) * 2.0 ** -exponent)
    return values.reshape(like.shape).to(device=like.device, dtype=like.dtype)


def best_rung(ints: np.ndarray) -> tuple[int, float]:
    """The weight-table rung coding ``ints`` in the fewest bits, and those bits."""
    tables = tb.weight_tables()
    if ints.size == 0:
        return 0, 0.0
    costs = [float(tables.code_lengths(ints, np.full(ints.size, k)).sum()) for k in range(tables.num_tables)]
    k = int(np.argmin(costs))
    return k, costs[k]


def encode_weights(ints: Sequence[np.ndarray], rungs: Sequence[int]) -> bytes:
    """One rANS stream of all tensors' integers, each tensor with its rung's table."""
    sym = np.concatenate([np.asarray(i, dtype=np.int64).reshape(-1) for i in ints]) if ints else np.zeros(0, np.int64)
    idx = np.concatenate([np.full(np.asarray(i).size, r, dtype=np.int32) for i, r in zip(ints, rungs)]) \
        if ints else np.zeros(0, np.int32)
    return rans.encode(sym, idx, tb.weight_tables())


def decode_weights(data: bytes | memoryview, sizes: Sequence[int], rungs: Sequence[int]) -> list[np.ndarray]:
    """The tensors' integers (flat) from `encode_weights`' stream; bounded and checked."""
    idx = np.concatenate([np.full(n, r, dtype=np.int32) for n, r in zip(sizes, rungs)]) if sizes \
        else np.zeros(0, np.int32)
    values = rans.decode(data, idx, tb.weight_tables()).astype(np.int64)
    if values.size and np.abs(values).max() > WEIGHT_INT_MAX:
        raise BitstreamError("corrupt weight stream: a weight is out of range")
    return np.split(values, np.cumsum(sizes)[:-1]) if sizes else []


def rd_quantize(tensors: Sequence[tuple[str, nn.Parameter]], cost: Callable[[str], float], bit_cost: float,
                candidates: Sequence[int] = CANDIDATE_EXPONENTS) -> list[TensorCode]:
    """Quantize ``tensors`` (group name, parameter) in place, greedily by rate-distortion.

    ``cost(group)`` is the part of the loss a tensor of that group affects (e.g. the MSE for
    the synthesis, lambda * latent bits per pixel for the ARM) with the model as it stands;
    ``bit_cost`` is the loss of one weight bit. Tensors are quantized in order, each keeping
    the candidate exponent of lowest ``cost + bit_cost * bits``; earlier ones stay quantized.
    """
    codes = []
    with torch.no_grad():
        for group, param in tensors:
            original = param.detach().clone()
            best: tuple[float, int, int] | None = None
            for e in candidates:
                ints = to_integers(original, e)
                if ints.size and np.abs(ints).max() > WEIGHT_INT_MAX:
                    continue
                rung, bits = best_rung(ints)
                param.copy_(from_integers(ints, e, param))
                total = cost(group) + bit_cost * bits
                if best is None or total < best[0]:
                    best = (total, e, rung)
            if best is None:
                raise ValueError(f"a {group} weight is too large to quantize ({float(original.abs().max()):.3g})")
            _, e, rung = best
            param.copy_(from_integers(to_integers(original, e), e, param))
            codes.append(TensorCode(e, rung))
    return codes
