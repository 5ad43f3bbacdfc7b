"""Residual VQ (SoundStream / EnCodec / DAC), grouped residual VQ (HiFi-Codec) and product VQ.

Residual VQ quantizes what the previous levels left over, so the first n levels alone
give a coarser reconstruction: one model serves several bitrates. Quantizer dropout trains
that directly: each batch element keeps a random number of levels. Level codebooks may
differ in size, and DAC-style factorized codes come from ``codebook_dim`` (e.g. 8) with
``distance="cosine"`` (L2-normalised lookup). Indices are ``[B, K, *pos]`` with level k
in ``indices[:, k]``; for grouped VQ, group g level l is ``indices[:, g * levels + l]``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .base import Quantizer, QuantizerOutput
from .vq import VectorQuantizer


def _sizes(codebook_size: int | Sequence[int], levels: int) -> list[int]:
    sizes = [int(codebook_size)] * levels if isinstance(codebook_size, int) else [int(s) for s in codebook_size]
    if len(sizes) != levels:
        raise ValueError(f"{len(sizes)} codebook sizes given for {levels} levels")
    return sizes


def sample_levels(batch: int, levels: int, dropout: float, training: bool, device: torch.device) -> Tensor:
    """Levels each batch element keeps: all, or (in training, with probability ``dropout``) 1..levels at random."""
    n = torch.full((batch,), levels, device=device)
    if training and dropout > 0:
        drop = torch.rand(batch, device=device) < dropout
        n = torch.where(drop, torch.randint(1, levels + 1, (batch,), device=device), n)
    return n


def _level_mask(n_active: Tensor, level: int, like: Tensor) -> Tensor:
    """1 where the batch element uses this level, shaped to broadcast over ``like``."""
    return (level < n_active).to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class ResidualVQ(Quantizer):
    """``num_quantizers`` VQ levels on successive residuals."""

    prefix_decodable = True

    def __init__(self, dim: int, num_quantizers: int = 8, codebook_size: int | Sequence[int] = 1024,
                 quantizer_dropout: float = 0.0, **vq_options: Any):
        sizes = _sizes(codebook_size, num_quantizers)
        super().__init__(dim, sizes)
        self.quantizer_dropout = float(quantizer_dropout)
        self.levels = nn.ModuleList(VectorQuantizer(dim, s, **vq_options) for s in sizes)

    def forward(self, x: Tensor, n_quantizers: int | None = None, n_active: Tensor | None = None) -> QuantizerOutput:
        """Quantize with all levels, ``n_quantizers`` of them, or per element ``n_active`` (else dropout)."""
        if n_active is None:
            n_active = (torch.full((x.shape[0],), int(n_quantizers), device=x.device) if n_quantizers else
                        sample_levels(x.shape[0], self.num_codebooks, self.quantizer_dropout, self.training, x.device))
        top = int(n_active.max())
        residual, out = x, torch.zeros_like(x)
        loss = x.new_zeros(())
        indices, metrics = [], {}
        for level, vq in enumerate(self.levels[:top]):
            o = vq(residual)
            mask = _level_mask(n_active, level, x)
            out = out + o.quantized * mask
            residual = residual - o.quantized.detach() * mask
            loss = loss + o.loss
            indices.append(o.indices)
            metrics.update({f"q{level}_{k}": v for k, v in o.metrics.items()})
        used = torch.cat(indices, dim=1)
        metrics["perplexity"] = torch.stack([metrics[f"q{i}_perplexity"] for i in range(top)]).mean()
        metrics["utilization"] = torch.stack([metrics[f"q{i}_utilization"] for i in range(top)]).mean()
        return QuantizerOutput(out, used, loss / max(top, 1), metrics)

    @torch.no_grad()
    def encode(self, x: Tensor, n_quantizers: int | None = None) -> Tensor:
        """Indices of the first ``n_quantizers`` levels (all by default), ``[B, n, *pos]``."""
        n = n_quantizers or self.num_codebooks
        residual, out = x, []
        for vq in self.levels[:n]:
            idx = vq.encode(residual)
            residual = residual - vq.decode(idx)
            out.append(idx)
        return torch.cat(out, dim=1)

    def decode(self, indices: Tensor) -> Tensor:
        """Sum of the levels present (a prefix of the K levels)."""
        self.check_indices(indices)
        out = self.levels[0].decode(indices[:, :1])
        for level in range(1, indices.shape[1]):
            out = out + self.levels[level].decode(indices[:, level:level + 1])
        return out


class GroupedResidualVQ(Quantizer):
    """Channels split into ``groups``, each with its own residual VQ (HiFi-Codec's GRVQ)."""

    def __init__(self, dim: int, groups: int = 2, num_quantizers: int = 4, codebook_size: int | Sequence[int] = 1024,
                 quantizer_dropout: float = 0.0, **vq_options: Any):
        if groups < 1 or dim % groups:
            raise ValueError(f"dim {dim} does not split into {groups} groups")
        sizes = _sizes(codebook_size, num_quantizers)
        super().__init__(dim, sizes * groups)
        self.groups, self.levels_per_group = int(groups), int(num_quantizers)
        self.quantizer_dropout = float(quantizer_dropout)
        self.rvqs = nn.ModuleList(ResidualVQ(dim // groups, num_quantizers, sizes, **vq_options)
                                  for _ in range(groups))

    def forward(self, x: Tensor, n_quantizers: int | None = None) -> QuantizerOutput:
        batch = x.shape[0]
        if n_quantizers:
            n_active = torch.full((batch,), int(n_quantizers), device=x.device)
        else:  # one draw shared by the groups, so every group keeps the same number of levels
            n_active = sample_levels(batch, self.levels_per_group, self.quantizer_dropout, self.training, x.device)
        outs = [rvq(part, n_active=n_active) for rvq, part in zip(self.rvqs, x.chunk(self.groups, dim=1))]
        metrics = {f"g{g}_{k}": v for g, o in enumerate(outs) for k, v in o.metrics.items()}
        metrics["perplexity"] = torch.stack([o.metrics["perplexity"] for o in outs]).mean()
        metrics["utilization"] = torch.stack([o.metrics["utilization"] for o in outs]).mean()
        loss = torch.stack([o.loss for o in outs]).mean()
        return QuantizerOutput(torch.cat([o.quantized for o in outs], dim=1),
                               torch.cat([o.indices for o in outs], dim=1), loss, metrics)

    @torch.no_grad()
    def encode(self, x: Tensor, n_quantizers: int | None = None) -> Tensor:
        """``[B, groups * n, *pos]``, group-major."""
        return torch.cat([rvq.encode(part, n_quantizers) for rvq, part in zip(self.rvqs, x.chunk(self.groups, dim=1))],
                         dim=1)

    def decode(self, indices: Tensor) -> Tensor:
        if indices.ndim < 2 or indices.shape[1] % self.groups:
            raise ValueError(f"indices must hold the same number of levels for each of {self.groups} groups")
        return torch.cat([rvq.decode(part) for rvq, part in zip(self.rvqs, indices.chunk(self.groups, dim=1))], dim=1)


class ProductVQ(GroupedResidualVQ):
    """Multi-codebook (product) VQ: ``num_codebooks`` channel groups, one codebook each."""

    def __init__(self, dim: int, num_codebooks: int = 4, codebook_size: int = 1024, **vq_options: Any):
        super().__init__(dim, groups=num_codebooks, num_quantizers=1, codebook_size=codebook_size, **vq_options)

