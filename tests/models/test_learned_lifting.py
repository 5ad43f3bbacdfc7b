"""Learned integer lifting: reversibility, 5/3 at zero, device/thread/dtype exactness, trainability."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from ncodec.transforms import wavelet
from ncodec.models.learned_lifting import LearnedLifting, rate_proxy

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "garden.png"


def _randomised(levels: int = 3, seed: int = 0, bit_depth: int = 8) -> LearnedLifting:
    torch.manual_seed(seed)
    model = LearnedLifting(levels=levels, bit_depth=bit_depth)
    with torch.no_grad():
        for net in list(model.predict) + list(model.update_step):
            net[-1].weight.normal_(0, 0.3)
            net[-1].bias.normal_(0, 0.02)
    return model.eval()


@pytest.mark.parametrize("shape,dims", [((37, 53), (-2, -1)), ((2, 16, 17), (-2, -1)), ((1, 1), (-2, -1)),
                                        ((5,), (-1,)), ((7, 9, 10), (0, 1, 2)), ((3, 2, 33), (-1,))])
def test_reversible_for_any_size(shape: tuple[int, ...], dims: tuple[int, ...]) -> None:
    model = _randomised()
    x = torch.randint(0, 256, shape)
    bands = wavelet.forward(x, 3, dims, model)
    assert bands.low.dtype == torch.int64
    assert torch.equal(wavelet.inverse(bands, model), x)
    low_shape, detail_shapes = wavelet.band_shapes(shape, 3, dims)
    assert tuple(bands.low.shape) == low_shape
    assert [{k: tuple(v.shape) for k, v in lv.items()} for lv in bands.details] == detail_shapes


def test_reversible_on_16_bit_and_signed_planes() -> None:
    model = _randomised(bit_depth=16)
    x = torch.randint(-65535, 65536, (40, 31))
    assert torch.equal(wavelet.inverse(wavelet.forward_2d(x, 4, model), model), x)


def test_zero_networks_are_le_gall_53() -> None:
    model = LearnedLifting(levels=2).eval()
    x = torch.randint(0, 256, (29, 42))
    a, b = wavelet.forward_2d(x, 4, model), wavelet.forward_2d(x, 4)
    assert torch.equal(a.low, b.low)
    for la, lb in zip(a.details, b.details):
        assert all(torch.equal(la[k], lb[k]) for k in la)


def test_bands_are_identical_across_threads_and_weight_dtypes() -> None:
    """The decoder recomputes every lifting correction: it must match the encoder's to the bit."""
    x = torch.randint(0, 256, (64, 48))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ref = wavelet.forward_2d(x, 3, _randomised(seed=4))
        torch.set_num_threads(1)
        other_model = _randomised(seed=4).double()
        other = wavelet.forward_2d(x.contiguous().t().contiguous().t(), 3, other_model)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(ref.low, other.low)
    for la, lb in zip(ref.details, other.details):
        assert all(torch.equal(la[k], lb[k]) for k in la)


def test_training_lowers_the_rate_proxy() -> None:
    """A few steps on crops of a real image lower the per-band Laplacian rate of its detail bands."""
    rgb = np.asarray(PILImage.open(SAMPLE).convert("RGB")).astype(np.float32)
    y = torch.from_numpy((rgb[..., 0] + 2 * rgb[..., 1] + rgb[..., 2]) / 4)
    batch = torch.stack([y[:64, :64], y[100:164, 200:264], y[180:244, 40:104]]).floor()
    torch.manual_seed(0)
    model = LearnedLifting(levels=2, hidden=8)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = rate_proxy(wavelet.forward_2d(batch, 2, model).details)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert model.predict[0][-1].weight.grad is not None
    assert min(losses[-5:]) < losses[0] - 0.01
    model.eval()  # the trained transform stays exactly reversible
    x = batch[0].long()
    assert torch.equal(wavelet.inverse_2d(wavelet.forward_2d(x, 2, model), model), x)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        LearnedLifting(levels=0)
    with pytest.raises(ValueError):
        LearnedLifting(bit_depth=20)
