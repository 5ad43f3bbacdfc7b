"""The bundled restoration network: installed, the default image codec's, and better than plain `wavelet`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import ncodec
from ncodec.codecs.image import learned_wavelet as lw
from ncodec.codecs.registry import default_codec
from ncodec.media.types import Image
from ncodec.zoo import BUNDLED_DIR
from ncodec.zoo.restoration import load_restoration, restoration_models

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garden.png"


@pytest.fixture(scope="module")
def garden() -> np.ndarray:
    return np.asarray(PILImage.open(SAMPLE).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_bundled_network_is_trained_small_and_default(garden: np.ndarray) -> None:
    path = BUNDLED_DIR / f"{lw.DEFAULT_MODEL}.safetensors"
    assert path.is_file() and path.stat().st_size <= 40 << 20
    found = {m.name: m for m in restoration_models()}
    assert found[lw.DEFAULT_MODEL].steps and found[lw.DEFAULT_MODEL].steps >= 1000
    net, facts = load_restoration(path)
    assert not any(m.training for m in net.modules())
    assert default_codec("image", Image(garden, 8)) == "learned-wavelet"
    assert default_codec("image", Image(np.ascontiguousarray(garden[..., :1]), 8)) == "learned-wavelet"


def test_bundled_network_beats_wavelet_at_equal_rate(garden: np.ndarray) -> None:
    """On the sample photo (a dev photo, not trained on) at a low and a middle rate: the same stream but
    a strength byte, and a better image; the coarser the step, the larger the gain."""
    image = Image(garden, 8)
    gains = []
    for quality in (20, 60):
        plain = ncodec.encode(image, codec="wavelet", quality=quality)
        learned = ncodec.encode(image, codec="learned-wavelet", quality=quality)
        assert len(learned) - len(plain) < 130
        gains.append(_psnr(garden, ncodec.decode(learned).pixels) - _psnr(garden, ncodec.decode(plain).pixels))
    assert gains[0] > 0.15 and gains[1] > 0.0, gains


def test_bundled_network_streams_do_not_depend_on_threads(garden: np.ndarray) -> None:
    image = Image(garden[:256, :384].copy(), 8)
    streams, images = [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        streams.append(ncodec.encode(image, codec="learned-wavelet", quality=30))
        images.append(ncodec.decode(streams[-1]).pixels)
    assert streams[0] == streams[1]
    assert np.abs(images[0].astype(int) - images[1]).max() <= 1


def test_list_shows_the_bundled_network(capsys: pytest.CaptureFixture) -> None:
    import json

    from ncodec.cli import main

    assert main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    network = [r for r in rows if r.get("model") == lw.DEFAULT_MODEL]
    assert len(network) == 1 and network[0]["default"] and network[0]["steps"] >= 1000
    codec = [r for r in rows if r.get("name") == "learned-wavelet"][0]
    assert codec["default"] and codec["pretrained"]
    assert main(["list"]) == 0
    assert "image restoration networks" in capsys.readouterr().out
