"""Feature extraction for training and benchmarking quantizers on real media, without torchaudio.

* `log_mel`: log-power mel spectrogram (Hann-windowed `torch.stft`, Slaney mel filterbank).
* `resample`: `ncodec.resample.resample` under the name the feature code uses.
* `image_patches` / `image_from_patches`: non-overlapping ``size x size`` RGB patches and back.
* `mel_frames` / `image_patch_set`: vector data sets ``[N, D]`` built from the shared data
  (``../shared/data``: ``audio/<set>/<split>/*`` and ``images/<split>/*``).

Resampling is `ncodec.resample` (one resampler in the library; its docstring gives its quality).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .resample import resample as _resample

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".opus", ".aiff", ".aif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# ------------------------------------------------------------------ mel scale (Slaney)
_F_SP = 200.0 / 3.0                       # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0                      # the scale turns logarithmic above 1 kHz
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP        # = 15 mel
_LOG_STEP = math.log(6.4) / 27.0          # log-part step: 27 mel per factor 6.4 in frequency


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox, librosa's default): linear to 1 kHz, logarithmic above."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    log_part = _MIN_LOG_MEL + torch.log(hz.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of `hz_to_mel`."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    log_part = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel.clamp_min(_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def mel_band_edges(n_mels: int, f_min: float, f_max: float) -> Tensor:
    """The ``n_mels + 2`` band edges in Hz, equally spaced in mel; band i peaks at edge i + 1."""
    lo, hi = hz_to_mel(torch.tensor(float(f_min))), hz_to_mel(torch.tensor(float(f_max)))
    return mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int = 1024, n_mels: int = 64, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """Triangular Slaney filterbank ``[n_mels, n_fft // 2 + 1]`` (float32; cached, do not modify it).

    Each triangle rises from band edge i to i + 1 and falls to i + 2, and is scaled by
    ``2 / (edge[i+2] - edge[i])`` (Slaney area normalisation), as librosa's default.
    """
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    edges = mel_band_edges(n_mels, f_min, f_max)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    return (weights * (2.0 / (upper - lower))).float()


def _mono(samples: Tensor) -> Tensor:
    """``[T]`` or ``[C, T]`` -> ``[T]`` (channel mean)."""
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(dim=0)
    raise ValueError(f"audio must be [T] or [C, T], got shape {tuple(samples.shape)}")


def log_mel(samples: Tensor, sample_rate: int, n_mels: int = 64, n_fft: int = 1024, hop: int = 256,
            f_min: float = 0.0, f_max: float | None = None, floor: float = 1e-10) -> Tensor:
    """Natural-log mel power spectrogram ``[n_mels, frames]`` of ``[T]`` or ``[C, T]`` audio.

    Channels are averaged first. Frames are centred (reflect padding), so there are
    ``T // hop + 1`` of them. The periodic Hann window is unnormalised (a unit sine's STFT
    magnitude peaks at ``n_fft / 4``). ``floor`` bounds the mel power from below, so digital
    silence maps to ``log(floor)`` rather than -inf.
    """
    x = _mono(torch.as_tensor(samples)).float()
    if x.shape[-1] <= n_fft // 2:  # reflect padding needs more than n_fft / 2 samples
        x = F.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, n_fft, hop_length=hop, window=torch.hann_window(n_fft, device=x.device),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    mel = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).to(x.device) @ power
    return mel.clamp_min(floor).log()


# ------------------------------------------------------------------ resampling
def resample(x: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample ``x [..., T]`` from ``orig_sr`` to ``new_sr`` Hz: `ncodec.resample.resample`
    (polyphase Kaiser-windowed sinc, no delay, ``ceil(T * new / orig)`` samples)."""
    return _resample(torch.as_tensor(x), int(orig_sr), int(new_sr))


def image_patches(pixels: np.ndarray | Tensor, size: int = 8) -> Tensor:
    """Non-overlapping ``size x size`` patches of ``uint8 [H, W, C]`` pixels: float ``[N, size*size*C]`` in [0, 1].

    Patches run in raster order; each flattens as (row, column, channel). Edge rows and
    columns that do not fill a whole patch are dropped.
    """
    px = pixels if isinstance(pixels, Tensor) else torch.from_numpy(np.array(pixels))
    if px.ndim == 2:
        px = px[:, :, None]
    if px.ndim != 3 or px.dtype != torch.uint8:
        raise ValueError(f"pixels must be uint8 [H, W, C], got {px.dtype} {tuple(px.shape)}")
    h, w, c = px.shape[0] // size, px.shape[1] // size, px.shape[2]
    blocks = px[:h * size, :w * size].reshape(h, size, w, size, c).permute(0, 2, 1, 3, 4)
    return blocks.reshape(h * w, size * size * c).float() / 255.0


def image_from_patches(patches: Tensor, height: int, width: int, size: int = 8, channels: int = 3) -> Tensor:
    """Inverse of `image_patches`: ``[N, size*size*C]`` in [0, 1] -> uint8 ``[H', W', C]``.

    ``height`` and ``width`` are the source image's; the result covers its whole patches only.
    """
    h, w = height // size, width // size
    if patches.shape != (h * w, size * size * channels):
        raise ValueError(f"expected {h * w} patches of {size * size * channels}, got {tuple(patches.shape)}")
    blocks = patches.reshape(h, w, size, size, channels).permute(0, 2, 1, 3, 4)
    img = blocks.reshape(h * size, w * size, channels)
    return (img.clamp(0, 1) * 255.0).round().to(torch.uint8)


# ------------------------------------------------------------------ data sets
def _files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no data folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions)


def read_mono(path: str | Path, seconds: float | None = None, sample_rate: int | None = None,
              offset: float = 0.0) -> tuple[Tensor, int]:
    """``seconds`` of an audio file from ``offset`` on, as mono float32 ``[T]``, resampled to ``sample_rate``."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        start = min(round(offset * rate), f.frames)
        f.seek(start)
        frames = -1 if seconds is None else round(seconds * rate)
        data = f.read(frames=frames, dtype="float32", always_2d=True)
    mono = torch.from_numpy(data @ np.full(data.shape[1], 1 / data.shape[1], np.float32))  # channel mean, fast
    if sample_rate is None or sample_rate == rate:
        return mono, rate
    return (resample(mono, rate, sample_rate) if mono.numel() else mono), sample_rate


def mel_frames(root: str | Path, sets: Sequence[str] = ("speech/train", "music/train"),
               seconds_per_file: float | None = 20.0, sample_rate: int = 24000, n_mels: int = 64,
               n_fft: int = 1024, hop: int = 256, offset_seconds: float = 0.0) -> Tensor:
    """Log-mel frames ``[N, n_mels]`` of every file in ``root/audio/<set>``.

    Each file is read (``seconds_per_file`` seconds from ``offset_seconds`` on; None for the
    rest), mixed to mono, resampled to ``sample_rate`` and analysed with `log_mel`; frames
    of all files are concatenated in file order. Files shorter than the offset add nothing.
    """
    out = []
    for name in sets:
        for path in _files(Path(root) / "audio" / name, AUDIO_EXTENSIONS):
            mono, rate = read_mono(path, seconds_per_file, sample_rate, offset_seconds)
            if mono.numel() >= n_fft:
                out.append(log_mel(mono, rate, n_mels=n_mels, n_fft=n_fft, hop=hop).T)
    if not out:
        raise FileNotFoundError(f"no audio under {root}/audio/{{{','.join(sets)}}}")
    return torch.cat(out)


def image_patch_set(root: str | Path, split: str = "train", size: int = 8, patches_per_image: int | None = 2048,
                    seed: int = 0, offset: int = 0) -> Tensor:
    """RGB patches ``[N, size*size*3]`` in [0, 1] of every image in ``root/images/<split>``.

    With ``patches_per_image``, each image contributes that many patches from a seeded
    random order of its patches, starting at position ``offset`` (so two calls with
    different offsets give disjoint patches), so large photos do not dominate.
    """
    from PIL import Image

    gen = torch.Generator().manual_seed(seed)
    out = []
    for path in _files(Path(root) / "images" / split, IMAGE_EXTENSIONS):
        with Image.open(path) as im:
            patches = image_patches(np.asarray(im.convert("RGB")), size)
        if patches_per_image is not None:
            order = torch.randperm(patches.shape[0], generator=gen)
            patches = patches[order[offset:offset + patches_per_image]]
        out.append(patches)
    if not out:
        raise FileNotFoundError(f"no images under {root}/images/{split}")
    return torch.cat(out)
