"""The lossy `wavelet` codec and the subband context coder it shares with wavelet-lossless."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import ncodec
from ncodec import bitstream
from ncodec.codecs.image import subband_coder as sc
from ncodec.errors import BitstreamError

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garden.png"


@pytest.fixture(scope="module")
def garden() -> np.ndarray:
    return np.asarray(PILImage.open(SAMPLE).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_subband_coder_round_trip_with_many_context_groups() -> None:
    """Bands whose scale varies across the image use several context groups; all decode exactly."""
    rng = np.random.default_rng(0)
    scale = np.linspace(0.05, 40, 64)[None, :] * np.ones((48, 1))
    details = []
    for level, size in enumerate([(48, 64), (24, 32), (12, 16)]):
        s = scale[: size[0], : size[1]] / (level + 1)
        details.append({o: np.round(rng.laplace(0, s)).astype(np.int64) for o in sc.ORIENTATIONS})
    low = rng.integers(-300, 300, (6, 8))
    data = sc.encode_subbands(low, details)
    shapes = [{o: b[o].shape for o in sc.ORIENTATIONS} for b in details]
    low2, details2 = sc.decode_subbands(data, low.shape, shapes)
    assert np.array_equal(low, low2)
    for a, b in zip(details, details2):
        assert all(np.array_equal(a[o], b[o]) for o in sc.ORIENTATIONS)
    bands = details[0]["HL"]
    starts = sc.group_bins(bands, sc.context_bins(np.abs(bands)))
    assert starts.sum() > 2  # the case the test is about


@pytest.mark.parametrize("bpp", [0.25, 1.0])
def test_rate_control_lands_under_the_target(garden: np.ndarray, bpp: float) -> None:
    data = ncodec.encode(garden, codec="wavelet", bpp=bpp)
    rate = 8 * len(data) / (garden.shape[0] * garden.shape[1])
    assert 0.85 * bpp <= rate <= bpp
    out = ncodec.decode(data)
    assert out.shape == garden.shape and out.dtype == np.uint8
    assert _psnr(garden, out) > (26 if bpp < 0.5 else 31)


def test_quality_orders_rate_and_distortion(garden: np.ndarray) -> None:
    sizes, psnrs = [], []
    for q in (20, 50, 80):
        data = ncodec.encode(garden, codec="wavelet", quality=q)
        sizes.append(len(data))
        psnrs.append(_psnr(garden, ncodec.decode(data)))
    assert sizes == sorted(sizes) and psnrs == sorted(psnrs)


def test_gray_and_odd_sizes(garden: np.ndarray) -> None:
    gray = garden[:37, :53, 1:2].copy()
    out = ncodec.decode(ncodec.encode(gray, codec="wavelet", quality=90))
    assert out.shape == gray.shape and _psnr(gray, out) > 35


def test_hostile_streams(garden: np.ndarray) -> None:
    data = ncodec.encode(garden[:64, :96], codec="wavelet", quality=60)
    for cut in (8, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            ncodec.decode(data[:cut])
    reader = bitstream.Reader(data)
    header, chunks = reader.header, [(c.kind, bytes(c.payload)) for c in reader]
    bad_step = bytearray(chunks[0][1])
    bad_step[1:9] = np.float64(np.inf).tobytes()
    bad_offsets = bytearray(chunks[1][1])
    bad_offsets[1] = 100
    cases = [[(chunks[0][0], bytes(bad_step))] + chunks[1:], [chunks[0], (chunks[1][0], bytes(bad_offsets))] + chunks[2:],
             chunks[:2], [chunks[1], chunks[0], chunks[2]], [(chunks[0][0], chunks[0][1][:10])] + chunks[1:]]
    for case in cases:
        with pytest.raises(BitstreamError):
            ncodec.decode(bitstream.pack(header, case))
    for config in ({"format": 1}, {"levels": 9}, {"tables": "0" * 16}):
        h = bitstream.Header(header.codec, {**header.config, **config}, header.metadata)
        with pytest.raises(BitstreamError):
            ncodec.decode(bitstream.pack(h, chunks))


def _bands(garden: np.ndarray, plane: int, levels: int = 3) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """The 5/3 subbands of one RCT plane of the sample (integers, as wavelet-lossless codes them)."""
    import torch

    from ncodec.transforms import wavelet
    from ncodec.codecs.image.wavelet_lossless import rct_forward

    p = rct_forward(garden)[plane]
    b = wavelet.forward_2d(torch.from_numpy(np.ascontiguousarray(p)), levels)
    return b.low.numpy(), [{k: v.numpy() for k, v in lv.items()} for lv in b.details]


def test_earlier_planes_are_context_for_later_ones(garden: np.ndarray) -> None:
    """Chroma coded with luma's subbands as context: smaller, and decodes only with the same references."""
    _, luma = _bands(garden, 0)
    _, blue = _bands(garden, 1)
    low, red = _bands(garden, 2)
    coarse = [[{o: b[o] // 4 for o in sc.ORIENTATIONS} for b in d] for d in (luma, blue, red)]  # as if quantized
    for *refs, chroma in ((luma, blue, red), coarse):
        alone = sc.encode_subbands(low, chroma)
        with_refs = sc.encode_subbands(low, chroma, refs)
        assert len(with_refs) < 0.995 * len(alone)
        shapes = [{o: b[o].shape for o in sc.ORIENTATIONS} for b in chroma]
        _, decoded = sc.decode_subbands(with_refs, low.shape, shapes, refs)
        assert all(np.array_equal(a[o], b[o]) for a, b in zip(chroma, decoded) for o in sc.ORIENTATIONS)


def test_rate_distortion_quantization(garden: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indices stay at floor or floor + 1 of the magnitude, with the coefficient's sign; the rate
    weight sends expensive small ones to zero, and pays: at equal rate the image is better."""
    from ncodec.codecs.image import wavelet_lossy as wl

    _, details = _bands(garden, 0)
    c = details[0]["HL"].astype(np.float64) + 0.25
    mag = np.abs(c) / 6.0
    q, _ = wl._rdo_quantize(c, 6.0, details[1]["HL"], [])
    assert np.all((np.abs(q) == np.floor(mag)) | (np.abs(q) == np.floor(mag) + 1))
    assert np.all((np.sign(q) == np.sign(c)) | (q == 0))
    image = ncodec.media.Image(garden, 8)
    rdo = wl.WaveletCodec(bpp=0.5)._rate_controlled(image)
    monkeypatch.setattr(wl, "RDO_LAMBDA", 0.0)
    nearest, _ = wl._rdo_quantize(c, 6.0, details[1]["HL"], [])
    assert np.count_nonzero(q) < 0.8 * np.count_nonzero(nearest)
    distortion_only = wl.WaveletCodec(bpp=0.5)._rate_controlled(image)
    assert len(rdo) <= 0.5 * garden.shape[0] * garden.shape[1] / 8
    gain = _psnr(garden, np.asarray(ncodec.decode(rdo))) - _psnr(garden, np.asarray(ncodec.decode(distortion_only)))
    assert gain > 0.2, gain


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (5, 8), (13, 6)])
def test_wavefront_order_puts_every_neighbour_on_an_earlier_front(shape: tuple[int, int]) -> None:
    """Each front decodes in one call only if all its coefficients' context neighbours came before."""
    order, bounds = sc.wavefront(shape)
    assert sorted(order.tolist()) == list(range(shape[0] * shape[1])) and bounds[0] == 0 and bounds[-1] == order.size
    front_of = np.empty(order.size, dtype=np.int64)
    for f, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        front_of[order[lo:hi]] = f
    front_of = front_of.reshape(shape)
    for y in range(shape[0]):
        for x in range(shape[1]):
            for dy, dx, _ in sc.NEIGHBOURS:
                if 0 <= y + dy < shape[0] and 0 <= x + dx < shape[1]:
                    assert front_of[y + dy, x + dx] < front_of[y, x]
