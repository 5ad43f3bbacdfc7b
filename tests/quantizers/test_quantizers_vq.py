"""VQ, residual / grouped / product VQ: shapes, gradients, codebook upkeep, levels, rate."""
from __future__ import annotations

import pytest
import torch

from ncodec.entropy import rans
from ncodec.quantizers.residual import GroupedResidualVQ, ProductVQ, ResidualVQ
from ncodec.quantizers.vq import VectorQuantizer, kmeans, rotate_to


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # k-means seeding and dead-code restarts draw from torch's global generator


def clustered(n: int, dim: int = 16, clusters: int = 300, seed: int = 0, spatial: tuple[int, ...] | None = None) -> torch.Tensor:
    """Features from a Gaussian mixture, channels-first [1, D, n] (or [B, D, *spatial])."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=torch.Generator().manual_seed(123)) * 2
    rows = centres[torch.randint(0, clusters, (n,), generator=g)] + 0.3 * torch.randn(n, dim, generator=g)
    if spatial is None:
        return rows.t().reshape(1, dim, n)
    b = n // int(torch.tensor(spatial).prod())
    return rows.reshape(b, *spatial, dim).movedim(-1, 1)


def train(q, steps: int = 150, dim: int = 16, lr: float = 1e-3):
    params = list(q.parameters())
    opt = torch.optim.Adam(params, lr=lr) if params else None
    q.train()
    for step in range(steps):
        x = clustered(512, dim, seed=step).requires_grad_(True)
        out = q(x)
        loss = out.loss + ((out.quantized - x) ** 2).mean()
        if opt:
            opt.zero_grad()
        loss.backward()
        if opt:
            opt.step()
    q.eval()
    return q


QUANTIZERS = {
    "vq_ema": lambda: VectorQuantizer(16, 64),
    "vq_learned": lambda: VectorQuantizer(16, 64, ema=False),
    "vq_cosine": lambda: VectorQuantizer(16, 64, distance="cosine"),
    "vq_rotation": lambda: VectorQuantizer(16, 64, ema=False, rotation_trick=True),
    "vq_factorized": lambda: VectorQuantizer(16, 64, codebook_dim=4, ema=False, distance="cosine"),
    "rvq": lambda: ResidualVQ(16, 3, [64, 32, 32], quantizer_dropout=0.5),
    "grvq": lambda: GroupedResidualVQ(16, groups=2, num_quantizers=2, codebook_size=32),
    "product": lambda: ProductVQ(16, num_codebooks=4, codebook_size=32),
}


@pytest.mark.parametrize("name", QUANTIZERS)
@pytest.mark.parametrize("spatial", [None, (4, 8)])
def test_shapes_and_decode_matches_forward(name, spatial):
    q = train(QUANTIZERS[name](), steps=5)
    x = clustered(256, spatial=spatial)
    out = q(x)
    assert out.quantized.shape == x.shape
    assert out.indices.dtype == torch.int64
    assert out.indices.shape == (x.shape[0], q.num_codebooks, *x.shape[2:])
    idx = q.encode(x)
    assert torch.equal(idx, out.indices) and torch.equal(idx, q.encode(x))  # deterministic
    assert torch.allclose(q.decode(idx), out.quantized, atol=1e-5)


@pytest.mark.parametrize("name", QUANTIZERS)
def test_gradients_reach_the_input(name):
    q = QUANTIZERS[name]()
    q.train()
    x = clustered(128).requires_grad_(True)
    out = q(x)
    (out.quantized.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ema_and_learned_vq_fit_clustered_data():
    for make in (QUANTIZERS["vq_ema"], QUANTIZERS["vq_learned"]):
        q = train(make())
        x = clustered(4096, seed=999)
        rel = ((q.decode(q.encode(x)) - x) ** 2).mean() / x.var()
        assert rel < 0.6  # 64 codes for 300 clusters: far better than the mean (1.0)
        assert q.encode(x).unique().numel() >= 0.95 * 64


def test_dead_codes_are_restarted():
    q = VectorQuantizer(8, 32, kmeans_init=False, threshold_dead=1.0)
    with torch.no_grad():
        q.embed.fill_(100.0)  # every code far from the data: only one would ever be picked
        q.embed[0].zero_()
        q.embed_sum.copy_(q.embed)
    q.train()
    for step in range(20):
        q(torch.randn(1, 8, 256, generator=torch.Generator().manual_seed(step)))
    q.eval()
    used = q.encode(torch.randn(1, 8, 4096)).unique().numel()
    assert used >= 28
    assert q.embed.abs().max() < 50  # the far codes were moved onto data


def test_kmeans_finds_separated_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(100, 0) + 0.1 * torch.randn(300, 2)
    found, counts = kmeans(x, 3, iters=20)
    dist = torch.cdist(found, centres).min(dim=0).values
    assert dist.max() < 0.5 and counts.sum() == 300


def test_rotation_trick_forward_value_is_the_code_and_gradient_rotates():
    e = torch.randn(64, 8, requires_grad=True)
    q = torch.randn(64, 8)
    out = rotate_to(e, q)
    assert torch.allclose(out, q, atol=1e-5)
    out.sum().backward()
    ste_grad = torch.ones_like(e)
    assert not torch.allclose(e.grad, ste_grad)  # not the straight-through identity
    norms = e.grad.norm(dim=-1) / ste_grad.norm(dim=-1)
    ratio = q.norm(dim=-1) / e.detach().norm(dim=-1)
    assert torch.allclose(norms, ratio, atol=1e-4)  # a rotation scaled by |q| / |e|


def test_residual_error_falls_with_each_level():
    q = train(ResidualVQ(16, 4, 64))
    x = clustered(4096, seed=7)
    idx = q.encode(x)
    errors = [((q.decode(idx[:, :k]) - x) ** 2).mean().item() for k in range(1, 5)]
    assert all(b < 0.9 * a for a, b in zip(errors, errors[1:])), errors
    assert torch.equal(q.encode(x, n_quantizers=2), idx[:, :2])


def test_quantizer_dropout_trains_every_prefix():
    q = ResidualVQ(16, 3, 32, quantizer_dropout=1.0)
    q.train()
    x = clustered(64)
    seen = set()
    for _ in range(20):
        out = q(x.expand(8, -1, -1))
        per_element = (out.quantized - out.quantized[:1]).abs().flatten(1).sum(1)
        seen.add(int((per_element > 0).sum()))
    assert len(seen) > 1  # batch elements used different numbers of levels
    q.eval()
    full = q(x).quantized
    assert torch.allclose(q(x, n_quantizers=3).quantized, full)


def test_grouped_and_product_layouts():
    q = GroupedResidualVQ(16, groups=2, num_quantizers=3, codebook_size=16)
    x = clustered(100)
    idx = q.encode(x)
    assert idx.shape == (1, 6, 100)
    # group 0 level 0 depends only on the first 8 channels
    x2 = x.clone()
    x2[:, 8:] += 5
    assert torch.equal(q.encode(x2)[:, :3], idx[:, :3])
    assert q.encode(x, n_quantizers=1).shape == (1, 2, 100)
    assert ProductVQ(16, 4, 16).encode(x).shape == (1, 4, 100)


@pytest.mark.parametrize("name", ["vq_ema", "rvq", "product"])
def test_bits_equal_coded_size(name):
    q = train(QUANTIZERS[name](), steps=30)
    for seed in range(3):
        q.observe_prior(q.encode(clustered(2048, seed=100 + seed)))
    q.update_prior()
    idx = q.encode(clustered(3000, seed=5).reshape(3, 16, 1000))
    streams = q.compress(idx)
    overhead = sum(8 * rans.read_header(s).overhead_bytes for s in streams)
    coded = 8 * sum(len(s) for s in streams) - overhead
    assert abs(coded - float(q.bits(idx))) <= 64 * len(streams)
    assert float(q.bits(idx)) < q.nominal_bits * 3000  # the counted prior beats log2(K)
    assert torch.equal(q.decompress(streams, idx.shape[1:]), idx)


def test_residual_prefix_bits_and_decode():
    q = train(ResidualVQ(16, 3, 32), steps=30)
    idx = q.encode(clustered(500))
    q.observe_prior(idx)
    q.update_prior()
    coarse = idx[:, :2]
    assert float(q.bits(coarse)) < float(q.bits(idx))
    assert torch.equal(q.decompress(q.compress(coarse), coarse.shape[1:]), coarse)
    with pytest.raises(ValueError):
        q.decode(torch.full_like(coarse, 40))  # outside the 32-code books
    with pytest.raises(ValueError):
        VectorQuantizer(16, 8).decode(idx[:, :2])  # a VQ has exactly one codebook
