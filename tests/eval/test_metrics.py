"""Metrics: known values, identities, and agreement with reference implementations on real media."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image as PILImage

from ncodec.eval import metrics as m
from ncodec.errors import MediaError
from ncodec.media.types import Audio, Image, Video


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def garden(samples) -> np.ndarray:
    with PILImage.open(samples / "garden.png") as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def garden_jpeg(garden) -> np.ndarray:
    buf = io.BytesIO()
    PILImage.fromarray(garden).save(buf, "JPEG", quality=25)
    with PILImage.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def garden_noisy(garden) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(garden + rng.normal(0, 8, garden.shape), 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def speech(samples) -> Audio:
    data, rate = sf.read(str(samples / "speech.flac"), dtype="int16", always_2d=True)
    return Audio(data, rate, bit_depth=16)


def _float(audio: Audio) -> np.ndarray:
    return audio.samples[:, 0].astype(np.float64) / 32768.0


def _noise_at(x: np.ndarray, snr_db: float, seed: int = 0, orthogonal: bool = False) -> np.ndarray:
    """Gaussian noise at ``snr_db`` relative to zero-mean ``x`` (optionally made exactly orthogonal to it)."""
    xc = x - x.mean()
    n = np.random.default_rng(seed).standard_normal(len(x))
    if orthogonal:
        n -= n.mean()
        n -= (n @ xc) / (xc @ xc) * xc
    return n * np.sqrt((xc @ xc) / (n @ n) / 10 ** (snr_db / 10))


# ------------------------------------------------------------------ images
def test_psnr_known_values():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert m.psnr(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)  # 10 log10(255^2)
    assert m.psnr(a, a) == math.inf
    assert m.psnr_y(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)  # Y weights sum to 1
    b = np.full((4, 4, 3), 1000, np.uint16)
    assert m.psnr(b, b + 1) == pytest.approx(10 * math.log10(65535 ** 2))
    assert m.psnr(Image(b, bit_depth=10), Image(b + 2, bit_depth=10)) == pytest.approx(10 * math.log10(1023 ** 2 / 4))


def test_psnr_on_real_image(garden, garden_jpeg):
    half = garden // 2
    assert m.psnr(half, half + 1) == pytest.approx(48.1308036, abs=1e-6)
    mse = np.mean((garden.astype(np.float64) - garden_jpeg) ** 2)
    assert m.psnr(garden, garden_jpeg) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert m.psnr(Image(garden), Image(garden_jpeg)) == m.psnr(garden, garden_jpeg)
    assert m.psnr(torch.from_numpy(garden), torch.from_numpy(garden_jpeg)) == pytest.approx(m.psnr(garden, garden_jpeg))


def test_psnr_y_is_bt601_full_range_luma(garden, garden_jpeg):
    w = np.array([0.299, 0.587, 0.114])
    ya, yb = garden @ w, garden_jpeg @ w
    expected = 10 * math.log10(255 ** 2 / np.mean((ya - yb) ** 2))
    assert m.psnr_y(garden, garden_jpeg) == pytest.approx(expected, abs=1e-9)
    gray_a, gray_b = garden[:, :, 1], garden_jpeg[:, :, 1]   # gray images are used as they are
    assert m.psnr_y(gray_a, gray_b) == pytest.approx(m.psnr(gray_a, gray_b))
    rgba = np.dstack([garden, np.full(garden.shape[:2], 255, np.uint8)])
    rgba_j = np.dstack([garden_jpeg, np.zeros(garden.shape[:2], np.uint8)])
    assert m.psnr_y(rgba, rgba_j) == pytest.approx(expected, abs=1e-9)  # alpha ignored


def test_ms_ssim_identity_and_db(garden, garden_jpeg):
    assert m.ms_ssim(garden, garden) == pytest.approx(1.0, abs=1e-12)
    assert m.ms_ssim_db(garden, garden) == math.inf
    v = m.ms_ssim(garden, garden_jpeg)
    assert 0.8 < v < 1
    assert m.ms_ssim_db(garden, garden_jpeg) == pytest.approx(-10 * math.log10(1 - v))


@pytest.mark.parametrize("which", ["garden_jpeg", "garden_noisy"])
def test_ms_ssim_matches_pytorch_msssim(garden, which, request):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    other = request.getfixturevalue(which)

    def to_t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(2, 0, 1)[None].double()

    expected = float(pytorch_msssim.ms_ssim(to_t(garden), to_t(other), data_range=255, size_average=True))
    assert m.ms_ssim(garden, other) == pytest.approx(expected, abs=1e-4)
    # and on 16-bit data (data range 65535)
    g16, o16 = garden.astype(np.uint16) * 257, other.astype(np.uint16) * 257
    expected16 = float(pytorch_msssim.ms_ssim(to_t(g16.astype(np.float64)), to_t(o16.astype(np.float64)),
                                              data_range=65535, size_average=True))
    assert m.ms_ssim(g16, o16) == pytest.approx(expected16, abs=1e-4)


def test_ms_ssim_small_images_use_fewer_scales(garden, garden_jpeg):
    pytest.importorskip("pytorch_msssim")
    from pytorch_msssim.ssim import _ssim

    # 96 x 144 px: 4 scales fit (96, 48, 24, 12 >= 11 px), weights renormalised to sum to 1
    a, b = garden[:96, :144], garden_jpeg[:96, :144]
    x, y = (torch.from_numpy(v).permute(2, 0, 1)[None].double() for v in (a, b))
    g = torch.exp(-(torch.arange(11, dtype=torch.float64) - 5) ** 2 / (2 * 1.5 ** 2))
    win = (g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)   # pytorch_msssim's window, in float64
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363], dtype=torch.float64)
    weights = weights / weights.sum()
    terms = []
    for level in range(4):
        ssim_c, cs_c = _ssim(x, y, data_range=255, win=win)
        terms.append(torch.relu(cs_c if level < 3 else ssim_c))
        x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
    expected = float(torch.prod(torch.stack(terms) ** weights[:, None, None], dim=0).mean())
    assert m.ms_ssim(a, b) == pytest.approx(expected, abs=1e-9)
    for size in (1, 5, 10, 11, 22, 40):  # down to a single pixel: a cut window, one scale
        assert 0 <= m.ms_ssim(garden[:size, :size], garden_jpeg[:size, :size]) <= 1
        assert m.ms_ssim(garden[:size, :size], garden[:size, :size]) == pytest.approx(1.0)


def test_bpp_and_errors(garden, garden_jpeg):
    assert m.bpp(12288, garden) == pytest.approx(1.0)          # 384 x 256 px, 12288 bytes
    assert m.bpp(12288, Image(garden)) == pytest.approx(1.0)
    with pytest.raises(MediaError):
        m.psnr(garden, garden_jpeg[:-1])
    with pytest.raises(MediaError):
        m.psnr(garden.astype(np.float32), garden_jpeg)
    with pytest.raises(MediaError):
        m.psnr(garden, garden_jpeg.astype(np.uint16))            # 8-bit vs 16-bit peak


# ------------------------------------------------------------------ audio
def test_si_sdr(speech):
    x = _float(speech)
    assert m.si_sdr(speech, 0.5 * x) > 100                      # a scaled copy: huge (inf when exact)
    assert m.si_sdr(x, x) == math.inf
    for snr in (0.0, 10.0, 25.0):
        assert m.si_sdr(speech, x + _noise_at(x, snr)) == pytest.approx(snr, abs=0.1)
        assert m.si_sdr(speech, 3.0 * (x + _noise_at(x, snr, orthogonal=True)) + 0.1) == pytest.approx(snr, abs=1e-6)
    stereo = np.stack([x, x], axis=1)
    noisy = np.stack([x + _noise_at(x, 5.0, 1, True), x + _noise_at(x, 15.0, 2, True)], axis=1)
    assert m.si_sdr(stereo, noisy) == pytest.approx(10.0, abs=1e-6)  # mean over channels


def test_audio_alignment_and_scaling(speech):
    x = _float(speech)
    y = x + _noise_at(x, 10.0)
    padded = np.concatenate([y, np.zeros(500)])                  # codec padding: cropped away
    assert m.si_sdr(speech, padded) == pytest.approx(m.si_sdr(x, y))
    assert m.mel_distance(speech, padded) == pytest.approx(m.mel_distance(x, y, speech.sample_rate), rel=1e-5)
    as_int = Audio(np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16), speech.sample_rate)
    assert m.si_sdr(speech, as_int) == pytest.approx(m.si_sdr(x, y), abs=0.01)
    with pytest.raises(MediaError):
        m.mel_distance(x, y)                                     # no sample rate
    with pytest.raises(MediaError):
        m.mel_distance(speech, Audio(y.astype(np.float32), 16000))
    with pytest.raises(MediaError):
        m.si_sdr(np.stack([x, x], 1), y)


def test_mel_distance_identity_and_growth(speech):
    x = _float(speech)
    assert m.mel_distance(speech, speech) == 0.0
    d = [m.mel_distance(speech, x + _noise_at(x, snr), speech.sample_rate) for snr in (30.0, 20.0, 10.0, 0.0)]
    assert 0 < d[0] < d[1] < d[2] < d[3]
    mean = m.mel_distance(speech, x + _noise_at(x, 10.0), reduction="mean")
    assert d[2] == pytest.approx(7 * mean, rel=1e-6)             # the default sums DAC's 7 scales
    assert m.mel_distance(speech, x[:300] * 0.9) > 0             # shorter than half a window: padded


def _plain_mel_scale(ref: np.ndarray, est: np.ndarray, rate: int, n_fft: int, n_mels: int) -> float:
    """One scale of DAC's mel loss, written out with numpy (librosa's Slaney filterbank recipe)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (np.log(6.4) / 27), f / (200 / 3))

    def mel_to_hz(mel):
        return np.where(mel >= 15, 1000 * np.exp(np.log(6.4) / 27 * (mel - 15)), mel * (200 / 3))

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        rising = (freqs - edges[i]) / (edges[i + 1] - edges[i])
        falling = (edges[i + 2] - freqs) / (edges[i + 2] - edges[i + 1])
        fb[i] = np.maximum(0, np.minimum(rising, falling)) * 2 / (edges[i + 2] - edges[i])

    def mel(x):
        hop = n_fft // 4
        padded = np.pad(x, n_fft // 2, mode="reflect")
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)   # periodic Hann
        frames = [padded[i:i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)]
        magnitude = np.abs(np.fft.rfft(np.array(frames), axis=1)).T          # magnitude, not power
        return np.log10(np.maximum(fb @ magnitude, 1e-5))

    return float(np.mean(np.abs(mel(ref) - mel(est))))


@pytest.mark.parametrize("n_fft,n_mels", [(512, 80), (32, 5), (2048, 320)])
def test_mel_distance_matches_plain_recomputation(speech, n_fft, n_mels):
    x = _float(speech)
    y = x + _noise_at(x, 15.0, seed=3)
    expected = _plain_mel_scale(x, y, speech.sample_rate, n_fft, n_mels)
    got = m.mel_distance(speech, y, window_lengths=(n_fft,), n_mels=(n_mels,))
    assert got == pytest.approx(expected, rel=1e-5)             # float32 vs float64


def test_stft_distance(speech):
    x = _float(speech)
    assert m.stft_distance(speech, speech) == 0.0
    low, high = (m.stft_distance(speech, x + _noise_at(x, snr)) for snr in (20.0, 0.0))
    assert 0 < low < high
    y = x + _noise_at(x, 10.0)

    def spec(s: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.tensor(s, dtype=torch.float32), 512, 128, window=torch.hann_window(512),
                          return_complex=True).abs()

    a, b = spec(x), spec(y)
    expected = float((a.clamp_min(1e-5).pow(2).log10() - b.clamp_min(1e-5).pow(2).log10()).abs().mean()
                     + (a - b).abs().mean())
    assert m.stft_distance(speech, y, window_lengths=(512,)) == pytest.approx(expected, rel=1e-5)


def test_stoi(speech):
    pytest.importorskip("pystoi")
    x = _float(speech)
    clean = m.stoi(speech, x)
    noisy = m.stoi(speech, x + _noise_at(x, -5.0))
    assert clean == pytest.approx(1.0, abs=1e-6) and 0 < noisy < clean


def test_stoi_without_pystoi(speech, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pystoi", None)
    with pytest.raises(MediaError, match="pip install pystoi"):
        m.stoi(speech, speech)


def test_kbps():
    assert m.kbps(1000, 1.0) == 8.0
    assert m.kbps(3000, 2.0) == 12.0
    with pytest.raises(MediaError):
        m.kbps(10, 0.0)


# ------------------------------------------------------------------ video
def test_video_metrics(garden, garden_jpeg):
    ref = np.stack([garden, garden, garden // 2])
    dec = np.stack([garden_jpeg, garden, garden // 2 + 1])
    out = m.video_psnr(ref, dec)
    assert out["per_frame"][0] == pytest.approx(m.psnr(garden, garden_jpeg))
    assert out["per_frame_y"][0] == pytest.approx(m.psnr_y(garden, garden_jpeg))
    assert out["per_frame"][1] == m.VIDEO_PSNR_CAP_DB  # an exact frame counts 100 dB
    assert out["psnr"] == pytest.approx(np.mean(out["per_frame"])) and math.isfinite(out["psnr"])
    assert out["per_frame"][2] == pytest.approx(48.1308036, abs=1e-6)
    lossy = m.video_psnr(ref[[0, 2]], dec[[0, 2]])
    assert lossy["psnr"] == pytest.approx(np.mean(out["per_frame"][[0, 2]]))
    assert lossy["psnr_y"] == pytest.approx(np.mean(out["per_frame_y"][[0, 2]]))
    assert m.video_psnr(Video(ref, 25), Video(dec, 25))["per_frame"][2] == out["per_frame"][2]
    assert m.video_bpp(3 * 12288, ref) == pytest.approx(1.0)
    assert m.video_kbps(1000, ref, fps=3) == pytest.approx(8.0)   # 3 frames at 3 fps = 1 s
    with pytest.raises(MediaError):
        m.video_psnr(ref, dec[:2])
