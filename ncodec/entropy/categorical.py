"""Categorical model of codebook indices (VQ / RVQ tokens): one distribution per codebook.

The distribution is either counted from data (`observe`, then `update` with 1/2
smoothing, exact integer arithmetic) or learned (``logits`` trained through the
log-likelihood). Either way `update` freezes it into integer tables kept as buffers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .cdf import DEFAULT_PRECISION, CdfTables
from .model import TableEntropyModel, symbols_to_numpy


class CategoricalModel(TableEntropyModel):
    """``num_codebooks`` categoricals over ``codebook_size`` symbols; indices are shaped ``[..., K, T]``."""

    def __init__(self, num_codebooks: int, codebook_size: int, learned: bool = False,
                 likelihood_bound: float = 1e-9, precision: int = DEFAULT_PRECISION):
        super().__init__(likelihood_bound, precision)
        if num_codebooks < 1 or not 1 <= codebook_size < (1 << precision):
            raise ValueError("need num_codebooks >= 1 and 1 <= codebook_size < 2**precision")
        self.num_codebooks = int(num_codebooks)
        self.codebook_size = int(codebook_size)
        self.learned = bool(learned)
        if self.learned:
            self.logits = nn.Parameter(torch.zeros(num_codebooks, codebook_size))
        else:
            self.register_buffer("counts", torch.zeros(num_codebooks, codebook_size, dtype=torch.int64))

    def _check(self, indices: Tensor, min_ndim: int = 2) -> None:
        """Raise unless ``indices`` is ``[..., k, T]`` with 1 <= k <= K (at least ``min_ndim`` dims).

        k < K codes the first k codebooks (the coarse levels of a residual quantizer).
        """
        if indices.ndim < min_ndim or not 1 <= indices.shape[-2] <= self.num_codebooks:
            raise ValueError(f"indices must be shaped [..., k <= {self.num_codebooks}, T] with at least {min_ndim} "
                             f"dims, got {tuple(indices.shape)}")

    def observe(self, indices: Tensor) -> None:
        """Add the occurrences of each index, per codebook, to the counts (counted mode only)."""
        if self.learned:
            raise ValueError("observe() counts indices for a counted model; this one is learned")
        self._check(indices)
        k = indices.shape[-2]
        idx = indices.detach().movedim(-2, 0).reshape(k, -1).to(self.counts.device, torch.int64)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size})")
        flat = idx + self.codebook_size * torch.arange(k, device=idx.device)[:, None]
        self.counts += torch.bincount(flat.reshape(-1), minlength=self.counts.numel()).view_as(self.counts)

    def log_probabilities(self) -> Tensor:
        """``[K, V]`` natural-log probabilities: log_softmax of the logits, or smoothed count frequencies."""
        if self.learned:
            return torch.log_softmax(self.logits, dim=-1)
        smoothed = self.counts.double() + 0.5
        return (smoothed / smoothed.sum(dim=-1, keepdim=True)).log().float()

    def forward(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """(indices, likelihoods): indices are already discrete; likelihoods are differentiable when learned."""
        self._check(indices)
        log_p = self.log_probabilities()
        codebook = torch.arange(indices.shape[-2], device=log_p.device)[:, None]
        return indices, self._bound(log_p[codebook, indices.to(log_p.device).long()].exp())

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Quantise the distribution (counts + 1/2, or softmax of the logits) into integer tables."""
        if self.has_tables and not force:
            return False
        if self.learned:
            pmf = torch.softmax(self.logits.detach().double().cpu(), dim=-1).numpy()
        else:
            pmf = self.counts.cpu().numpy().astype(np.float64) + 0.5
        # Valid indices never escape: the escape keeps only its minimum frequency.
        self._store_tables(CdfTables.from_pmf(pmf, escape_mass=0.0, precision=self.precision))
        return True

    def _indexes(self, shape: Sequence[int]) -> Tensor:
        """Table index (= codebook) of each element of an ``[..., K, T]`` tensor."""
        return torch.arange(shape[-2], dtype=torch.int32)[:, None].expand(*shape)

    def compress(self, indices: Tensor) -> list[bytes]:
        """One stream per batch element (first dim) of ``indices`` ``[B, ..., K, T]``, codebook k with table k."""
        self._check(indices, min_ndim=3)
        return self._encode(indices, self._indexes(indices.shape))

    def decompress(self, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
        """Indices ``[len(strings), *size]`` (``size`` = ``[..., K, T]``) as int64, on the module's device."""
        shape = (len(strings), *size)
        if len(shape) < 3 or not 1 <= shape[-2] <= self.num_codebooks:
            raise ValueError(f"size must end in (k <= {self.num_codebooks}, T), got {tuple(size)}")
        device = (self.logits if self.learned else self.counts).device
        return self._decode(strings, self._indexes(shape)).to(device)

    def bits(self, indices: Tensor) -> Tensor:
        """Exact coded size of each index in bits (float64, same shape and device), stream headers excluded."""
        self._check(indices)
        tables = self.tables()
        symbols = symbols_to_numpy(indices.reshape(1, -1))
        table_index = self._indexes(indices.shape).reshape(-1).numpy()
        bits = torch.from_numpy(tables.code_lengths(symbols, table_index)).reshape(indices.shape)
        return bits.to(indices.device)
