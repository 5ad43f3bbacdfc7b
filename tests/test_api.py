"""ncodec.encode / decode / info: input kinds, round trips, registry, and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ncodec
from ncodec.media.io import read_audio, read_image
from ncodec.codecs.registry import default_codec, list_codecs


@pytest.fixture(scope="module")
def pixels(samples) -> np.ndarray:
    return read_image(samples / "garden.png").pixels[:40, :56]


@pytest.fixture(scope="module")
def pcm(samples) -> np.ndarray:
    return read_audio(samples / "speech.flac").samples[:3000]


LOSSLESS = "wavelet-lossless"  # exact round trips; the default image codec is lossy


def test_numpy_image_comes_back_as_numpy(pixels):
    back = ncodec.decode(ncodec.encode(pixels, codec=LOSSLESS))
    assert isinstance(back, np.ndarray) and np.array_equal(back, pixels)
    gray = np.ascontiguousarray(pixels[..., 0])
    assert np.array_equal(ncodec.decode(ncodec.encode(gray, codec=LOSSLESS)), gray)
    lossy = ncodec.decode(ncodec.encode(pixels))  # the default: the learned codec with the bundled model
    assert isinstance(lossy, np.ndarray) and lossy.shape == pixels.shape and lossy.dtype == pixels.dtype


def test_torch_image_comes_back_as_torch(pixels):
    t = torch.from_numpy(np.moveaxis(pixels, -1, 0).copy())
    back = ncodec.decode(ncodec.encode(t, codec=LOSSLESS))
    assert isinstance(back, torch.Tensor) and torch.equal(back, t)
    f = t.float() / 255
    back = ncodec.decode(ncodec.encode(f, codec=LOSSLESS))
    assert back.dtype == torch.float32 and torch.allclose(back, f, atol=0.5 / 255)


def test_audio_tuples_keep_their_layout(pcm):
    mono = pcm[:, 0]
    back, rate = ncodec.decode(ncodec.encode((mono, 24000)))
    assert rate == 24000 and back.shape == mono.shape and np.array_equal(back, mono)
    stereo = np.stack([mono, mono // 3], axis=1)
    back, _ = ncodec.decode(ncodec.encode((stereo, 16000)))
    assert np.array_equal(back, stereo)
    t = torch.from_numpy(stereo.T.copy())
    back, _ = ncodec.decode(ncodec.encode((t, 16000)))
    assert isinstance(back, torch.Tensor) and torch.equal(back, t)


def test_paths_and_media_objects(samples):
    data = ncodec.encode(samples / "speech.flac")
    samples_back, rate = ncodec.decode(data)
    assert np.array_equal(samples_back, read_audio(samples / "speech.flac").samples)
    img = read_image(samples / "garden.png")
    back = ncodec.decode(ncodec.encode(img, codec=LOSSLESS))
    assert isinstance(back, ncodec.Image) and np.array_equal(back.pixels, img.pixels)


def test_info_reads_header_and_rate(pixels, pcm):
    d = ncodec.info(ncodec.encode(pixels, codec=LOSSLESS))
    assert d["codec"] == "wavelet-lossless" and d["metadata"]["width"] == 56
    assert d["bpp"] == pytest.approx(8 * d["bytes"] / (40 * 56))
    assert [c["kind"] for c in d["chunks"]] == ["IMGP"] * 3
    a = ncodec.info(ncodec.encode((pcm, 24000)))
    assert a["kbps"] == pytest.approx(8 * a["bytes"] / (3000 / 24000) / 1000)


def test_registry_has_one_default_per_media():
    names = {c.name: c for c in list_codecs()}
    assert {"audio-lossless", "wavelet-lossless"} <= set(names)
    assert default_codec("image") == "learned-wavelet" and default_codec("audio") == "audio-lossless"
    for media in ("image", "audio"):
        assert sum(c.default for c in names.values() if c.media == media) == 1


def test_errors_are_ncodec_errors(pixels, pcm):
    with pytest.raises(ncodec.UnknownCodecError, match="available"):
        ncodec.encode(pixels, codec="no-such-codec")
    with pytest.raises(ncodec.MediaError, match="takes audio"):
        ncodec.encode(pixels, codec="audio-lossless")
    with pytest.raises(ncodec.MediaError):
        ncodec.encode(np.zeros((4, 4), np.float64))
    with pytest.raises(ncodec.MediaError):
        ncodec.encode((pcm, "fast"))
    with pytest.raises(ncodec.BitstreamError):
        ncodec.decode(b"NCDC" + bytes(40))
    with pytest.raises(ncodec.BitstreamError):
        ncodec.decode(b"definitely not a stream")
    with pytest.raises(ncodec.MediaError):
        ncodec.encode(b"\x89PNG\r\n\x1a\n truncated")


def test_decode_rejects_unknown_codec_in_stream(pixels):
    from ncodec import bitstream

    header, chunks = bitstream.unpack(ncodec.encode(pixels))
    header.codec = "from-the-future"
    with pytest.raises(ncodec.UnknownCodecError):
        ncodec.decode(bitstream.pack(header, [(c.kind, c.payload) for c in chunks]))
