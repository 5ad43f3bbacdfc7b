"""wavelet-lossless and the integer 5/3 transform: exact, any size, smaller than PNG."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from ncodec import api, bitstream
from ncodec.codecs.image.wavelet_lossless import WaveletLosslessCodec, rct_forward, rct_inverse
from ncodec.errors import BitstreamError
from ncodec.media.io import read_image
from ncodec.media.types import Image


@pytest.fixture(scope="module")
def garden(samples) -> Image:
    return read_image(samples / "garden.png")


def roundtrip(image: Image) -> tuple[bytes, Image]:
    data = WaveletLosslessCodec().encode(image)
    return data, api.decode_media(data)


def test_rct_is_exact():
    rgb = np.random.default_rng(3).integers(0, 65536, (8, 9, 3))
    assert np.array_equal(rct_inverse(*rct_forward(rgb)), rgb)


def test_rgb_sample_is_exact_and_smaller_than_png(garden):
    data, back = roundtrip(garden)
    assert back.pixels.dtype == np.uint8 and np.array_equal(back.pixels, garden.pixels)
    buf = io.BytesIO()
    PILImage.fromarray(garden.pixels).save(buf, "PNG", optimize=True)
    assert len(data) < 0.97 * len(buf.getvalue())


def test_gray_rgba_and_16_bit(garden):
    gray = garden.pixels[..., 1:2]
    _, back = roundtrip(Image(gray))
    assert np.array_equal(back.pixels, gray)
    rgba = np.concatenate([garden.pixels, garden.pixels[..., :1] // 2], axis=-1)
    _, back = roundtrip(Image(rgba))
    assert np.array_equal(back.pixels, rgba)
    deep = (garden.pixels[..., :1].astype(np.uint16) * 257) ^ np.random.default_rng(4).integers(0, 256, gray.shape).astype(np.uint16)
    _, back = roundtrip(Image(deep, bit_depth=16))
    assert back.pixels.dtype == np.uint16 and np.array_equal(back.pixels, deep)
    full = np.full((5, 7, 3), 255, np.uint8)
    _, back = roundtrip(Image(full))
    assert np.array_equal(back.pixels, full)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 13, 1), (13, 1, 3), (33, 17, 3)])
def test_odd_sizes(garden, shape):
    crop = np.ascontiguousarray(garden.pixels[: shape[0], : shape[1], : shape[2]])
    _, back = roundtrip(Image(crop))
    assert np.array_equal(back.pixels, crop)


def test_corrupt_plane_with_valid_crc_is_caught(garden):
    small = Image(np.ascontiguousarray(garden.pixels[:64, :64]))
    data = WaveletLosslessCodec().encode(small)
    header, chunks = bitstream.unpack(data)
    for pos in range(0, len(chunks[0].payload), 37):
        payload = bytearray(chunks[0].payload)
        payload[pos] ^= 0xA5
        forged = bitstream.pack(header, [(chunks[0].kind, bytes(payload))] + [(c.kind, c.payload) for c in chunks[1:]])
        with pytest.raises(BitstreamError):
            api.decode_media(forged)


def test_missing_plane_is_caught(garden):
    data = WaveletLosslessCodec().encode(Image(np.ascontiguousarray(garden.pixels[:16, :16])))
    header, chunks = bitstream.unpack(data)
    with pytest.raises(BitstreamError, match="planes"):
        api.decode_media(bitstream.pack(header, [(c.kind, c.payload) for c in chunks[:2]]))
