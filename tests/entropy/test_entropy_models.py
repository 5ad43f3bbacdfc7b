"""Entropy models: training likelihoods, integer coding tables, and compress/decompress mechanics."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from ncodec.entropy import rans
from ncodec.entropy.categorical import CategoricalModel
from ncodec.entropy.conditional import (GaussianConditional, LaplaceConditional, LogisticConditional,
                                        ScaleConditional, get_scale_table)
from ncodec.entropy.factorized import EntropyBottleneck
from ncodec.entropy.mixture import GaussianMixtureConditional
from ncodec.entropy.model import lower_bound, quantize_values
from ncodec.errors import BitstreamError, EntropyCodingError

CONDITIONALS = [GaussianConditional, LaplaceConditional, LogisticConditional]
# Digests of the default tables: they must be the same on every machine (streams depend on them).
PINNED_DIGESTS = {
    GaussianConditional: "034fd7afe5c8250feecad3549deb2644965abee29440df3bb455c492480b389a",
    LaplaceConditional: "8766717c1815e3de1e5212ff6b81305aad34fd1bdc452aba02fc4ca49c1087e1",
    LogisticConditional: "26f2b5a86319724eb2e6bf4d7e352eef96591c269be77d17ad1ecfc5bc48da1b",
}
PINNED_MIXTURE_DIGEST = "f714cce59b9a8ff58f60bdc967804cb422b11c4cde7f0204d204dc0001d6569c"
OUTLIERS = (1e5, -3e4, 700.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def stream_bits(strings: list[bytes], payload_only: bool = False) -> int:
    """Total size of the streams in bits (optionally without their headers and lane tables)."""
    if payload_only:
        return sum(8 * (len(s) - rans.read_header(s).overhead_bytes) for s in strings)
    return sum(8 * len(s) for s in strings)


def est_bits(likelihoods: torch.Tensor) -> float:
    """Ideal code length of the likelihoods."""
    return float(-torch.log2(likelihoods.detach().double()).sum())


def with_outliers(y: torch.Tensor) -> torch.Tensor:
    """A copy of y with a few huge values, which must round-trip through escapes."""
    y = y.clone()
    y.view(-1)[: len(OUTLIERS)] = torch.tensor(OUTLIERS, dtype=y.dtype)
    return y


def test_lower_bound_passes_gradients_that_push_up() -> None:
    x = torch.tensor([1e-12, 0.5], requires_grad=True)
    (-lower_bound(x, 1e-9)).sum().backward()  # descent would raise x toward the bound: passes
    assert x.grad is not None and torch.equal(x.grad, -torch.ones(2))
    x.grad = None
    lower_bound(x, 1e-9).sum().backward()  # descent would push x further below the bound: blocked
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0]))


def test_quantize_modes() -> None:
    y = torch.tensor([0.2, 1.7, -2.6], requires_grad=True)
    means = torch.tensor([0.5, 0.5, 0.5])
    ste = quantize_values(y, True, "ste", means)
    assert torch.equal(ste.detach(), torch.round(y.detach() - means) + means)
    ste.sum().backward()
    assert torch.equal(y.grad, torch.ones(3))
    noisy = quantize_values(y, True, "noise")
    assert torch.all((noisy - y).abs() <= 0.5)
    with pytest.raises(ValueError):
        quantize_values(y, True, "bogus")  # type: ignore[arg-type]


# --------------------------------------------------------------------- bottleneck
def sample_latents(n: int, hw: int, generator: torch.Generator) -> torch.Tensor:
    """Three channels: Laplacian, wide Gaussian, bimodal (a hyperprior-like z)."""
    shape = (n, 1, hw, hw)
    u = torch.rand(shape, generator=generator) - 0.5
    c0 = 0.5 - 1.5 * torch.sign(u) * torch.log1p(-2 * u.abs())
    c1 = 4 * torch.randn(shape, generator=generator) - 2
    sign = torch.where(torch.rand(shape, generator=generator) < 0.5, -6.0, 6.0)
    c2 = sign + 1.5 * torch.randn(shape, generator=generator)
    return torch.cat([c0, c1, c2], dim=1)


@pytest.fixture(scope="module")
def trained_bottleneck() -> tuple[EntropyBottleneck, list[float]]:
    """An EntropyBottleneck fitted for 200 Adam steps, its tables built; and its aux-loss history."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    eb = EntropyBottleneck(3)
    density = [p for name, p in eb.named_parameters() if name != "quantiles"]
    opt = torch.optim.Adam([{"params": density, "lr": 2e-2}, {"params": [eb.quantiles], "lr": 0.5}])
    aux = []
    for _ in range(200):
        _, likelihoods = eb(sample_latents(16, 8, g), training=True)
        aux_loss = eb.loss()
        loss = -torch.log2(likelihoods).mean() + aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux.append(aux_loss.item())
    assert eb.update()
    torch.set_num_threads(threads)
    return eb.eval(), aux


def test_bottleneck_forward_shapes_and_gradients() -> None:
    eb = EntropyBottleneck(4)
    x = torch.randn(2, 4, 5, 3, requires_grad=True)
    for quantize in ("noise", "ste"):
        y_hat, likelihoods = eb(x, training=True, quantize=quantize)
        assert y_hat.shape == likelihoods.shape == x.shape
        assert torch.all(likelihoods >= 1e-9) and torch.all(likelihoods <= 1)
        eb.zero_grad()
        x.grad = None
        (-torch.log2(likelihoods).sum()).backward()
        assert x.grad is not None and torch.all(torch.isfinite(x.grad))
        assert all(p.grad is not None for name, p in eb.named_parameters() if name != "quantiles")
    y_hat, _ = eb(x, training=False)
    medians = eb.quantiles[:, 0, 1].detach().view(1, 4, 1, 1)
    assert torch.equal(y_hat, torch.round(x.detach() - medians) + medians)


def test_bottleneck_parameter_names_match_compressai() -> None:
    eb = EntropyBottleneck(8, filters=(3, 3, 3, 3))
    shapes = {k: tuple(v.shape) for k, v in eb.state_dict().items()}
    assert shapes["_matrix0"] == (8, 3, 1) and shapes["_matrix4"] == (8, 1, 3)
    assert shapes["_bias4"] == (8, 1, 1) and shapes["_factor3"] == (8, 3, 1) and "_factor4" not in shapes
    assert shapes["quantiles"] == (8, 1, 3) and shapes["target"] == (3,)
    assert {"_quantized_cdf", "_offset", "_cdf_length"} <= shapes.keys()


def test_bottleneck_aux_loss_decreases(trained_bottleneck: tuple[EntropyBottleneck, list[float]]) -> None:
    eb, aux = trained_bottleneck
    assert aux[-1] < 0.1 * aux[0]
    q = eb.quantiles.detach()[:, 0, :]
    assert torch.all(q[:, 0] < q[:, 1]) and torch.all(q[:, 1] < q[:, 2])


@pytest.mark.parametrize("batch", [1, 3])
def test_bottleneck_round_trip_with_outliers(trained_bottleneck: tuple[EntropyBottleneck, list[float]],
                                             batch: int) -> None:
    eb, _ = trained_bottleneck
    x = with_outliers(sample_latents(batch, 6, torch.Generator().manual_seed(2)))
    y_hat, _ = eb(x)
    strings = eb.compress(x)
    assert len(strings) == batch
    assert torch.equal(eb.decompress(strings, (6, 6)), y_hat)


def test_bottleneck_rate_matches_likelihoods(trained_bottleneck: tuple[EntropyBottleneck, list[float]]) -> None:
    eb, _ = trained_bottleneck
    x = sample_latents(2, 96, torch.Generator().manual_seed(3))
    _, likelihoods = eb(x)
    ideal = est_bits(likelihoods)
    assert stream_bits(eb.compress(x)) == pytest.approx(ideal, rel=0.02)
    # Sanity: the learned density is close to the data's (channel 1 is N(-2, 4^2): ~4.05 bits per value).
    assert float(-torch.log2(likelihoods[:, 1].detach()).mean()) == pytest.approx(4.05, abs=0.15)


def test_bottleneck_tables_are_deterministic(trained_bottleneck: tuple[EntropyBottleneck, list[float]]) -> None:
    eb, _ = trained_bottleneck
    reference = eb.tables().digest()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        assert eb.update(force=True)
        assert eb.tables().digest() == reference
    assert not eb.update()


def test_bottleneck_state_dict_round_trip(trained_bottleneck: tuple[EntropyBottleneck, list[float]]) -> None:
    eb, _ = trained_bottleneck
    x = with_outliers(sample_latents(2, 8, torch.Generator().manual_seed(4)))
    y_hat, _ = eb(x)
    strings = eb.compress(x)
    buffer = io.BytesIO()
    torch.save(eb.state_dict(), buffer)
    for fresh in (EntropyBottleneck(3), EntropyBottleneck(3, init_scale=50)):
        fresh.update()  # tables of another size: loading must resize them
        assert fresh._quantized_cdf.shape != eb._quantized_cdf.shape
        buffer.seek(0)
        fresh.load_state_dict(torch.load(buffer))
        assert torch.equal(fresh._quantized_cdf, eb._quantized_cdf)
        assert torch.equal(fresh.decompress(strings, (8, 8)), y_hat)


def test_bottleneck_needs_update_before_coding() -> None:
    eb = EntropyBottleneck(2)
    with pytest.raises(EntropyCodingError, match="update"):
        eb.compress(torch.zeros(1, 2, 3, 3))
    with pytest.raises(EntropyCodingError, match="update"):
        eb.decompress([b""], (3, 3))


# -------------------------------------------------------------------- conditionals
def sample_conditional(cls: type[ScaleConditional], shape: tuple[int, ...], generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, scales, means) with y drawn from the model's own density, scales log-uniform in [0.3, 30]."""
    scales = torch.exp(torch.empty(shape).uniform_(np.log(0.3), np.log(30.0), generator=generator))
    means = 5 * torch.randn(shape, generator=generator)
    u = torch.rand(shape, generator=generator).clamp(1e-7, 1 - 1e-7)
    if cls is GaussianConditional:
        unit = torch.randn(shape, generator=generator)
    elif cls is LaplaceConditional:
        unit = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())
    else:
        unit = torch.log(u) - torch.log1p(-u)
    return means + scales * unit, scales, means


@pytest.mark.parametrize("cls", CONDITIONALS)
def test_conditional_forward_shapes_and_gradients(cls: type[ScaleConditional]) -> None:
    model = cls()
    y, scales, means = (t.requires_grad_() for t in sample_conditional(cls, (2, 3, 4, 4), torch.Generator()))
    y_hat, likelihoods = model(y, scales, means, training=True)
    assert y_hat.shape == likelihoods.shape == y.shape
    assert torch.all(likelihoods >= 1e-9) and torch.all(likelihoods <= 1)
    (-torch.log2(likelihoods).sum()).backward()
    for t in (y, scales, means):
        assert t.grad is not None and torch.all(torch.isfinite(t.grad)) and t.grad.abs().sum() > 0
    y_hat, _ = model(y, scales, means, training=False)
    assert torch.equal(y_hat, torch.round(y - means) + means)


@pytest.mark.parametrize("cls", CONDITIONALS)
@pytest.mark.parametrize("use_means", [True, False])
def test_conditional_round_trip_with_outliers(cls: type[ScaleConditional], use_means: bool) -> None:
    model = cls().eval()
    y, scales, means = sample_conditional(cls, (3, 2, 5, 7), torch.Generator().manual_seed(5))
    y = with_outliers(y)
    means = means if use_means else None
    y_hat, _ = model(y, scales, means)
    strings = model.compress(y, scales, means)
    assert len(strings) == 3
    assert torch.equal(model.decompress(strings, scales, means), y_hat)


@pytest.mark.parametrize("cls", CONDITIONALS)
def test_conditional_rate_matches_likelihoods(cls: type[ScaleConditional]) -> None:
    model = cls().eval()
    y, scales, means = sample_conditional(cls, (2, 8, 32, 32), torch.Generator().manual_seed(6))
    _, likelihoods = model(y, scales, means)
    ideal = est_bits(likelihoods)
    # Coding uses the next ladder scale up (<= 13% wider), so it may cost slightly more.
    assert ideal * 0.995 < stream_bits(model.compress(y, scales, means)) < ideal * 1.03


@pytest.mark.parametrize("cls", CONDITIONALS)
def test_conditional_tables_are_deterministic(cls: type[ScaleConditional]) -> None:
    digests = set()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        digests.add(cls().tables().digest())
    assert digests == {PINNED_DIGESTS[cls]}
    model = cls(scale_table=[0.5, 1.0, 2.0])
    as_float64 = cls(scale_table=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    assert model.tables().digest() == as_float64.tables().digest()
    scales = torch.exp(torch.randn(1000)) * 3
    assert torch.equal(model.build_indexes(scales), model.build_indexes(scales.double()))


def test_build_indexes_picks_smallest_ladder_scale_not_below() -> None:
    model = GaussianConditional()
    ladder = model.scale_table
    scales = torch.cat([ladder, ladder * 0.999, ladder * 1.001, torch.tensor([0.0, 0.05, 1e4])])
    indexes = model.build_indexes(scales)
    bounded = scales.clamp(min=0.11)
    expected = torch.tensor([min([i for i, s in enumerate(ladder) if s >= v] or [len(ladder) - 1])
                             for v in bounded])
    assert torch.equal(indexes.long(), expected)


@pytest.mark.parametrize("cls", CONDITIONALS)
def test_conditional_state_dict_with_other_scale_table(cls: type[ScaleConditional]) -> None:
    source = cls(scale_table=get_scale_table(0.2, 64, 32)).eval()
    y, scales, means = sample_conditional(cls, (2, 4, 6, 6), torch.Generator().manual_seed(7))
    strings = source.compress(y, scales, means)
    target = cls()
    target.load_state_dict(source.state_dict())
    assert target.scale_table.shape == (32,) and target.tables().digest() == source.tables().digest()
    assert torch.equal(target.decompress(strings, scales, means), source(y, scales, means)[0])


def test_update_scale_table() -> None:
    model = GaussianConditional()
    assert not model.update() and not model.update_scale_table(get_scale_table())
    assert model.update_scale_table([0.5, 1.0, 8.0])
    assert model._quantized_cdf.shape[0] == 3 and model._offset.tolist() == [-4, -7, -49]
    with pytest.raises(ValueError):
        model.update_scale_table([1.0, 0.5])


# ------------------------------------------------------------------------- mixture
def sample_mixture(shape: tuple[int, ...], k: int, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, weight logits, means, scales) with y drawn from the mixture; parameters [B, K, ...]."""
    pshape = (shape[0], k, *shape[1:])
    weights = torch.randn(pshape, generator=generator)
    means = 4 * torch.randn(pshape, generator=generator)
    scales = torch.exp(torch.empty(pshape).uniform_(np.log(0.2), np.log(12.0), generator=generator))
    probs = torch.softmax(weights, dim=1).movedim(1, -1).reshape(-1, k)
    pick = torch.multinomial(probs, 1, generator=generator).reshape(shape).unsqueeze(1)
    noise = torch.randn(shape, generator=generator)
    y = means.gather(1, pick)[:, 0] + scales.gather(1, pick)[:, 0] * noise
    return y, weights, means, scales


def test_mixture_forward_shapes_and_gradients() -> None:
    model = GaussianMixtureConditional(3)
    tensors = [t.requires_grad_() for t in sample_mixture((2, 4, 5, 5), 3, torch.Generator())]
    y_hat, likelihoods = model(*tensors, training=True)
    assert y_hat.shape == likelihoods.shape == tensors[0].shape
    assert torch.all(likelihoods >= 1e-9) and torch.all(likelihoods <= 1)
    (-torch.log2(likelihoods).sum()).backward()
    for t in tensors:
        assert t.grad is not None and torch.all(torch.isfinite(t.grad)) and t.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        model(tensors[0], tensors[1][:, :2], tensors[2], tensors[3])
    assert not model.update()


@pytest.mark.parametrize("batch", [1, 2])
def test_mixture_round_trip_with_outliers(batch: int) -> None:
    model = GaussianMixtureConditional(3).eval()
    y, weights, means, scales = sample_mixture((batch, 3, 6, 6), 3, torch.Generator().manual_seed(8))
    y = with_outliers(y)
    scales[0, :, 0, 0, :2] = 500.0  # windows capped at max_support
    means[0, 0, 0, 1, :2] = torch.tensor([-3e3, 3e3])  # components far apart: capped, centred window
    y_hat, _ = model(y, weights, means, scales)
    strings = model.compress(y, weights, means, scales)
    assert len(strings) == batch
    assert torch.equal(model.decompress(strings, weights, means, scales), y_hat)


def test_mixture_round_trip_in_several_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    import ncodec.entropy.mixture as mixture
    model = GaussianMixtureConditional(2).eval()
    y, weights, means, scales = sample_mixture((1, 4, 16, 16), 2, torch.Generator().manual_seed(9))
    y_hat, _ = model(y, weights, means, scales)
    single = model.compress(y, weights, means, scales)
    monkeypatch.setattr(mixture, "CELL_BUDGET", 4096)
    strings = model.compress(y, weights, means, scales)
    assert len(strings[0]) > len(single[0])  # several rANS streams back to back
    assert torch.equal(model.decompress(strings, weights, means, scales), y_hat)
    with pytest.raises(BitstreamError):
        model.decompress([strings[0][:-3]], weights, means, scales)
    with pytest.raises(BitstreamError):
        model.decompress([strings[0] + single[0]], weights, means, scales)


def test_mixture_rate_matches_likelihoods() -> None:
    model = GaussianMixtureConditional(3).eval()
    y, weights, means, scales = sample_mixture((1, 8, 48, 48), 3, torch.Generator().manual_seed(10))
    _, likelihoods = model(y, weights, means, scales)
    assert stream_bits(model.compress(y, weights, means, scales)) == pytest.approx(est_bits(likelihoods), rel=0.01)


def test_mixture_tables_are_deterministic() -> None:
    model = GaussianMixtureConditional(3)
    i = np.arange(60, dtype=np.float64).reshape(20, 3)
    weights, means, scales = (i % 7 - 3) * 0.75, i * 1.25 - 37.5, 0.0625 * (1 + i * i / 4)
    digests = set()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            params = [torch.tensor(p, dtype=dtype) for p in (weights, means, scales)]
            digests.add(model.build_tables(*params).digest())
    digests.add(model.build_tables(weights, means, scales).digest())
    assert digests == {PINNED_MIXTURE_DIGEST}


# ----------------------------------------------------------------------- categorical
def skewed_indices(shape: tuple[int, ...], size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices with a Zipf-like distribution, a different permutation per codebook (dim -2)."""
    probs = 1.0 / torch.arange(1, size + 1, dtype=torch.float64) ** 1.1
    draws = torch.multinomial(probs / probs.sum(), int(np.prod(shape)), replacement=True, generator=generator)
    draws = draws.reshape(shape)
    perms = torch.stack([torch.randperm(size, generator=generator) for _ in range(shape[-2])])
    return perms[torch.arange(shape[-2])[:, None], draws]


def test_categorical_counted_round_trip_and_exact_bits() -> None:
    model = CategoricalModel(num_codebooks=4, codebook_size=256)
    g = torch.Generator().manual_seed(11)
    with pytest.raises(EntropyCodingError, match="update"):
        model.compress(torch.zeros(1, 4, 3, dtype=torch.long))
    model.observe(skewed_indices((32, 4, 500), 256, g))
    assert int(model.counts.sum()) == 32 * 4 * 500
    assert model.update() and not model.update()
    indices = skewed_indices((3, 4, 2000), 256, g)
    strings = model.compress(indices)
    assert torch.equal(model.decompress(strings, (4, 2000)), indices)
    exact = float(model.bits(indices).sum())
    assert stream_bits(strings, payload_only=True) == pytest.approx(exact, rel=2e-3, abs=64)
    _, likelihoods = model(indices)
    assert exact == pytest.approx(est_bits(likelihoods), rel=0.01)
    odd = indices[:1].clone()
    odd[0, 0, :3] = torch.tensor([256, -5, 100000])  # outside the codebook: escapes
    assert torch.equal(model.decompress(model.compress(odd), (4, 2000)), odd)
    multi = indices.reshape(3, 2, 2, 4, 500)[:, :, 0]  # extra dims between batch and [K, T]
    assert torch.equal(model.decompress(model.compress(multi), multi.shape[1:]), multi)


def test_categorical_learned() -> None:
    model = CategoricalModel(num_codebooks=2, codebook_size=16, learned=True)
    g = torch.Generator().manual_seed(12)
    data = skewed_indices((8, 2, 256), 16, g)
    with pytest.raises(ValueError):
        model.observe(data)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(50):
        indices, likelihoods = model(data)
        loss = -torch.log2(likelihoods).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert indices is data and losses[-1] < losses[0] - 0.5
    digests = set()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model.update(force=True)
        digests.add(model.tables().digest())
    assert len(digests) == 1
    strings = model.compress(data)
    assert torch.equal(model.decompress(strings, (2, 256)), data)
    fresh = CategoricalModel(num_codebooks=2, codebook_size=16, learned=True)
    fresh.load_state_dict(model.state_dict())  # tables grow from empty on load
    assert torch.equal(fresh.decompress(strings, (2, 256)), data)


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(trained_bottleneck: tuple[EntropyBottleneck, list[float]]) -> None:
    cuda = torch.device("cuda")
    eb, _ = trained_bottleneck
    x = sample_latents(2, 8, torch.Generator().manual_seed(13))
    eb_cuda = EntropyBottleneck(3).to(cuda).eval()
    eb_cuda.load_state_dict(eb.state_dict())
    strings = eb_cuda.compress(x.to(cuda))
    assert strings == eb.compress(x)
    out = eb_cuda.decompress(strings, (8, 8))
    assert out.device.type == "cuda" and torch.equal(out.cpu(), eb(x)[0])

    model = GaussianConditional().eval()
    model_cuda = GaussianConditional().to(cuda).eval()
    model_cuda.update(force=True)
    assert model_cuda.tables().digest() == PINNED_DIGESTS[GaussianConditional]
    y, scales, means = sample_conditional(GaussianConditional, (2, 3, 8, 8), torch.Generator().manual_seed(14))
    strings = model_cuda.compress(y.to(cuda), scales.to(cuda), means.to(cuda))
    assert strings == model.compress(y, scales, means)
    assert torch.equal(model_cuda.decompress(strings, scales.to(cuda), means.to(cuda)).cpu(),
                       model(y, scales, means)[0])

    mixture = GaussianMixtureConditional(3)
    params = sample_mixture((2, 3, 8, 8), 3, torch.Generator().manual_seed(15))
    strings = mixture.compress(*(p.to(cuda) for p in params))
    assert strings == mixture.compress(*params)
    assert torch.equal(mixture.decompress(strings, *(p.to(cuda) for p in params[1:])).cpu(),
                       mixture(*params, training=False)[0])
