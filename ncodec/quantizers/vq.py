"""Vector quantization: one codebook, nearest-code assignment, EMA or learned codes.

Training keeps codes alive and useful: k-means initialisation on the first batch,
exponential-moving-average updates (van den Oord et al. 2017, Razavi et al. 2019) or a
learned codebook with its codebook loss, dead-code restart from the current batch, L2 or
cosine distance, optional low-dimensional codes behind linear projections (DAC's factorized
codes: ``distance="cosine"`` for its L2-normalised lookup, ``normalize_codes=False`` so that
only the lookup is normalised, ``projection="conv"`` for its 1x1-convolution projections),
and the rotation trick
(Fifty et al. 2024) as an alternative to the straight-through estimator.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Quantizer, QuantizerOutput, codebook_metrics, from_vectors, straight_through, to_vectors

Distance = Literal["l2", "cosine"]
Projection = Literal["linear", "conv"]


def kmeans_plus_plus(x: Tensor, k: int) -> Tensor:
    """k-means++ seeds: each next seed drawn with probability proportional to its squared distance."""
    n = x.shape[0]
    if n <= k:  # fewer rows than codes: every row, then random repeats
        return x[torch.cat([torch.arange(n, device=x.device), torch.randint(0, n, (k - n,), device=x.device)])]
    seeds = torch.empty(k, dtype=torch.long, device=x.device)
    seeds[0] = torch.randint(0, n, (1,), device=x.device)
    d2 = (x - x[seeds[0]]).square().sum(-1)
    for i in range(1, k):
        seeds[i] = torch.multinomial(d2 + 1e-12, 1)
        d2 = torch.minimum(d2, (x - x[seeds[i]]).square().sum(-1))
    return x[seeds]


def kmeans(x: Tensor, k: int, iters: int = 10, cosine: bool = False) -> tuple[Tensor, Tensor]:
    """k-means centres ``[k, D]`` of rows ``x`` and their cluster sizes (Lloyd from k-means++ seeds)."""
    centres = kmeans_plus_plus(x, k).clone()
    counts = torch.zeros(k, device=x.device, dtype=x.dtype)
    for _ in range(iters):
        idx = nearest(x, centres, cosine)
        counts = torch.zeros(k, device=x.device, dtype=x.dtype).index_add_(0, idx, torch.ones_like(idx, dtype=x.dtype))
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp_min(1)[:, None])
        if cosine:
            centres = F.normalize(centres, dim=-1)
    return centres, counts


def nearest(x: Tensor, codes: Tensor, cosine: bool = False) -> Tensor:
    """Index of the nearest code for each row (squared L2, or largest cosine similarity)."""
    if cosine:
        return (F.normalize(x, dim=-1) @ F.normalize(codes, dim=-1).t()).argmax(dim=-1)
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin
    dist = torch.addmm((codes * codes).sum(-1)[None, :], x, codes.t(), alpha=-2.0)
    return dist.argmin(dim=-1)


def rotate_to(e: Tensor, q: Tensor) -> Tensor:
    """The rotation trick: q in the forward pass, a rotation-and-scale of e in the backward pass.

    ``lambda * (e - 2 r r^T e + 2 q_hat e_hat^T e)`` with r the bisector of e_hat and q_hat,
    all factors detached, maps e onto q exactly while passing gradients through a rotation
    instead of the identity.
    """
    eps = 1e-6
    e_norm = e.detach().norm(dim=-1, keepdim=True).clamp_min(eps)
    q_norm = q.detach().norm(dim=-1, keepdim=True).clamp_min(eps)
    e_hat, q_hat = e.detach() / e_norm, q.detach() / q_norm
    r = F.normalize(e_hat + q_hat, dim=-1, eps=eps)
    rotated = e - 2 * r * (r * e).sum(-1, keepdim=True) + 2 * q_hat * (e_hat * e).sum(-1, keepdim=True)
    return rotated * (q_norm / e_norm)


def _project(layer: nn.Module, rows: Tensor) -> Tensor:
    """``layer`` on rows ``[N, C]``: a 1x1 convolution sees them as one sequence ``[1, C, N]``."""
    if isinstance(layer, nn.Conv1d):
        return layer(rows.t()[None])[0].t()
    return layer(rows)


class VectorQuantizer(Quantizer):
    """A codebook of ``codebook_size`` codes over ``dim``-channel inputs; indices ``[B, 1, *pos]``."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int | None = None, ema: bool = True,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = True, kmeans_iters: int = 10,
                 distance: Distance = "l2", commitment_weight: float = 0.25, codebook_weight: float = 1.0,
                 threshold_dead: float = 2.0, rotation_trick: bool = False, normalize_codes: bool = True,
                 projection: Projection = "linear"):
        super().__init__(dim, [codebook_size])
        if distance not in ("l2", "cosine"):
            raise ValueError(f'distance must be "l2" or "cosine", got {distance!r}')
        if projection not in ("linear", "conv"):
            raise ValueError(f'projection must be "linear" or "conv", got {projection!r}')
        self.codebook_size = int(codebook_size)
        self.codebook_dim = int(codebook_dim or dim)
        self.ema, self.decay, self.eps = bool(ema), float(decay), float(eps)
        self.kmeans_iters = int(kmeans_iters)
        self.cosine = distance == "cosine"
        # cosine distance: inputs and codes L2-normalised throughout (True), or only inside the
        # nearest-code search, the raw codebook rows standing for the codes (False, DAC)
        self.unit_codes = self.cosine and bool(normalize_codes)
        self.commitment_weight, self.codebook_weight = float(commitment_weight), float(codebook_weight)
        self.threshold_dead = float(threshold_dead)
        self.rotation_trick = bool(rotation_trick)
        projected = self.codebook_dim != self.dim
        # "conv": 1x1 convolutions over the rows as one sequence (DAC's layers: its weights load
        # as they are, and the arithmetic is its convolution's, so near-tie codes agree too)
        layer = nn.Linear if projection == "linear" else (lambda i, o: nn.Conv1d(i, o, 1))
        self.project_in: nn.Module = layer(dim, self.codebook_dim) if projected else nn.Identity()
        self.project_out: nn.Module = layer(self.codebook_dim, dim) if projected else nn.Identity()
        init = torch.randn(codebook_size, self.codebook_dim)
        if self.unit_codes:
            init = F.normalize(init, dim=-1)
        if self.ema:
            self.register_buffer("embed", init)
            self.register_buffer("embed_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initted", torch.tensor(not kmeans_init))

    # ------------------------------------------------------------- codebook upkeep
    @torch.no_grad()
    def _init_codebook(self, z: Tensor) -> None:
        centres, counts = kmeans(z.float(), self.codebook_size, self.kmeans_iters, self.cosine)
        self.embed.data.copy_(centres)
        self.cluster_size.copy_(counts)  # empty clusters count 0: dead at once, restarted on real data
        if self.ema:
            self.embed_sum.copy_(centres * self.cluster_size[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z: Tensor, idx: Tensor) -> None:
        counts = torch.zeros_like(self.cluster_size).index_add_(0, idx, torch.ones_like(idx, dtype=z.dtype))
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n  # Laplace smoothing
        embed = self.embed_sum / smoothed[:, None]
        self.embed.copy_(F.normalize(embed, dim=-1) if self.unit_codes else embed)

    @torch.no_grad()
    def _track_usage(self, idx: Tensor) -> None:
        counts = torch.zeros_like(self.cluster_size).index_add_(0, idx, torch.ones_like(idx, dtype=self.cluster_size.dtype))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)

    @torch.no_grad()
    def _restart_dead(self, z: Tensor, error: Tensor) -> None:
        """Move codes whose usage fell under the threshold onto vectors of this batch.

        Rows are drawn with probability proportional to their squared quantization error
        (as k-means++ seeds), so revived codes go where the codebook serves the data worst.
        """
        dead = self.cluster_size < self.threshold_dead
        count = int(dead.sum())
        if count == 0 or z.shape[0] == 0:
            return
        weights = error.clamp_min(0) + 1e-12
        pick = torch.multinomial(weights, count, replacement=z.shape[0] < count)
        fresh = z[pick].to(self.embed.dtype)
        if self.unit_codes:
            fresh = F.normalize(fresh, dim=-1)
        self.embed.data[dead] = fresh
        self.cluster_size[dead] = self.threshold_dead
        if self.ema:
            self.embed_sum[dead] = fresh * self.threshold_dead

    # -------------------------------------------------------------------- coding
    def _lookup(self, idx: Tensor) -> Tensor:
        codes = F.embedding(idx, self.embed)
        return F.normalize(codes, dim=-1) if self.unit_codes and not self.ema else codes

    def quantize_rows(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantize projected rows ``[N, codebook_dim]``: (codes with gradient path, indices, loss)."""
        if self.training and not bool(self.initted):
            self._init_codebook(z.detach())
        if self.unit_codes:
            z = F.normalize(z, dim=-1)
        idx = nearest(z.detach().float(), self.embed.detach().float(), self.cosine)
        q = self._lookup(idx).to(z.dtype)
        loss = z.new_zeros(())
        if self.training:
            if self.commitment_weight:
                loss = loss + self.commitment_weight * F.mse_loss(z, q.detach())
            if not self.ema and self.codebook_weight:
                loss = loss + self.codebook_weight * F.mse_loss(q, z.detach())
            with torch.no_grad():
                if self.ema:
                    self._ema_update(z.detach().float(), idx)
                else:
                    self._track_usage(idx)
                self._restart_dead(z.detach().float(), (z.detach() - q.detach()).float().square().sum(-1))
        out = rotate_to(z, q) if self.rotation_trick else straight_through(z, q)
        return out, idx, loss

    def forward(self, x: Tensor) -> QuantizerOutput:
        rows, shape = to_vectors(x)
        q, idx, loss = self.quantize_rows(_project(self.project_in, rows))
        out = from_vectors(_project(self.project_out, q), shape)
        indices = from_vectors(idx[:, None], shape)
        return QuantizerOutput(out, indices, loss, codebook_metrics(indices, self.codebook_sizes))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        rows, shape = to_vectors(x)
        z = _project(self.project_in, rows)
        if self.cosine:
            z = F.normalize(z, dim=-1)
        return from_vectors(nearest(z.float(), self.embed.float(), self.cosine)[:, None], shape)

    def decode(self, indices: Tensor) -> Tensor:
        self.check_indices(indices)
        rows, shape = to_vectors(indices)
        return from_vectors(_project(self.project_out, self._lookup(rows[:, 0])), shape)
