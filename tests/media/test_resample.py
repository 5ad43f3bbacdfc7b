"""The torch polyphase resampler against scipy.signal.resample_poly, its alias rejection, and streaming."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import torch

from ncodec.media.resample import Resampler, design_filter, ratio, resample, resampled_length

PAIRS = [(44100, 24000), (24000, 48000), (48000, 24000), (16000, 24000), (22050, 24000), (8000, 24000),
         (96000, 24000), (24000, 16000)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _tone(freq: float, rate: int, n: int) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / rate)


@pytest.mark.parametrize("orig,new", PAIRS)
def test_same_filter_gives_resample_poly(orig: int, new: int) -> None:
    """The polyphase machinery is resample_poly's definition: same filter, same samples (length, alignment)."""
    up, down = ratio(orig, new)
    x = np.random.default_rng(0).standard_normal((2, 3001))
    h = ss.firwin(2 * 10 * max(up, down) + 1, 1 / max(up, down), window=("kaiser", 5.0))
    ref = ss.resample_poly(x, up, down, axis=-1, window=h)
    ours = resample(torch.from_numpy(x), orig, new, filter=h).numpy()
    assert ours.shape == ref.shape == (2, resampled_length(3001, orig, new))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("orig,new", [(44100, 24000), (16000, 24000), (48000, 24000), (24000, 16000)])
def test_band_limited_signal_matches_resample_poly(orig: int, new: int) -> None:
    """In the passband the designed filter agrees with a high-quality resample_poly to 0.1%."""
    up, down = ratio(orig, new)
    rng = np.random.default_rng(1)
    b = ss.firwin(801, 0.75 * min(orig, new) / orig)  # noise below 0.75 of the lower Nyquist frequency
    x = ss.lfilter(b, [1], rng.standard_normal(12000))
    ref = ss.resample_poly(x, up, down, window=("kaiser", 10.0))
    ours = resample(torch.from_numpy(x), orig, new).numpy()
    interior = slice(500, -500)
    assert np.abs(ours - ref)[interior].max() < 1e-3 * np.abs(ref).max()


def test_real_speech_matches_resample_poly(samples) -> None:
    import soundfile as sf

    audio, rate = sf.read(str(samples / "speech.flac"), dtype="float64")
    ref = ss.resample_poly(audio, 2, 3, window=("kaiser", 10.0))  # 24 kHz -> 16 kHz
    ours = resample(torch.from_numpy(audio), rate, 16000).numpy()
    assert ours.shape == ref.shape
    # speech has energy up to 12 kHz: only the band the two filters treat alike is compared
    lp = ss.firwin(501, 0.8)
    diff = ss.filtfilt(lp, [1], ours - ref)
    assert np.abs(diff)[1000:-1000].max() < 2e-3 * np.abs(ref).max()


@pytest.mark.parametrize("orig,new", [(44100, 24000), (48000, 24000), (24000, 16000)])
def test_aliases_are_suppressed(orig: int, new: int) -> None:
    """Tones above the new Nyquist frequency come out at least 95 dB down; passband tones are exact."""
    nyquist = new / 2
    for f in (1.02 * nyquist, 1.3 * nyquist, 0.98 * orig / 2):
        y = resample(torch.from_numpy(_tone(f, orig, orig)), orig, new).numpy()[2000:-2000]
        assert 20 * np.log10(np.abs(y).max()) < -95, f
    for f in (100.0, 0.5 * nyquist, 0.85 * nyquist):
        y = resample(torch.from_numpy(_tone(f, orig, orig)), orig, new).numpy()
        expected = np.sin(2 * np.pi * f * np.arange(y.size) / new)
        assert np.abs(y - expected)[2000:-2000].max() < 1e-5, f


def test_upsampling_images_are_suppressed() -> None:
    """24 -> 48 kHz: a 10 kHz tone has no image at 14 kHz."""
    y = resample(torch.from_numpy(_tone(10_000, 24000, 24000)), 24000, 48000).numpy()[4000:-4000]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / 48000)
    peak = spectrum.max()
    image = spectrum[(freqs > 13_000) & (freqs < 15_000)].max()
    assert 20 * np.log10(image / peak) < -95


@pytest.mark.parametrize("orig,new", [(44100, 24000), (24000, 48000), (8000, 24000), (24000, 24000)])
def test_streaming_equals_whole(orig: int, new: int) -> None:
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 1, 7001))).float()
    whole = resample(x, orig, new)
    r = Resampler(orig, new)
    parts, start = [], 0
    for n in (1, 0, 7, 1000, 333, 2, 2000, 3658):
        parts.append(r.process(x[..., start:start + n], final=start + n >= x.shape[-1]))
        start += n
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == whole.shape == (2, 1, resampled_length(7001, orig, new))
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-6)  # float32 sums in other blocks
    # the resampler resets after final: a second signal comes out alike
    torch.testing.assert_close(r.process(x, final=True), whole, rtol=0, atol=0)


def test_shapes_dtypes_and_identity() -> None:
    x = torch.randn(3, 100)
    assert resample(x, 16000, 16000) is x
    assert resample(x.double(), 16000, 8000).dtype == torch.float64
    assert resample(torch.ones(100, dtype=torch.int16), 16000, 8000).dtype == torch.float32
    y = resample(torch.ones(4000), 16000, 24000)
    assert y.shape == (6000,)
    assert torch.allclose(y[500:-500], torch.ones(5000), atol=1e-6)  # unit DC gain in every phase


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        ratio(0, 24000)
    with pytest.raises(ValueError, match="more than"):
        design_filter(9_999_991, 24_000)
    with pytest.raises(ValueError, match="odd"):
        Resampler(16000, 24000, filter=np.ones(10))
    with pytest.raises(ValueError, match="shape changed"):
        r = Resampler(16000, 24000)
        r.process(torch.zeros(2, 100))
        r.process(torch.zeros(3, 100))
