"""Lifting wavelets: exact integer transforms, float perfect reconstruction, shapes, 1D/2D/3D."""
from __future__ import annotations

import pytest
import torch

from ncodec.transforms import wavelet as W

SHAPES_2D = [(1, 1), (1, 9), (9, 1), (2, 2), (17, 33), (64, 48), (31, 100), (5, 7)]


def random_ints(shape, lo=-(2**17), hi=2**17, seed=0):
    return torch.randint(lo, hi, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("lifting", [W.LE_GALL_53, W.CDF_97_INT], ids=["5/3", "9/7-int"])
@pytest.mark.parametrize("shape", SHAPES_2D)
def test_integer_2d_is_exact_for_any_size(lifting, shape):
    x = random_ints(shape, seed=sum(shape))
    bands = W.forward_2d(x, 6, lifting)
    assert all(b.dtype == torch.int64 for lv in bands.details for b in lv.values())
    assert torch.equal(W.inverse_2d(bands, lifting), x)
    low, details = W.band_shapes(shape, 6)
    assert tuple(bands.low.shape) == low
    assert [{k: tuple(v.shape) for k, v in lv.items()} for lv in bands.details] == details


def test_16_bit_images_batched_and_3d_volumes():
    x16 = random_ints((3, 2, 37, 29), 0, 65536, seed=1)  # batch of 2 three-channel 16-bit images
    assert torch.equal(W.inverse(W.forward(x16, 5)), x16)
    vol = random_ints((9, 12, 7), seed=2)
    bands = W.forward(vol, 3, dims=(0, 1, 2))
    assert set(bands.details[0]) == {"LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH"}
    assert torch.equal(W.inverse(bands), vol)
    sig = random_ints((4, 101), seed=3)
    assert torch.equal(W.inverse(W.forward(sig, 4, dims=(-1,))), sig)


def test_53_is_jpeg2000_reversible_filter():
    x = random_ints((13,), 0, 256, seed=4)
    s, d = W.forward_1d(x, 0)
    even, odd = x[0::2].clone(), x[1::2].clone()
    for i in range(len(odd)):
        right = even[i + 1] if i + 1 < len(even) else even[i]  # symmetric extension
        odd[i] -= torch.div(even[i] + right, 2, rounding_mode="floor")
    for i in range(len(even)):
        left, right = odd[max(i - 1, 0)], odd[min(i, len(odd) - 1)]
        even[i] += torch.div(left + right + 2, 4, rounding_mode="floor")
    assert torch.equal(s, even) and torch.equal(d, odd)


@pytest.mark.parametrize("shape", SHAPES_2D)
def test_float_97_reconstructs(shape):
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 255
    assert torch.allclose(W.inverse_2d(W.forward_2d(x, 5, W.CDF_97), W.CDF_97), x, atol=1e-9)


def test_97_compacts_a_smooth_image_and_gains_are_positive():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = 100 + 20 * torch.sin(xx / 9) + 15 * torch.cos(yy / 7)
    bands = W.forward_2d(smooth.double(), 3, W.CDF_97)
    detail_energy = sum(float(b.square().sum()) for lv in bands.details for b in lv.values())
    assert detail_energy < 1e-3 * float(bands.low.square().sum())
    low_gain, gains = W.synthesis_gains(W.CDF_97, 3)
    assert low_gain > 0 and all(g > 0 for lv in gains for g in lv.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    x = random_ints((2, 3, 61, 47), 0, 65536, seed=6)
    cpu = W.forward_2d(x, 4)
    gpu = W.forward_2d(x.cuda(), 4)
    assert torch.equal(gpu.low.cpu(), cpu.low)
    assert all(torch.equal(gpu.details[i][k].cpu(), v) for i, lv in enumerate(cpu.details) for k, v in lv.items())
    assert torch.equal(W.inverse_2d(gpu).cpu(), x)
