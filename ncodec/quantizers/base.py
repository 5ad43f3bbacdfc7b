"""The interface every quantizer shares, and the index layouts tokenizers and bitstreams rely on.

Layouts (stable: tokenizers, interleaving patterns and bitstreams depend on them)
    Inputs are channels-first: ``[B, D, T]`` (audio frames) or ``[B, D, H, W]`` (images);
    any number of trailing positions works. Indices are ``[B, K, T]`` / ``[B, K, H, W]``,
    int64, with K the number of codebooks (residual levels, groups, or heads): level /
    group k of every position lies in ``indices[:, k]``. A quantizer without codebooks
    (scalar) uses K = D, one index per channel.

Every quantizer is a torch module with
    ``forward(x) -> QuantizerOutput(quantized, indices, loss, metrics)`` for training
    (straight-through gradients; ``loss`` holds its commitment / codebook terms),
    ``encode(x) -> indices`` (deterministic), ``decode(indices) -> x``, and
    ``bits(indices)``: the real coded size through the rANS core with a categorical prior
    per codebook, counted from data with `observe_prior` (or learned), so the rate is
    known and not only the nominal ``log2(codebook size)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..entropy.categorical import CategoricalModel


@dataclass
class QuantizerOutput:
    """What `Quantizer.forward` returns."""

    quantized: Tensor                  # like the input, gradients pass straight through
    indices: Tensor                    # int64 [B, K, *positions]
    loss: Tensor                       # scalar training loss of the quantizer itself (0 if none)
    metrics: dict[str, Tensor] = field(default_factory=dict)  # perplexity, utilization, ...


def to_vectors(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``[B, D, *pos]`` -> ``[B * prod(pos), D]`` rows, and the shape to undo it."""
    if x.ndim < 2:
        raise ValueError(f"quantizer input must be [B, D, ...], got shape {tuple(x.shape)}")
    return x.movedim(1, -1).reshape(-1, x.shape[1]), tuple(x.shape)


def from_vectors(v: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of `to_vectors` (``v`` may have another last dim)."""
    b, _, *pos = shape
    return v.reshape(b, *pos, v.shape[-1]).movedim(-1, 1)


def indices_from_rows(idx: Tensor, shape: Sequence[int]) -> Tensor:
    """Per-row indices ``[N, K]`` -> ``[B, K, *pos]``."""
    return from_vectors(idx, shape)


def indices_to_rows(indices: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``[B, K, *pos]`` -> ``[N, K]`` and the layout shape ``(B, K, *pos)``."""
    return to_vectors(indices)


class _StraightThrough(torch.autograd.Function):
    """Returns ``q`` bit for bit; the gradient goes to ``x`` unchanged."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, q: Tensor) -> Tensor:
        return q.view_as(q)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def straight_through(x: Tensor, q: Tensor) -> Tensor:
    """``q`` exactly (unlike ``x + (q - x).detach()``, which is off by rounding) with identity gradient to ``x``.

    Exactness keeps ``forward(x).quantized`` equal to ``decode(encode(x))`` in every mode.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q
    return _StraightThrough.apply(x, q.to(x.dtype))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Quantization runs in float32 at least (bf16 / fp16 inputs are promoted, float64 stays)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def codebook_metrics(indices: Tensor, sizes: Sequence[int], dropped: bool = False) -> dict[str, Tensor]:
    """Perplexity and utilization (fraction of codes used) of each of the K codebooks of ``indices`` ``[B, K, ...]``.

    Keys: ``perplexity`` / ``utilization`` when K = 1; otherwise ``q{k}_perplexity`` /
    ``q{k}_utilization`` per codebook plus their means as ``perplexity`` / ``utilization``.
    ``dropped``: indices may be -1 (levels dropped in training), which are not counted.
    No device sync on CUDA (a scatter of fixed size instead of bincount).
    """
    k, width = indices.shape[1], max(sizes)
    idx = indices.detach().reshape(indices.shape[0], k, -1)
    flat = idx + width * torch.arange(k, device=idx.device)[:, None]  # codebook k counts into bins k * width + i
    if dropped:
        flat = torch.where(idx < 0, k * width, flat)  # a spare bin past the end
    flat = flat.reshape(-1)
    if flat.is_cuda:
        ones = torch.ones((), device=idx.device).expand(flat.numel())
        counts = torch.zeros(k * width + 1, device=idx.device).index_add_(0, flat, ones)
    else:
        counts = torch.bincount(flat, minlength=k * width + 1).float()
    counts = counts[:k * width].view(k, width)
    p = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(dim=1))
    used = (counts > 0).sum(dim=1).float()
    if min(sizes) == width:  # equal sizes: no host-to-device copy of the sizes
        utilization = used / width
    else:
        utilization = used / torch.tensor(list(sizes), device=idx.device, dtype=torch.float32)
    if k == 1:
        return {"perplexity": perplexity[0], "utilization": utilization[0]}
    metrics: dict[str, Tensor] = {}
    for i, (ppl, use) in enumerate(zip(perplexity.unbind(0), utilization.unbind(0))):
        metrics[f"q{i}_perplexity"] = ppl
        metrics[f"q{i}_utilization"] = use
    metrics["perplexity"] = perplexity.mean()
    metrics["utilization"] = utilization.mean()
    return metrics


def channel_linear(layer: nn.Linear | None, x: Tensor) -> Tensor:
    """Apply ``layer`` along dim 1 of ``x`` ``[B, C, N]`` (no transpose to channels-last; None = identity)."""
    if layer is None:
        return x
    w = layer.weight.expand(x.shape[0], -1, -1)  # batched GEMM with a stride-0 weight: no copies
    x = x.to(w.dtype)
    return torch.bmm(w, x) if layer.bias is None else torch.baddbmm(layer.bias[None, :, None], w, x)


def flatten_positions(x: Tensor) -> Tensor:
    """``[B, C, *pos]`` -> ``[B, C, N]`` (a view when contiguous)."""
    if x.ndim < 2:
        raise ValueError(f"quantizer input must be [B, D, ...], got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], x.shape[1], -1)


def unflatten_positions(x: Tensor, like: Sequence[int]) -> Tensor:
    """``[B, C, N]`` -> ``[B, C, *pos]`` with ``pos`` taken from the shape ``like``."""
    return x.reshape(x.shape[0], x.shape[1], *like[2:])


class Quantizer(nn.Module):
    """Base class: the codebook prior and ``bits``; subclasses implement forward / encode / decode.

    ``codebook_sizes`` gives the number of codes of each of the K codebooks.
    """

    prefix_decodable = False  # residual quantizers also take the first k < K codebooks

    def __init__(self, dim: int, codebook_sizes: Sequence[int]):
        super().__init__()
        if dim < 1 or not codebook_sizes or min(codebook_sizes) < 2:
            raise ValueError("a quantizer needs dim >= 1 and codebooks of at least 2 codes")
        self.dim = int(dim)
        self.codebook_sizes = [int(s) for s in codebook_sizes]
        self.prior = CategoricalModel(len(self.codebook_sizes), max(self.codebook_sizes))

    @property
    def num_codebooks(self) -> int:
        return len(self.codebook_sizes)

    @property
    def nominal_bits(self) -> float:
        """Bits per position without entropy coding: sum of log2(codebook size)."""
        return float(sum(math.log2(s) for s in self.codebook_sizes))

    def forward(self, x: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, indices: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_indices(self, indices: Tensor) -> None:
        """Raise ValueError unless ``indices`` is ``[B, K, ...]`` (or a prefix of the K codebooks, for
        residual quantizers) with every index inside its codebook."""
        k = indices.shape[1] if indices.ndim >= 2 else 0
        if not (k == self.num_codebooks or (self.prefix_decodable and 1 <= k <= self.num_codebooks)):
            raise ValueError(f"indices must be [B, {self.num_codebooks}, ...], got {tuple(indices.shape)}")
        sizes = torch.tensor(self.codebook_sizes[:k], device=indices.device).view(1, -1, *([1] * (indices.ndim - 2)))
        if indices.numel() and ((indices < 0).any() or (indices >= sizes).any()):
            raise ValueError("indices outside their codebook")

    # ---------------------------------------------------------------- rate
    @staticmethod
    def _flat(indices: Tensor) -> Tensor:
        """``[B, K, *pos]`` -> ``[B, K, T]`` as the categorical prior wants it."""
        return indices.reshape(indices.shape[0], indices.shape[1], -1)

    @torch.no_grad()
    def observe_prior(self, indices: Tensor) -> None:
        """Count indices into the prior (call over a training set, then `update_prior`)."""
        self.check_indices(indices)
        self.prior.observe(self._flat(indices))

    def update_prior(self, force: bool = True) -> None:
        """Freeze the prior into integer coding tables."""
        self.prior.update(force=force)

    def bits(self, indices: Tensor) -> Tensor:
        """Exact coded bits of ``indices`` under the prior (stream headers excluded): a float64 scalar."""
        self.check_indices(indices)
        if not self.prior.has_tables:
            self.prior.update()
        return self.prior.bits(self._flat(indices)).sum()

    def compress(self, indices: Tensor) -> list[bytes]:
        """One rANS stream per batch element, each codebook with its prior table."""
        self.check_indices(indices)
        if not self.prior.has_tables:
            self.prior.update()
        return self.prior.compress(self._flat(indices))

    def decompress(self, strings: Sequence[bytes], shape: Sequence[int]) -> Tensor:
        """Indices ``[len(strings), K, *pos]`` from `compress` output; ``shape`` is ``(K, *pos)``."""
        k, *pos = shape
        flat = self.prior.decompress(strings, (k, math.prod(pos)))
        out = flat.reshape(len(strings), k, *pos)
        self.check_indices(out)
        return out
