"""Lookup-Free Quantization (Yu et al. 2023, MAGVIT-v2) and Binary Spherical Quantization (Zhao et al. 2024).

`LFQ` projects the input to ``codebook_bits`` channels and keeps only their signs: the code
is a vertex of the hypercube {-1, 1}^bits and its index is the bits read as an integer
(channel 0 most significant, as vector-quantize-pytorch). Training adds the entropy
penalty of MAGVIT-v2 (low per-sample entropy, high codebook entropy of the soft assignment
``softmax(2 * inv_temperature * <z, c>)`` over all codes) and a commitment loss.
``spherical=True`` is BSQ: the projected vector is L2-normalised and the codes are
``±1 / sqrt(bits)``, on the unit sphere too.

The soft assignment factorizes over bits (its logits are a sum of per-bit terms), so the
per-sample entropy is computed exactly as a sum of binary entropies, and the batch-mean
assignment over all ``2 ** bits`` codes (for the codebook entropy, up to
``full_entropy_max_bits`` = 12) as one GEMM of the assignments over the two halves of the
bits, never materialising ``[N, 2 ** bits]``. Beyond 12 bits the codebook entropy is that
of the factorized per-bit marginals (an upper bound on it).

Codebooks: the categorical prior codes at most 2**16 - 1 symbols (precision 16, one escape),
so more than 15 bits are split into K = ceil(bits / 15) codebooks of consecutive bits,
as even as possible (18 bits -> 9 + 9), each coded on its own.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (Quantizer, QuantizerOutput, channel_linear, codebook_metrics, compute_dtype, flatten_positions, straight_through,
                     unflatten_positions)

MAX_CODEBOOK_BITS = 15  # 2**16 codes + the escape do not fit the 16-bit rANS tables
# Logit gaps are clipped at 25 nats: probabilities stay >= ~1e-11 relative, so no float32 denormals
# (which make CPU arithmetic ~100x slower at inv_temperature 100), at a cost below 1e-6 nats.
_LOGIT_RANGE = 25.0


def split_bits(bits: int, max_bits: int = MAX_CODEBOOK_BITS) -> list[int]:
    """Bits per codebook: ceil(bits / max_bits) codebooks, sizes differing by at most one (larger first)."""
    k = -(-bits // max_bits)
    return [bits // k + (1 if i < bits % k else 0) for i in range(k)]


def _log(p: Tensor, eps: float = 1e-5) -> Tensor:
    """log with the floor vector-quantize-pytorch uses in its entropies."""
    return p.clamp_min(eps).log()


def _binary_entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of Bernoulli(sigmoid(logits)), stable for large |logits|."""
    p = torch.sigmoid(logits)
    return p * F.softplus(-logits) + (1 - p) * F.softplus(logits)


class LFQ(Quantizer):
    """Sign quantizer on ``codebook_bits`` projected channels with MAGVIT-v2's entropy penalty (or BSQ)."""

    _weights: Tensor
    _shifts: Tensor
    _bit_codebook: Tensor

    def __init__(self, dim: int, codebook_bits: int = 10, entropy_loss_weight: float = 0.1,
                 commitment_weight: float = 0.25, diversity_gamma: float = 1.0, spherical: bool = False, *,
                 inv_temperature: float = 100.0, full_entropy_max_bits: int = 12, projection_bias: bool = True):
        if codebook_bits < 1:
            raise ValueError(f"codebook_bits must be >= 1, got {codebook_bits}")
        self.chunks = split_bits(int(codebook_bits))
        super().__init__(dim, [1 << b for b in self.chunks])
        self.codebook_bits = int(codebook_bits)
        self.entropy_loss_weight = float(entropy_loss_weight)
        self.commitment_weight = float(commitment_weight)
        self.diversity_gamma = float(diversity_gamma)
        self.spherical = bool(spherical)
        self.inv_temperature = float(inv_temperature)
        self.full_entropy_max_bits = int(full_entropy_max_bits)
        # Code magnitude: 1, or 1/sqrt(bits) on the sphere (BSQ).
        self.code_scale = 1.0 / math.sqrt(self.codebook_bits) if self.spherical else 1.0
        has_projection = dim != self.codebook_bits
        self.project_in = nn.Linear(dim, self.codebook_bits, bias=projection_bias) if has_projection else None
        self.project_out = nn.Linear(self.codebook_bits, dim, bias=projection_bias) if has_projection else None
        # Bit i of the code has weight 2**shift[i] in its codebook's index (MSB first within a codebook).
        shifts = [s for b in self.chunks for s in range(b - 1, -1, -1)]
        self.register_buffer("_shifts", torch.tensor(shifts, dtype=torch.int64)[:, None], persistent=False)
        self.register_buffer("_weights", torch.tensor([float(1 << s) for s in shifts])[:, None], persistent=False)
        owner = [k for k, b in enumerate(self.chunks) for _ in range(b)]
        self.register_buffer("_bit_codebook", torch.tensor(owner, dtype=torch.int64), persistent=False)
        self._use_full = self.codebook_bits <= self.full_entropy_max_bits
        # The soft assignment factorizes, so the full one is the outer product of those over two halves.
        self._half_bits = (self.codebook_bits // 2, self.codebook_bits - self.codebook_bits // 2)
        hi, lo = self._half_bits if self._use_full else (0, 0)
        self.register_buffer("_codebook_hi", self._hypercube(hi), persistent=False)
        self.register_buffer("_codebook_lo", self._hypercube(lo), persistent=False)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_bits={self.codebook_bits}, codebooks={self.chunks}, "
                f"spherical={self.spherical}")

    # ---------------------------------------------------------------- codes and indices
    def _project_in(self, x: Tensor) -> Tensor:
        """``[B, D, *pos]`` -> ``[B, bits, N]`` in the compute dtype (unit-norm columns for BSQ)."""
        if x.ndim < 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected input [B, {self.dim}, ...], got {tuple(x.shape)}")
        z = channel_linear(self.project_in, flatten_positions(x))
        z = z.to(compute_dtype(z.dtype))
        return F.normalize(z, dim=1) if self.spherical else z

    def _project_out(self, codes: Tensor, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        return unflatten_positions(channel_linear(self.project_out, codes), shape).to(dtype)

    def _sign_codes(self, positive: Tensor, dtype: torch.dtype) -> Tensor:
        """Boolean bits -> ±code_scale values."""
        return torch.where(positive, self.code_scale, -self.code_scale).to(dtype)

    def _bits_to_index(self, positive: Tensor) -> Tensor:
        """Bits ``[B, bits, N]`` (bool) -> indices ``[B, K, N]`` (int64)."""
        weighted = positive * self._weights  # exact in float32: every codebook holds <= 15 bits
        if len(self.chunks) == 1:
            return weighted.sum(dim=1, keepdim=True).long()
        return torch.stack([part.sum(dim=1) for part in weighted.split(self.chunks, dim=1)], dim=1).long()

    def _index_to_bits(self, index: Tensor) -> Tensor:
        """Indices ``[B, K, N]`` -> bits ``[B, bits, N]`` (bool)."""
        per_bit = index if len(self.chunks) == 1 else index.index_select(1, self._bit_codebook)
        return ((per_bit >> self._shifts) & 1).bool()

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Codes ``[B, bits, *pos]`` (signs matter) -> indices ``[B, K, *pos]``."""
        return unflatten_positions(self._bits_to_index(flatten_positions(codes) > 0), codes.shape)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices ``[B, K, *pos]`` -> codes ``[B, bits, *pos]`` (±1, or ±1/sqrt(bits) for BSQ)."""
        self.check_indices(indices)
        bits = self._index_to_bits(flatten_positions(indices.long()))
        return unflatten_positions(self._sign_codes(bits, torch.float32), indices.shape)

    # ---------------------------------------------------------------- losses
    def _hypercube(self, bits: int) -> Tensor:
        """All ``2**bits`` codes of ``bits`` channels ``[2**bits, bits]``, row i = index i (MSB first)."""
        shifts = torch.arange(bits - 1, -1, -1)
        positive = ((torch.arange(1 << bits)[:, None] >> shifts) & 1) > 0
        return torch.where(positive, 1.0, -1.0) * self.code_scale

    def _soft_assignment(self, rows: Tensor, codebook: Tensor) -> Tensor:
        """``softmax(2 t <z, c>)`` of rows ``[N, b]`` over the ``2**b`` codes ``[N, 2**b]`` (b = 0: ones)."""
        if rows.shape[1] == 0:
            return rows.new_ones(rows.shape[0], 1)
        logits = (2 * self.inv_temperature) * (rows @ codebook.t().to(rows.dtype))
        logits = (logits - logits.amax(dim=-1, keepdim=True).detach()).clamp_min(-_LOGIT_RANGE)
        return torch.softmax(logits, dim=-1)

    def _entropy_terms(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(mean per-sample entropy, codebook entropy) of the soft assignment of ``z`` ``[B, bits, N]``, nats."""
        # Logit gap between the two values of bit i: 2 * t * z_i * (c - (-c)).
        bit_logits = ((4 * self.inv_temperature * self.code_scale) * z).clamp(-_LOGIT_RANGE, _LOGIT_RANGE)
        per_sample = _binary_entropy(bit_logits).sum(dim=1).mean()
        if self._use_full:
            rows = z.transpose(1, 2).reshape(-1, z.shape[1])
            hi = self._half_bits[0]
            p_hi = self._soft_assignment(rows[:, :hi], self._codebook_hi)
            p_lo = self._soft_assignment(rows[:, hi:], self._codebook_lo)
            avg = (p_hi.t() @ p_lo).reshape(-1) / rows.shape[0]  # mean over samples of the outer products
        else:
            avg = torch.sigmoid(bit_logits).mean(dim=(0, 2))
            avg = torch.stack([avg, 1 - avg], dim=-1)
        codebook = -(avg * _log(avg)).sum()
        return per_sample, codebook

    # ---------------------------------------------------------------- interface
    def forward(self, x: Tensor) -> QuantizerOutput:
        z = self._project_in(x)
        positive = z > 0
        codes = self._sign_codes(positive, z.dtype)
        index = self._bits_to_index(positive)
        indices = unflatten_positions(index, x.shape)
        metrics = codebook_metrics(indices, self.codebook_sizes)
        loss = torch.zeros((), device=x.device)
        if self.training:
            if self.entropy_loss_weight:
                per_sample, codebook_entropy = self._entropy_terms(z)
                loss = loss + self.entropy_loss_weight * (per_sample - self.diversity_gamma * codebook_entropy)
                metrics["per_sample_entropy"] = per_sample.detach()
                metrics["codebook_entropy"] = codebook_entropy.detach()
            if self.commitment_weight:
                commitment = F.mse_loss(z, codes)
                loss = loss + self.commitment_weight * commitment
                metrics["commitment"] = commitment.detach()
        quantized = self._project_out(straight_through(z, codes), x.shape, x.dtype)
        return QuantizerOutput(quantized, indices, loss, metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Indices ``[B, K, *pos]``."""
        return unflatten_positions(self._bits_to_index(self._project_in(x) > 0), x.shape)

    def decode(self, indices: Tensor) -> Tensor:
        """``[B, K, *pos]`` indices -> ``[B, dim, *pos]``."""
        self.check_indices(indices)
        bits = self._index_to_bits(flatten_positions(indices.long()))
        return self._project_out(self._sign_codes(bits, torch.float32), indices.shape, torch.float32)
