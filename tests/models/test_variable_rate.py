"""The variable-rate image model (`ncodec.models.image.variable_rate`): gain interpolation, rate that
grows with quality, exact streams at any thread count, and zoo files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncodec.models.image.variable_rate import LAMBDAS, LEVELS, GainedMeanScaleHyperprior, lambda_for
from ncodec.zoo import load_model, save_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> GainedMeanScaleHyperprior:
    torch.manual_seed(0)
    net = GainedMeanScaleHyperprior(16, 24)
    with torch.no_grad():  # distinct gains per channel and latents of a few units, as a trained model has
        net.log_gain.add_(0.1 * torch.randn_like(net.log_gain))
        net.g_a[-1].weight.mul_(40)
    net.eval().update(force=True)
    net.exact = True
    return net


@pytest.fixture(scope="module")
def photo(samples: Path) -> torch.Tensor:
    px = np.asarray(Image.open(samples / "garden.png").convert("RGB"))[:96, :160]
    return torch.from_numpy(px.copy()).permute(2, 0, 1)[None].float() / 255


def test_quality_interpolates_levels_geometrically(model: GainedMeanScaleHyperprior) -> None:
    g3, i3 = model.gains(3.0, 1)
    g4, _ = model.gains(4.0, 1)
    assert torch.allclose(g3[0, :, 0, 0], model.log_gain[2].exp()) and torch.allclose(i3[0, :, 0, 0],
                                                                                      model.log_inverse_gain[2].exp())
    g35, _ = model.gains(3.5, 1)
    assert torch.allclose(g35, (g3 * g4).sqrt(), rtol=1e-6)
    assert float(lambda_for(3)) == pytest.approx(LAMBDAS[2]) and float(lambda_for(LEVELS)) == pytest.approx(LAMBDAS[-1])
    assert float(lambda_for(2.5)) == pytest.approx(math.sqrt(LAMBDAS[1] * LAMBDAS[2]))
    per_image, _ = model.gains(torch.tensor([1.0, 8.0]), 2)
    assert torch.allclose(per_image[1], model.gains(8.0, 1)[0][0])
    for bad in (float("nan"), torch.ones(3)):
        with pytest.raises(ValueError):
            model.gains(bad, 2)


def test_round_trip_matches_eval_forward_and_rate_grows_with_quality(model: GainedMeanScaleHyperprior,
                                                                      photo: torch.Tensor) -> None:
    sizes = []
    for quality in (1.0, 4.5, 8.0):
        enc = model.compress(photo, quality)
        dec = model.decompress(enc["strings"], enc["shape"], enc["size"], quality)
        ref = model(photo, quality)["x_hat"].clamp(0, 1)
        assert dec["x_hat"].shape == photo.shape
        assert torch.allclose(dec["x_hat"].float(), ref, atol=1e-4)
        sizes.append(sum(len(s) for strings in enc["strings"] for s in strings))
    assert sizes[0] < sizes[1] < sizes[2]


def test_streams_are_the_same_at_one_and_two_threads(model: GainedMeanScaleHyperprior, photo: torch.Tensor) -> None:
    before = torch.get_num_threads()
    try:
        streams = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            streams.append(model.compress(photo, 5.25)["strings"])
        assert streams[0] == streams[1]
    finally:
        torch.set_num_threads(before)


def test_zoo_file_round_trip(model: GainedMeanScaleHyperprior, photo: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "gained.safetensors"
    save_model(model, path, steps="7")
    loaded, facts = load_model(path)
    assert facts["architecture"] == "mbt2018-mean-gained" and isinstance(loaded, GainedMeanScaleHyperprior)
    loaded.exact = True
    assert loaded.compress(photo, 2.0)["strings"] == model.compress(photo, 2.0)["strings"]
