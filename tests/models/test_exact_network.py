"""Tests of `ncodec.models.exact`: bit-identical hyper-synthesis outputs, accuracy, and exactness.

Cross-device identity cannot be observed on one machine, so besides comparing thread counts,
memory formats, dtypes and batch compositions here (and CPU vs CUDA where a GPU exists), a golden
SHA-256 pins the output bits of a network whose weights and input are made by integer arithmetic
(no RNG, no libm). It must hold on every machine; never update it to make a test pass without
treating the change as a bitstream format change.
"""
from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec.models import exact as ex
from ncodec.models.exact import ExactNetwork, conv2d_exact, conv_transpose2d_exact, quantization_error
from ncodec.errors import Error

ACCURACY = 5e-4  # max |float - exact| as a fraction of the float output's range


# ===================================================================== fixtures and helpers
def hyper_synthesis(seed: int) -> nn.Sequential:
    """Scale hyperprior h_s (Ballé 2018 shape, small): two stride-2 transposed convs, then a conv."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.ConvTranspose2d(16, 16, 5, 2, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(16, 16, 5, 2, 2, 1), nn.ReLU(),
                         nn.Conv2d(16, 24, 3, 1, 1), nn.ReLU())


def mean_scale_synthesis(seed: int) -> nn.Sequential:
    """Mean-scale h_s (Minnen 2018 shape, small): LeakyReLU, 1.5x then 2x channels (means and scales)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.ConvTranspose2d(16, 16, 5, 2, 2, 1), nn.LeakyReLU(inplace=True),
                         nn.ConvTranspose2d(16, 24, 5, 2, 2, 1), nn.LeakyReLU(0.2),
                         nn.Identity(), nn.Conv2d(24, 32, 3, 1, 1))


NETWORKS: dict[str, Callable[[int], nn.Sequential]] = {"scale": hyper_synthesis, "mean_scale": mean_scale_synthesis}


def z_hat(shape: tuple[int, ...], seed: int) -> Tensor:
    """ẑ = round(z - m) + m with per-channel medians m on a 2**-6 grid: exact in float16 too."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g) * 6
    m = torch.round(torch.randn(1, shape[-3], 1, 1, generator=g) * 64) / 64
    return torch.round(z - m) + m


@pytest.fixture(params=sorted(NETWORKS))
def network(request: pytest.FixtureRequest) -> nn.Sequential:
    return NETWORKS[request.param](0)


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def integer_tensor(shape: tuple[int, ...], seed: int, bound: int = 40) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-bound, bound + 1, shape, generator=g).to(torch.float64)


# ===================================================================== unfold/fold convolutions
@pytest.mark.parametrize("kernel, stride, padding, dilation", [
    (1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 2, 1), (4, 3, 0, 1), (3, 1, 2, 2),
    ((3, 5), (2, 1), (0, 2), (1, 2)),
])
def test_conv2d_exact_equals_f_conv2d(kernel: int, stride: int, padding: int, dilation: int) -> None:
    x = integer_tensor((2, 5, 11, 13), 1)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = integer_tensor((7, 5, *k), 2)
    assert torch.equal(conv2d_exact(x, w, stride, padding, dilation), F.conv2d(x, w, None, stride, padding, dilation))


@pytest.mark.parametrize("kernel, stride, padding, output_padding, dilation", [
    (1, 1, 0, 0, 1), (3, 1, 1, 0, 1), (5, 2, 2, 1, 1), (3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (3, 3, 0, 2, 1),
    (3, 2, 3, 1, 1), (3, 2, 1, 1, 2), ((3, 5), (2, 3), (1, 2), (1, 0), (1, 1)),
])
def test_conv_transpose2d_exact_equals_f_conv_transpose2d(kernel: int, stride: int, padding: int,
                                                          output_padding: int, dilation: int) -> None:
    x = integer_tensor((2, 5, 6, 7), 3)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = integer_tensor((5, 4, *k), 4)
    want = F.conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation)
    assert torch.equal(conv_transpose2d_exact(x, w, stride, padding, output_padding, dilation), want)


def test_row_chunking_changes_nothing(monkeypatch: pytest.MonkeyPatch, network: nn.Sequential) -> None:
    x = integer_tensor((2, 5, 9, 10), 5)
    w, wt = integer_tensor((6, 5, 3, 3), 6), integer_tensor((5, 6, 5, 5), 7)
    zh = z_hat((2, 16, 5, 6), 8)
    before = (conv2d_exact(x, w, 2, 1), conv_transpose2d_exact(x, wt, 2, 2, 1), ExactNetwork(network)(zh))
    monkeypatch.setattr(ex, "CHUNK_ELEMENTS", 100)  # one row per chunk
    after = (conv2d_exact(x, w, 2, 1), conv_transpose2d_exact(x, wt, 2, 2, 1), ExactNetwork(network)(zh))
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_exact_convolutions_want_float64() -> None:
    with pytest.raises(Error, match="float64"):
        conv2d_exact(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1))


# ===================================================================== bit-identical outputs
def test_identical_across_thread_counts(network: nn.Sequential, threads: None) -> None:
    exact, x = ExactNetwork(network), z_hat((2, 16, 7, 9), 10)
    torch.set_num_threads(1)
    one = exact(x)
    torch.set_num_threads(4)
    assert torch.equal(one, exact(x))


def test_identical_for_channels_last_input(network: nn.Sequential) -> None:
    exact, x = ExactNetwork(network), z_hat((2, 16, 7, 9), 11)
    assert torch.equal(exact(x), exact(x.to(memory_format=torch.channels_last)))


def test_identical_for_float16_float32_float64_inputs(network: nn.Sequential) -> None:
    exact, x = ExactNetwork(network), z_hat((1, 16, 6, 5), 12)
    assert torch.equal(x.half().float(), x)  # the same values in every dtype
    out = exact(x.double())
    assert torch.equal(out, exact(x.float())) and torch.equal(out, exact(x.half()))


def test_identical_alone_and_inside_a_batch(network: nn.Sequential) -> None:
    exact, batch = ExactNetwork(network), z_hat((3, 16, 6, 7), 13)
    assert torch.equal(exact(batch[1:2]), exact(batch)[1:2])
    assert torch.equal(exact(batch[1]), exact(batch)[1])  # unbatched (C, H, W) input


def test_any_spatial_size(network: nn.Sequential) -> None:
    exact = ExactNetwork(network)
    for h, w in ((1, 1), (2, 9), (13, 4)):
        out = exact(z_hat((1, 16, h, w), 14))
        assert out.shape[-2:] == (4 * h, 4 * w)


def test_output_is_float64_fixed_point(network: nn.Sequential) -> None:
    out = ExactNetwork(network)(z_hat((1, 16, 4, 4), 15))
    assert out.dtype == torch.float64 and out.is_contiguous()
    scaled = out * 2**14
    assert torch.equal(scaled, torch.round(scaled))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_identical_on_cpu_and_cuda(network: nn.Sequential) -> None:
    x = z_hat((3, 16, 9, 11), 16)
    cpu = ExactNetwork(network)(x)
    gpu = ExactNetwork(copy.deepcopy(network).cuda())(x.cuda().to(memory_format=torch.channels_last))
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
    assert torch.equal(cpu, ExactNetwork(network).cuda()(x.cuda().half()).cpu())  # CPU-built, moved


def pinned_network() -> tuple[nn.Sequential, Tensor]:
    """A network and input made by integer arithmetic only, so every machine builds the same bits."""
    def values(n: int, salt: int) -> Tensor:
        i = torch.arange(n, dtype=torch.int64)
        return (((i * i * 2654435761 + i * 40503 + salt) % 1009) - 504).to(torch.float64) / 1024

    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 5, 2, 2, 1), nn.LeakyReLU(0.01),
                        nn.Conv2d(6, 8, 3, 1, 1), nn.ReLU())
    with torch.no_grad():
        for k, module in enumerate(m for m in net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))):
            module.weight.copy_(values(module.weight.numel(), k).view_as(module.weight) / 8)
            module.bias.copy_(values(module.bias.numel(), 7 + k) / 4)
    x = torch.round(values(2 * 4 * 5 * 6, 99).view(2, 4, 5, 6) * 16) + 0.375
    return net, x


def test_pinned_output_bits() -> None:
    net, x = pinned_network()
    out = ExactNetwork(net)(x)
    digest = hashlib.sha256(out.numpy().astype("<f8").tobytes()).hexdigest()
    assert digest == "7cf3d451a16cc65e229a395a5b3628cf2245555417f02501d6d11e9b1c2bf139"


# ===================================================================== the contract, independently
def reference_contract(net: nn.Sequential, x: Tensor, weight_bits: int = 20, activation_bits: int = 28,
                       frac_bits: int = 14) -> np.ndarray:
    """The module docstring's rules 1-7 in numpy int64, with direct tap loops (for unpadded-mode,
    dilation-1 networks whose accumulator bound does not bind, so e_o comes from weight_bits alone)."""
    q_max = 2 ** (activation_bits - 1) - 1
    q = np.clip(np.rint(x.double().numpy() * 2.0**frac_bits), -q_max, q_max).astype(np.int64)
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            transposed = isinstance(m, nn.ConvTranspose2d)
            w = m.weight.detach().double().numpy()
            w = w.transpose(1, 0, 2, 3) if transposed else w
            e = np.array([weight_bits - 1 - math.frexp(float(np.abs(wo).max()))[1] for wo in w], dtype=np.int64)
            wq = np.rint(w * np.ldexp(1.0, e)[:, None, None, None]).astype(np.int64)
            bq = np.rint(m.bias.detach().double().numpy() * np.ldexp(1.0, e + frac_bits)).astype(np.int64)
            acc = _reference_transposed(q, wq, m) if transposed else _reference_conv(q, wq, m)
            acc += bq[None, :, None, None]
            q = np.clip((acc + ((1 << e) >> 1)[None, :, None, None]) >> e[None, :, None, None], -q_max, q_max)
        elif isinstance(m, nn.LeakyReLU):
            slope = round(m.negative_slope * 2**16)
            q = np.clip(np.where(q >= 0, q, (q * slope + 2**15) >> 16), -q_max, q_max)
        elif isinstance(m, nn.ReLU):
            q = np.maximum(q, 0)
    return q.astype(np.float64) * 2.0**-frac_bits


def _reference_conv(q: np.ndarray, wq: np.ndarray, m: nn.Conv2d) -> np.ndarray:
    (sh, sw), (ph, pw) = m.stride, m.padding
    q = np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = wq.shape[2:]
    ho, wo = (q.shape[2] - kh) // sh + 1, (q.shape[3] - kw) // sw + 1
    acc = np.zeros((q.shape[0], wq.shape[0], ho, wo), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            window = q[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
            acc += np.einsum("oc,nchw->nohw", wq[:, :, i, j], window)
    return acc


def _reference_transposed(q: np.ndarray, wq: np.ndarray, m: nn.ConvTranspose2d) -> np.ndarray:
    (sh, sw), (ph, pw), (oph, opw) = m.stride, m.padding, m.output_padding
    n, _, h, w = q.shape
    kh, kw = wq.shape[2:]
    full = np.zeros((n, wq.shape[0], (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + (h - 1) * sh + 1:sh, j:j + (w - 1) * sw + 1:sw] += np.einsum("oc,nchw->nohw",
                                                                                          wq[:, :, i, j], q)
    ho, wo = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
    return full[:, :, ph:ph + ho, pw:pw + wo]


@pytest.mark.parametrize("name", ["pinned", *sorted(NETWORKS)])
def test_matches_an_independent_integer_reference(name: str) -> None:
    net, x = pinned_network() if name == "pinned" else (NETWORKS[name](0), z_hat((2, 16, 5, 4), 17))
    assert torch.equal(ExactNetwork(net)(x), torch.from_numpy(reference_contract(net, x)))


# ===================================================================== accuracy
@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("seed", [0, 1])
def test_close_to_the_float_network(name: str, seed: int) -> None:
    net, x = NETWORKS[name](seed), z_hat((2, 16, 8, 8), 20 + seed)
    with torch.no_grad():
        span = float(net.double()(x.double()).abs().max())
    net.float()
    assert quantization_error(net, x) <= ACCURACY * span


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 5, 4, padding="same"), nn.Conv2d(3, 5, 3, padding=2, dilation=2, padding_mode="reflect"),
    nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular"), nn.Conv2d(3, 5, 3, 2, padding=1, padding_mode="replicate"),
    nn.Conv2d(3, 5, (1, 3), padding="valid", bias=False),
])
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_padding_variants_follow_the_float_layer(conv: nn.Conv2d) -> None:
    net, x = nn.Sequential(conv), z_hat((2, 3, 9, 8), 30)
    exact = ExactNetwork(net)
    with torch.no_grad():
        assert exact(x).shape == net(x).shape
    assert quantization_error(net, x, exact) < 1e-3


def test_dead_channel_with_tiny_weights() -> None:
    conv = nn.Conv2d(4, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight[1] = 1e-30
        conv.bias[1] = 1.5
    out = ExactNetwork(nn.Sequential(conv))(z_hat((1, 4, 5, 5), 31))
    assert torch.all(out[:, 1] == 1.5)


# ===================================================================== rounding rules (the format)
def test_rounding_rules() -> None:
    lsb = 2.0**-14
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(0.5)
        conv.bias.zero_()
    exact = ExactNetwork(nn.Sequential(conv))
    # Input: round half to even. Rescale: (acc + half) >> e, i.e. round half up (toward +inf).
    x = torch.tensor([2.5, 3.5, -2.5, 3.0, -3.0, -1.0, 1.0]).mul(lsb).view(1, 1, 1, -1)
    assert exact(x).flatten().tolist() == [v * lsb for v in (1, 2, -1, 2, -1, 0, 1)]
    leaky = ExactNetwork(nn.Sequential(nn.LeakyReLU(0.5)))
    y = torch.tensor([-3.0, -1.0, -5.0, 4.0]).mul(lsb).view(1, 1, 1, -1)
    assert leaky(y).flatten().tolist() == [v * lsb for v in (-1, 0, -2, 4)]


def test_inputs_are_clamped_to_the_activation_range() -> None:
    exact = ExactNetwork(nn.Sequential(nn.Identity()))
    x = torch.tensor([1e9, -float("inf"), 8191.0]).view(1, 1, 1, 3)
    limit = (2**27 - 1) * 2.0**-14
    assert exact(x).flatten().tolist() == [limit, -limit, 8191.0]
    with pytest.raises(Error, match="NaN"):
        exact(torch.full((1, 1, 1, 1), float("nan")))


# ===================================================================== construction checks
def test_absurd_weights_raise() -> None:
    huge = nn.Conv2d(2, 2, 3)
    with torch.no_grad():
        huge.weight.fill_(1e7)  # above 2**19: does not fit 20-bit weights
    with pytest.raises(Error, match="weight_bits"):
        ExactNetwork(nn.Sequential(huge))
    wide = nn.Conv2d(64, 1, 9)
    with torch.no_grad():
        wide.weight.fill_(1e5)  # 5184 * 1e5 * 2**27 > 2**53 even with integer weights
    with pytest.raises(Error, match="2\\*\\*53"):
        ExactNetwork(nn.Sequential(wide))
    biased = nn.Conv2d(2, 2, 3)
    with torch.no_grad():
        biased.bias.fill_(1e20)
    with pytest.raises(Error, match="2\\*\\*53"):
        ExactNetwork(nn.Sequential(biased))
    broken = nn.Conv2d(2, 2, 3)
    with torch.no_grad():
        broken.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(Error, match="not finite"):
        ExactNetwork(nn.Sequential(broken))


def test_fan_in_lowers_weight_exponents_to_stay_exact() -> None:
    torch.manual_seed(0)
    wide = nn.Conv2d(512, 4, 5)  # fan-in 12800: 20-bit weights would break the 2**53 bound
    exact = ExactNetwork(nn.Sequential(wide))
    layer = exact.layers[0]
    bound = layer.weight.abs().sum(dim=(1, 2, 3)) * exact.act_max + layer.bias.abs() + layer.rounding.flatten()
    assert int(bound.max()) < 2**53
    assert int(layer.weight.abs().max()) < 2**19
    assert quantization_error(nn.Sequential(wide), z_hat((1, 512, 6, 6), 40), exact) < 1e-3


@pytest.mark.parametrize("bad", [
    nn.Sequential(nn.Sigmoid()), nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)),
    nn.Sequential(nn.Linear(3, 3)), nn.Conv2d(3, 3, 3),
])
def test_unsupported_networks_raise(bad: nn.Module) -> None:
    with pytest.raises(Error):
        ExactNetwork(bad)  # type: ignore[arg-type]


def test_nested_sequential_is_flattened() -> None:
    torch.manual_seed(3)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    nested, flat = nn.Sequential(inner, nn.Conv2d(4, 2, 1)), nn.Sequential(*inner, nn.Conv2d(4, 2, 1))
    flat[2].load_state_dict(nested[1].state_dict())
    x = z_hat((1, 3, 5, 5), 41)
    assert torch.equal(ExactNetwork(nested)(x), ExactNetwork(flat)(x))


# ===================================================================== weights changing
def test_follows_in_place_weight_changes_and_refresh() -> None:
    net, x = hyper_synthesis(0), z_hat((1, 16, 4, 4), 50)
    exact = ExactNetwork(net)
    before = exact(x)
    net.load_state_dict(hyper_synthesis(1).state_dict())  # in place: seen automatically
    assert torch.equal(exact(x), ExactNetwork(hyper_synthesis(1))(x)) and not torch.equal(exact(x), before)
    net[4].bias.data = net[4].bias.data + 1.0  # a new storage: seen automatically
    assert quantization_error(net, x, exact) < 1e-3
    net[4].bias.data.add_(1.0)  # bypasses the version counter: needs refresh()
    exact.refresh()
    assert quantization_error(net, x, exact) < 1e-3


def test_no_state_of_its_own() -> None:
    parent = nn.Module()
    parent.h_s = hyper_synthesis(0)
    parent.exact = ExactNetwork(parent.h_s)
    assert all(key.startswith("h_s.") for key in parent.state_dict())
