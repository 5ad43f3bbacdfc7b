"""The `learned` codec with a variable-rate model: one zoo file, any quality in 1-8 recorded in the stream,
exact decoding across thread counts, and refusals of bad qualities in options and headers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import ncodec
from ncodec import bitstream
from ncodec.errors import BitstreamError, MediaError
from ncodec.models.image.hyperprior import MeanScaleHyperprior
from ncodec.models.image.variable_rate import GainedMeanScaleHyperprior
from ncodec.zoo import find_model, save_model, zoo_models

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garden.png"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def zoo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private zoo: one variable-rate model (``vr.safetensors``) and one fixed-rate file."""
    torch.manual_seed(0)
    model = GainedMeanScaleHyperprior(16, 24)
    with torch.no_grad():  # latents over several bins and distinct gains, as a trained model has
        model.g_a[-1].weight.mul_(40)
        model.log_gain.add_(0.1 * torch.randn_like(model.log_gain))
    save_model(model, tmp_path / "vr.safetensors", steps="0")
    save_model(MeanScaleHyperprior(16, 24), tmp_path / "fixed-q3.safetensors")
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path))
    return tmp_path


def _image() -> np.ndarray:
    return np.asarray(PILImage.open(SAMPLE).convert("RGB"))[:70, :90].copy()


def test_one_file_codes_every_quality(zoo_dir: Path) -> None:
    entry = find_model("vr", 3)
    assert entry.quality is None and entry.architecture == "mbt2018-mean-gained"
    assert {(z.name, z.quality) for z in zoo_models()} >= {("vr", None), ("fixed", 3)}
    img = _image()
    sizes = []
    for quality in (1.0, 2.5, 7.75):
        data = ncodec.encode(img, codec="learned", model="vr", quality=quality)
        assert ncodec.info(data)["config"]["quality"] == quality
        back = ncodec.decode(data)
        assert back.shape == img.shape and back.dtype == np.uint8
        sizes.append(len(data))
    assert sizes[0] < sizes[1] < sizes[2]


def test_streams_and_pictures_are_the_same_at_one_and_two_threads(zoo_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            data = ncodec.encode(_image(), codec="learned", model="vr", quality=5.5)
            out.append((data, ncodec.decode(data)))
        assert out[0][0] == out[1][0] and np.array_equal(out[0][1], out[1][1])
    finally:
        torch.set_num_threads(before)


def test_bad_qualities_are_refused(zoo_dir: Path) -> None:
    img = _image()
    for quality in (0.5, 8.5, float("nan"), "high"):
        with pytest.raises(MediaError):
            ncodec.encode(img, codec="learned", model="vr", quality=quality)
    with pytest.raises(MediaError, match="integer qualities"):
        ncodec.encode(img, codec="learned", model="fixed", quality=3.5)
    data = ncodec.encode(img, codec="learned", model="vr", quality=2.0)
    reader = bitstream.Reader(data)
    chunks = [(c.kind, bytes(c.payload)) for c in reader]
    for forged in (99.0, -1.0, "x"):
        header = bitstream.Header(reader.header.codec, {**reader.header.config, "quality": forged},
                                  reader.header.metadata, reader.header.model_hash)
        with pytest.raises(BitstreamError):
            ncodec.decode(bitstream.pack(header, chunks))
