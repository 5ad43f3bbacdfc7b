"""The `learned-wavelet` codec: wavelet's stream plus a restoration network whose strength the encoder picks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import ncodec
from ncodec import bitstream
from ncodec.codecs.image import learned_wavelet as lw
from ncodec.errors import BitstreamError, ModelFileError, ModelMismatchError
from ncodec.media.types import Image
from ncodec.models.image.restoration import RestorationNet
from ncodec.zoo.restoration import load_restoration, restoration_models, save_restoration

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garden.png"


@pytest.fixture(scope="module")
def garden() -> np.ndarray:
    return np.asarray(PILImage.open(SAMPLE).convert("RGB"))[:160, :224].copy()


def _net(seed: int, scale: float = 0.05) -> RestorationNet:
    """A small network whose correction is not zero (its last layer drawn at random)."""
    torch.manual_seed(seed)
    net = RestorationNet(width=8, deep_width=16, blocks=1)
    with torch.no_grad():
        net.tail.weight.normal_(0, scale)
    return net


def _smoothing(net: torch.nn.Module, pixels: np.ndarray, step: float) -> np.ndarray:
    """A stand-in correction that helps on coarsely coded photos: a 3x3 binomial blur minus the image."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3).contiguous()
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k,
                                         groups=x.shape[1])
    return (blurred - x)[0].permute(1, 2, 0).numpy()


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    save_restoration(_net(0), tmp_path / f"{lw.DEFAULT_MODEL}.safetensors", steps=0)
    save_restoration(_net(1), tmp_path / "other.safetensors", steps=0)
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path))
    return tmp_path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_stream_is_wavelets_plus_a_strength_byte(models: Path, garden: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Same coefficients and rate as `wavelet` at the same quality; the decoded image is wavelet's plus the
    chosen share of the correction, and better than wavelet's when the correction helps."""
    monkeypatch.setattr(lw, "correction", _smoothing)
    image = Image(garden, 8)
    plain = ncodec.encode(image, codec="wavelet", quality=25)
    learned = ncodec.encode(image, codec="learned-wavelet", quality=25)
    assert 0 < len(learned) - len(plain) < 130   # the header names the model, its hash (64 hex); the WAVR chunk
    base = ncodec.decode(plain).pixels
    out = ncodec.decode(learned).pixels
    strength = [bytes(c.payload) for c in bitstream.Reader(learned) if c.kind == lw.STRENGTH_CHUNK][0][0]
    corr = _smoothing(None, base, 0.0)   # type: ignore[arg-type]
    assert np.array_equal(out, lw.apply(base, corr, strength))
    assert strength == lw.best_strength(base, corr, garden) > 0
    assert _psnr(garden, out) > _psnr(garden, base)


def test_network_path_never_loses_to_wavelet(models: Path, garden: np.ndarray) -> None:
    """With a network whose correction is noise, the encoder turns it off (strength 0: wavelet's pixels)."""
    image = Image(garden, 8)
    base = ncodec.decode(ncodec.encode(image, codec="wavelet", quality=60)).pixels
    out = ncodec.decode(ncodec.encode(image, codec="learned-wavelet", quality=60)).pixels
    assert _psnr(garden, out) >= _psnr(garden, base)


def test_strength_is_least_squares() -> None:
    """The strength minimises the squared error over the 1/16 grid; a useless correction gets 0."""
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    decoded = np.clip(original + rng.normal(0, 4, original.shape), 0, 255).astype(np.uint8)
    true_corr = original.astype(np.float32) - decoded
    assert lw.best_strength(decoded, 0.5 * true_corr, original) == lw.MAX_STRENGTH   # 2, clipped to 1.5
    assert lw.best_strength(decoded, 2 * true_corr, original) == lw.STRENGTH_UNITS // 2
    assert lw.best_strength(decoded, -true_corr, original) == 0
    errors = [np.sum((lw.apply(decoded, true_corr * 0.8, s).astype(float) - original) ** 2)
              for s in range(lw.MAX_STRENGTH + 1)]
    assert abs(int(np.argmin(errors)) - lw.best_strength(decoded, true_corr * 0.8, original)) <= 1


def test_rate_target_and_gray(models: Path, garden: np.ndarray) -> None:
    image = Image(garden, 8)
    data = ncodec.encode(image, codec="learned-wavelet", bpp=0.5)
    assert len(data) <= 0.5 * garden.shape[0] * garden.shape[1] / 8
    gray = Image(np.ascontiguousarray(garden[..., :1]), 8)
    back = ncodec.decode(ncodec.encode(gray, codec="learned-wavelet")).pixels
    assert back.shape == gray.pixels.shape and _psnr(gray.pixels, back) > 30


def test_other_weights_and_bad_streams_are_refused(models: Path, garden: np.ndarray) -> None:
    data = ncodec.encode(Image(garden, 8), codec="learned-wavelet", quality=50)
    with pytest.raises(ModelMismatchError):
        ncodec.decode(data, model=str(models / "other.safetensors"))
    reader = bitstream.Reader(data)
    header = reader.header
    chunks = [(c.kind, bytes(c.payload)) for c in reader]
    for bad in (bytes([lw.MAX_STRENGTH + 1]), b"", b"\x01\x02"):
        forged = [(k, bad if k == lw.STRENGTH_CHUNK else p) for k, p in chunks]
        with pytest.raises(BitstreamError, match="strength"):
            ncodec.decode(bitstream.pack(header, forged, index=False))
    custom = ncodec.encode(Image(garden, 8), codec="learned-wavelet", model="other", quality=50)
    (models / "other.safetensors").unlink()
    with pytest.raises(ModelFileError, match="not in the local zoo"):
        ncodec.decode(custom)


def test_streams_do_not_depend_on_threads(models: Path, garden: np.ndarray) -> None:
    image = Image(garden, 8)
    streams = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        streams.append(ncodec.encode(image, codec="learned-wavelet", quality=70))
    assert streams[0] == streams[1]


def test_hostile_weights_files_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "huge.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"architecture": "restoration", "channels": "3",
                                                          "width": "100000", "deep_width": "8", "blocks": "1"})
    with pytest.raises(ModelFileError, match="implausible width"):
        load_restoration(path)
    save_restoration(_net(0), tmp_path / "ok.safetensors")
    state = {k: v for k, v in load_restoration(tmp_path / "ok.safetensors")[0].state_dict().items()}
    state["tail.bias"] = torch.full_like(state["tail.bias"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"), metadata={"architecture": "restoration", "channels": "3",
                                                                   "width": "8", "deep_width": "16", "blocks": "1"})
    with pytest.raises(ModelFileError, match="NaN"):
        load_restoration(tmp_path / "nan.safetensors")


def test_tiles_match_one_pass(garden: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row tiles with their margins give the correction of one pass over the whole image."""
    net = _net(3, 0.2)
    whole = lw.correction(net, garden, 8.0)
    monkeypatch.setattr(lw, "TILE_ROWS", 48)
    assert np.abs(lw.correction(net, garden, 8.0) - whole).max() < 1e-3


def test_zoo_lists_restoration_models(models: Path) -> None:
    names = {m.name for m in restoration_models()}
    assert {lw.DEFAULT_MODEL, "other"} <= names


def test_learned_context_table_codes_exactly_and_is_checked(tmp_path: Path, garden: np.ndarray,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A model file with a context table (fitted here on a crop of the sample): fitting never raises the
    coder's size estimate, streams made with the table decode, the same network without it is another model
    (its hash), and a table out of range is refused."""
    from ncodec.codecs.image import subband_coder as sc
    from ncodec.train.contexts import band_cases, class_bits, fit_table, hand_set_row

    cases = band_cases([garden[:96, :128]], (12.0,))
    table, scores = fit_table({c: v for c, v in cases.items() if c in (0, 1)}, sweeps=1)
    assert all(after <= before for before, after in scores.values())
    assert class_bits(cases[0], [int(v) for v in table[0]]) == scores[0][1] <= class_bits(cases[0], hand_set_row())
    table[2] = [3, 0, 2, 1, 5, 0, 1, 2, 0]    # a row far from the hand-set one, so the streams differ
    save_restoration(_net(0), tmp_path / f"{lw.DEFAULT_MODEL}.safetensors", contexts=table, steps=1)
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path))
    image = Image(garden, 8)
    learned = ncodec.encode(image, codec="learned-wavelet", quality=50)
    plain = ncodec.encode(image, codec="wavelet", quality=50)
    codec = lw.LearnedWaveletCodec(quality=50)
    assert np.array_equal(codec.contexts.rows, table)
    assert [bytes(c.payload) for c in bitstream.Reader(learned)][0] != [bytes(c.payload) for c in bitstream.Reader(plain)][0]
    assert np.abs(ncodec.decode(learned).pixels.astype(int) - ncodec.decode(plain).pixels).mean() < 1.0
    save_restoration(_net(0), tmp_path / "hand-set.safetensors", steps=1)   # same network, no table: other weights
    with pytest.raises(ModelMismatchError):
        ncodec.decode(learned, model=str(tmp_path / "hand-set.safetensors"))
    table[0, 0] = sc.MAX_WEIGHT + 1
    save_restoration(_net(0), tmp_path / f"{lw.DEFAULT_MODEL}.safetensors", contexts=table, steps=1)
    with pytest.raises(ModelFileError, match="context table"):
        lw.LearnedWaveletCodec()
