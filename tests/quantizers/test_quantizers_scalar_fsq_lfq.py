"""Scalar, FSQ / residual FSQ and LFQ / BSQ quantizers: layouts, gradients, bijections, rates."""
from __future__ import annotations

import itertools
import math
from typing import Callable

import pytest
import torch

from ncodec.entropy.rans import HEADER_BYTES, LANE_BYTES, read_header
from ncodec.quantizers.base import Quantizer, codebook_metrics
from ncodec.quantizers.fsq import FSQ, ResidualFSQ
from ncodec.quantizers.lfq import LFQ, split_bits
from ncodec.quantizers.scalar import ScalarQuantizer

FACTORIES: dict[str, Callable[[], Quantizer]] = {
    "scalar-noise": lambda: ScalarQuantizer(6, "noise", step=0.5, num_levels=31),
    "scalar-ste": lambda: ScalarQuantizer(6, "ste"),
    "scalar-mixed": lambda: ScalarQuantizer(6, "mixed", step=2.0),
    "fsq-proj": lambda: FSQ(12, [8, 5, 5, 5]),
    "fsq-identity": lambda: FSQ(3, [7, 4, 3]),
    "rfsq": lambda: ResidualFSQ(12, [8, 5, 5, 5], 3),
    "rfsq-dropout": lambda: ResidualFSQ(4, [5, 4, 3, 3], 4, quantizer_dropout=True),
    "lfq": lambda: LFQ(12, 8),
    "lfq-identity": lambda: LFQ(6, 6, commitment_weight=0.0),
    "lfq-split": lambda: LFQ(12, 17),
    "lfq-factorized": lambda: LFQ(12, 13),
    "bsq": lambda: LFQ(12, 9, spherical=True),
}
SHAPES = [(3, 7), (2, 3, 5)]  # positions after [B, D]


def make(name: str) -> Quantizer:
    torch.manual_seed(0)
    return FACTORIES[name]()


def sample(q: Quantizer, pos: tuple[int, ...], batch: int = 2, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, q.dim, *pos, generator=g) * scale


# ---------------------------------------------------------------- contracts
@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("pos", SHAPES, ids=["BDT", "BDHW"])
def test_shapes_and_metrics(name: str, pos: tuple[int, ...]) -> None:
    q = make(name)
    x = sample(q, pos, batch=2)
    for training in (True, False):
        q.train(training)
        out = q(x)
        assert out.quantized.shape == x.shape and out.quantized.dtype == x.dtype
        assert out.indices.shape == (2, q.num_codebooks, *pos) and out.indices.dtype == torch.int64
        assert out.loss.ndim == 0
        assert {"perplexity", "utilization"} <= set(out.metrics)
        if q.num_codebooks > 1:
            assert {f"q{k}_perplexity" for k in range(q.num_codebooks)} <= set(out.metrics)
        if not training:
            q.check_indices(out.indices)
            assert float(out.loss) == 0.0


@pytest.mark.parametrize("name", FACTORIES)
def test_gradient_reaches_input(name: str) -> None:
    q = make(name).train()
    x = sample(q, (4, 3)).requires_grad_()
    out = q(x)
    (out.quantized.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    if getattr(q, "project_in", None) is not None:
        assert q.project_in.weight.grad is not None and q.project_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("pos", SHAPES, ids=["BDT", "BDHW"])
def test_encode_decode_match_forward_in_eval(name: str, pos: tuple[int, ...]) -> None:
    q = make(name).eval()
    x = sample(q, pos, batch=3, scale=2.0).requires_grad_()
    out = q(x)
    idx = q.encode(x)
    assert not idx.requires_grad
    assert torch.equal(idx, q.encode(x.detach().clone()))
    assert torch.equal(idx, out.indices)
    assert torch.equal(q.decode(idx), out.quantized.detach())


@pytest.mark.parametrize("name", ["fsq-proj", "rfsq", "lfq", "bsq", "scalar-ste"])
def test_bf16_input(name: str) -> None:
    q = make(name).eval()
    x = sample(q, (9,))
    out32, out16 = q(x), q(x.bfloat16())
    assert out16.quantized.dtype == torch.bfloat16
    assert (out16.indices == out32.indices).float().mean() > 0.7  # bf16 moves values near the decision edges
    same = (out16.indices == out32.indices).all(dim=1, keepdim=True).expand_as(out32.quantized)
    assert torch.allclose(out16.quantized.float()[same], out32.quantized[same], atol=0.05, rtol=0.02)


def _reference_usage(idx: torch.Tensor, size: int) -> tuple[float, float]:
    """Perplexity and utilization of one codebook, computed the plain way."""
    counts = torch.bincount(idx.reshape(-1), minlength=size).double()
    p = counts[counts > 0] / counts.sum()
    return float(torch.exp(-(p * p.log()).sum())), float((counts > 0).sum() / size)


def test_codebook_metrics_match_a_plain_histogram() -> None:
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 40, (3, 2, 50), generator=g)
    idx[:, 1] %= 5
    m = codebook_metrics(idx, [64, 8])
    for k, size in enumerate([64, 8]):
        perplexity, utilization = _reference_usage(idx[:, k], size)
        assert m[f"q{k}_perplexity"].item() == pytest.approx(perplexity, rel=1e-5)
        assert m[f"q{k}_utilization"].item() == pytest.approx(utilization)
    assert torch.allclose(m["perplexity"], (m["q0_perplexity"] + m["q1_perplexity"]) / 2)
    one = codebook_metrics(idx[:, :1], [64])
    assert set(one) == {"perplexity", "utilization"}


# ---------------------------------------------------------------- scalar quantizer
def test_scalar_modes() -> None:
    x = torch.linspace(-9, 9, 2 * 4 * 25).reshape(2, 4, 25) + 0.013
    rounded = ScalarQuantizer(4, "noise", step=0.5).eval()(x).quantized
    assert torch.equal(rounded, torch.round(x / 0.5) * 0.5)

    noise = ScalarQuantizer(4, "noise", step=0.5).train()
    torch.manual_seed(0)
    noisy = noise(x).quantized
    assert not torch.equal(noisy, rounded)
    assert (noisy - x).abs().max() <= 0.25 + 1e-6 and (noisy - x).abs().mean() > 0.05

    ste = ScalarQuantizer(4, "ste", step=0.5).train()
    xg = x.clone().requires_grad_()
    out = ste(xg)
    assert torch.equal(out.quantized, rounded)
    out.quantized.sum().backward()
    assert torch.equal(xg.grad, torch.ones_like(x))

    mixed = ScalarQuantizer(4, "mixed", step=0.5).train()
    out = mixed(x)
    assert torch.equal(out.quantized, rounded)
    assert out.metrics["noisy"].shape == x.shape and not torch.equal(out.metrics["noisy"], rounded)
    assert (out.metrics["noisy"] - x).abs().max() <= 0.25 + 1e-6
    assert torch.equal(mixed.eval()(x).metrics["noisy"], rounded)


def test_scalar_clamps_to_levels() -> None:
    q = ScalarQuantizer(2, "ste", num_levels=7).eval()
    x = torch.tensor([[[-100.0, -3.4, -0.6, 0.2, 2.6, 50.0]] * 2])
    idx = q.encode(x)
    assert idx[0, 0].tolist() == [0, 0, 2, 3, 6, 6]
    assert q.decode(idx)[0, 0].tolist() == [-3.0, -3.0, -1.0, 0.0, 3.0, 3.0]
    assert q.codebook_sizes == [7, 7]
    assert ScalarQuantizer(3).codebook_sizes == [255] * 3
    with pytest.raises(ValueError):
        ScalarQuantizer(2, num_levels=8)
    with pytest.raises(ValueError):
        ScalarQuantizer(2, mode="round")  # type: ignore[arg-type]


# ---------------------------------------------------------------- bijections
@pytest.mark.parametrize("levels", [[3, 4, 2], [8, 5, 5, 5], [7, 6]])
def test_fsq_bijection_exhaustive(levels: list[int]) -> None:
    q = FSQ(len(levels), levels)
    size = math.prod(levels)
    idx = torch.arange(size).view(1, 1, size)
    codes = q.indices_to_codes(idx)
    assert codes.shape == (1, len(levels), size)
    assert torch.unique(codes[0].t(), dim=0).shape[0] == size
    assert torch.equal(q.codes_to_indices(codes), idx)
    assert torch.equal(q.codebook(), codes[0].t())
    # Every code is a value the forward pass can produce, and decoding it gives the code back.
    grid = torch.tensor(list(itertools.product(*[range(v) for v in levels])))  # digits, channel 0 first
    half = torch.tensor([v // 2 for v in levels])
    expected = (grid - half) / half
    expected_idx = (grid * torch.tensor([math.prod(levels[:i]) for i in range(len(levels))])).sum(1)
    assert torch.equal(q.codes_to_indices(expected.t()[None]), expected_idx[None, None])
    assert torch.equal(q.decode(idx), codes)  # identity projection


def test_fsq_forward_codes_are_codebook_entries() -> None:
    q = FSQ(4, [8, 5, 5, 5]).eval()
    x = sample(q, (200,), scale=3.0)
    out = q(x)
    assert torch.equal(q.indices_to_codes(out.indices), out.quantized)
    assert torch.equal(q.codes_to_indices(out.quantized), out.indices)
    assert out.quantized.min() >= -1 and out.quantized.max() <= 1


def test_residual_fsq_bijection_exhaustive() -> None:
    q = ResidualFSQ(2, [3, 4], 2)
    pairs = torch.tensor(list(itertools.product(range(12), range(12)))).t()[None]  # [1, 2, 144]
    codes = q.indices_to_codes(pairs)
    assert codes.shape == (1, 2, 2, 144)
    assert torch.equal(q.codes_to_indices(codes), pairs)
    flat = codes.permute(0, 3, 1, 2).reshape(144, 4)
    assert torch.unique(flat, dim=0).shape[0] == 144
    assert codes.min() == -1 and codes.max() == 1


@pytest.mark.parametrize("bits, spherical", [(8, False), (8, True), (17, False), (5, True)])
def test_lfq_bijection_exhaustive(bits: int, spherical: bool) -> None:
    q = LFQ(bits, bits, spherical=spherical)
    sizes = q.codebook_sizes
    assert sizes == [1 << b for b in split_bits(bits)] and math.prod(sizes) == 1 << bits
    grids = torch.meshgrid(*[torch.arange(s) for s in sizes], indexing="ij")
    idx = torch.stack([g.reshape(-1) for g in grids])[None]  # [1, K, 2**bits]
    codes = q.indices_to_codes(idx)
    assert codes.shape == (1, bits, 1 << bits)
    magnitude = 1 / math.sqrt(bits) if spherical else 1.0
    assert torch.allclose(codes.abs(), torch.full_like(codes, magnitude))
    if spherical:
        assert torch.allclose(codes.norm(dim=1), torch.ones(1, 1 << bits))
    assert torch.equal(q.codes_to_indices(codes), idx)
    # Distinct codes: the index, read back from the signs as one big integer, covers every value once.
    weights = 2 ** torch.arange(bits - 1, -1, -1)
    whole = ((codes[0] > 0).long() * weights[:, None]).sum(0)
    assert torch.equal(torch.sort(whole).values, torch.arange(1 << bits))
    assert torch.equal(q.decode(idx), codes)  # identity projection


def test_lfq_split_and_sign_convention() -> None:
    assert split_bits(10) == [10] and split_bits(15) == [15] and split_bits(16) == [8, 8]
    assert split_bits(18) == [9, 9] and split_bits(31) == [11, 10, 10]
    q = LFQ(4, 4).eval()
    x = torch.tensor([[[1.0], [-1.0], [0.5], [-0.2]]])  # bits 1 0 1 0, channel 0 most significant
    assert q.encode(x).item() == 0b1010
    assert LFQ(8, 18).num_codebooks == 2


# ---------------------------------------------------------------- residual FSQ behaviour
def test_residual_fsq_error_falls_with_each_level() -> None:
    q = ResidualFSQ(4, [7, 5, 5, 5], 5).eval()
    x = sample(q, (2000,), scale=0.7)
    target = q._soft_clamp(x)
    idx = q.encode(x)
    errors = [float((q.decode(idx[:, :k]) - target).square().mean()) for k in range(1, 6)]
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < errors[0] * 1e-3
    assert torch.equal(q.decode(idx[:, :5]), q(x).quantized)


def test_residual_fsq_dropout() -> None:
    q = ResidualFSQ(8, [5, 5, 5], 4, quantizer_dropout=True).train()
    x = sample(q, (16,))
    torch.manual_seed(0)
    kept = set()
    for _ in range(20):
        out = q(x.clone().requires_grad_())
        idx = out.indices
        active = int((idx[:, :, 0] >= 0).all(dim=0).sum())
        assert (idx[:, :active] >= 0).all() and (idx[:, active:] == -1).all() and active >= 1
        kept.add(active)
        dropped = idx.clone()
        assert torch.equal(q.decode(dropped), q.decode(idx[:, :active]))
        if active < 4:
            assert float(out.metrics[f"q{active}_utilization"]) == 0.0
    assert len(kept) > 1
    with torch.no_grad():
        assert (q(x).indices >= 0).all()  # no dropout without gradients
    assert (q.eval()(x).indices >= 0).all()


# ---------------------------------------------------------------- LFQ losses
def test_lfq_losses() -> None:
    q = LFQ(16, 8, commitment_weight=0.25).train()
    x = sample(q, (300,))
    out = q(x)
    m = out.metrics
    expected = 0.1 * (m["per_sample_entropy"] - m["codebook_entropy"]) + 0.25 * m["commitment"]
    assert torch.allclose(out.loss, expected)
    assert 0 < float(m["codebook_entropy"]) <= math.log(256) + 1e-4
    # The factorized codebook entropy bounds the full one from above.
    fact = LFQ(16, 8, commitment_weight=0.25, full_entropy_max_bits=4).train()
    fact.load_state_dict(q.state_dict())
    fm = fact(x).metrics
    assert torch.allclose(fm["per_sample_entropy"], m["per_sample_entropy"])
    assert float(fm["codebook_entropy"]) >= float(m["codebook_entropy"]) - 1e-5
    assert float(q.eval()(x).loss) == 0.0


def test_lfq_full_entropy_matches_direct_softmax() -> None:
    q = LFQ(9, 9, inv_temperature=3.0).train()
    z = torch.randn(2, 9, 40)
    per_sample, codebook = q._entropy_terms(z)
    codes = q.indices_to_codes(torch.arange(512).view(1, 1, 512))[0].t()  # [512, 9]
    rows = z.transpose(1, 2).reshape(-1, 9)
    prob = torch.softmax(2 * 3.0 * rows @ codes.t(), dim=-1)
    ref_ps = -(prob * prob.clamp_min(1e-30).log()).sum(-1).mean()
    avg = prob.mean(0)
    ref_cb = -(avg * avg.clamp_min(1e-5).log()).sum()
    assert torch.allclose(per_sample, ref_ps, rtol=1e-4, atol=1e-5)
    assert torch.allclose(codebook, ref_cb, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- rate and bitstreams
@pytest.mark.parametrize("name", ["scalar-noise", "fsq-proj", "rfsq", "lfq", "lfq-split", "bsq"])
def test_bits_match_coded_size_and_round_trip(name: str) -> None:
    q = make(name).eval()
    q.observe_prior(q.encode(sample(q, (40, 8), batch=4, seed=5)))
    q.update_prior()
    idx = q.encode(sample(q, (16, 8), batch=3, seed=6))
    streams = q.compress(idx)
    assert len(streams) == 3
    for b, s in enumerate(streams):
        overhead = 8 * (HEADER_BYTES + LANE_BYTES * read_header(s).lanes)
        assert HEADER_BYTES == 16 and LANE_BYTES == 12
        coded = 8 * len(s) - overhead
        assert abs(float(q.bits(idx[b:b + 1])) - coded) <= 64
    assert torch.equal(q.decompress(streams, idx.shape[1:]), idx)
    assert float(q.bits(idx)) <= q.nominal_bits * idx[:, 0].numel() * 1.05 + 64


# ---------------------------------------------------------------- against vector-quantize-pytorch
def test_numerics_match_vector_quantize_pytorch() -> None:
    import vector_quantize_pytorch as vqp  # the [test] extra installs it: this comparison must run in CI
    torch.manual_seed(0)
    x = torch.randn(2, 16, 60) * 2
    ours = FSQ(16, [8, 5, 5, 5]).eval()
    ref = vqp.FSQ([8, 5, 5, 5], dim=16, channel_first=True).eval()
    ref.project_in.load_state_dict(ours.project_in.state_dict())
    ref.project_out.load_state_dict(ours.project_out.state_dict())
    out, (ref_q, ref_idx) = ours(x), ref(x)
    assert torch.equal(out.indices[:, 0], ref_idx.long()) and torch.allclose(out.quantized, ref_q, atol=1e-6)

    ours_r = ResidualFSQ(16, [8, 5, 5], 3).eval()
    ref_r = vqp.ResidualFSQ(levels=[8, 5, 5], dim=16, num_quantizers=3, is_channel_first=True).eval()
    ref_r.project_in.load_state_dict(ours_r.project_in.state_dict())
    ref_r.project_out.load_state_dict(ours_r.project_out.state_dict())
    out, (ref_q, ref_idx) = ours_r(x), ref_r(x)
    assert torch.equal(out.indices, ref_idx.long()) and torch.allclose(out.quantized, ref_q, atol=1e-6)

    for spherical in (False, True):
        ours_l = LFQ(16, 8, commitment_weight=0.25, spherical=spherical).train()
        ref_l = vqp.LFQ(dim=16, codebook_size=256, commitment_loss_weight=0.25, spherical=spherical,
                        channel_first=True).train()
        ref_l.project_in.load_state_dict(ours_l.project_in.state_dict())
        ref_l.project_out.load_state_dict(ours_l.project_out.state_dict())
        out, (ref_q, ref_idx, ref_loss) = ours_l(x), ref_l(x)
        assert torch.equal(out.indices[:, 0], ref_idx.long())
        assert torch.allclose(out.quantized, ref_q, atol=1e-6)
        assert torch.allclose(out.loss, ref_loss, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- devices
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", FACTORIES)
def test_cuda_matches_cpu(name: str) -> None:
    q = make(name).eval()
    x = sample(q, (5, 4), scale=1.5)
    cpu = q(x)
    qc = q.cuda()
    out = qc(x.cuda())
    assert (out.indices.cpu() == cpu.indices).float().mean() > 0.99
    assert torch.equal(qc.decode(out.indices), out.quantized)
    qc.train()
    xg = x.cuda().requires_grad_()
    o = qc(xg)
    (o.quantized.square().sum() + o.loss).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
