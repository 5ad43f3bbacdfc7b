"""Evaluation metrics for images, audio and video (numpy in, float out; torch does the work).

Inputs may be ncodec media objects, numpy arrays, or torch tensors; tensors are computed on
their own device (CPU or GPU), everything else on the CPU. Every metric returns a Python
``float`` (``video_psnr`` a dict), and raises `ncodec.errors.MediaError` for inputs it cannot
compare (wrong dtype, shape, channel count, sample rate).

Images (``Image``, or uint8 / uint16 arrays ``[H, W]`` / ``[H, W, C]``)
    The peak value is ``2 ** bit_depth - 1``: an `Image`'s ``bit_depth``, else 8 for uint8 and
    16 for uint16 (pass an `Image` for 10- or 12-bit content in uint16). Both images must
    have the same shape and peak.

    * `psnr`: ``10 log10(peak^2 / MSE)`` with the MSE over all pixels and all channels (alpha
      included); ``inf`` when the images are equal.
    * `psnr_y`: PSNR of BT.601 luma in full-range JFIF form, ``Y = 0.299 R + 0.587 G + 0.114 B``
      on ``0..peak``, kept unrounded (no 16..235 studio range, no rounding to integers).
      One-channel (gray) images are used as they are; alpha is ignored.
    * `ms_ssim`: multi-scale SSIM (Wang, Simoncelli & Bovik 2003) as in the reference
      implementation and ``pytorch_msssim``: an 11x11 Gaussian window (sigma 1.5, applied
      separably, "valid" borders), ``K1 = 0.01``, ``K2 = 0.03``, data range = peak, 5 scales
      weighted ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]``, 2x2 average pooling between scales
      (an odd last row / column is dropped), contrast-structure terms and the final SSIM
      clamped at 0 (as ``pytorch_msssim``), computed per channel and averaged over channels.
      Five scales need a smaller side of at least 176 px (the coarsest scale must still fit
      the 11-px window). Smaller images use as many scales as fit (the first n weights,
      renormalised to sum to 1); below 11 px a single scale with the Gaussian window cut to
      the largest odd size that fits. ``ms_ssim_db`` is ``-10 log10(1 - ms_ssim)``.
    * `bpp`: ``8 * nbytes / (H * W)``.

Audio (``Audio``, or float arrays ``[frames]`` / ``[frames, channels]`` in [-1, 1])
    Integer PCM is scaled to [-1, 1) by ``2 ** (bit_depth - 1)`` (an `Audio`'s ``bit_depth``;
    for bare arrays int16 -> 2^15, int32 -> 2^31). The sample rate comes from ``sample_rate``
    or from `Audio` objects (they must agree). Reference and estimate must have the same
    channel count; a length mismatch (a codec's padding or delay trimming) is resolved by
    cropping both to the shorter one, from the start.

    * `si_sdr`: scale-invariant SDR (Le Roux et al. 2019, "SDR - half-baked or well done?"):
      per channel, both signals zero-mean, ``alpha = <est, ref> / |ref|^2``,
      ``10 log10(|alpha ref|^2 / |alpha ref - est|^2)`` in dB, float64, averaged over
      channels; ``inf`` for a scaled copy that is exact. Channels whose reference is digital
      silence are left out of the mean (NaN if all are).
    * `mel_distance`: DAC's multi-scale mel loss (Kumar et al. 2023, "High-Fidelity Audio
      Compression with Improved RVQGAN"; ``MelSpectrogramLoss`` as configured in DAC's
      ``conf/base.yml``): window lengths 32 .. 2048 with 5 .. 320 mel bands, hop = window / 4,
      periodic Hann window, ``torch.stft`` centred with reflect padding, the *magnitude*
      (``pow = 1``) STFT, a Slaney mel filterbank (librosa's default, 0 Hz .. Nyquist), then the
      mean absolute difference of ``log10(clamp(mel, 1e-5))`` over channels, bands and
      frames, summed over the scales as DAC reports it (``reduction="mean"`` divides by 7).
      float32, as DAC.
    * `stft_distance`: DAC's ``MultiScaleSTFTLoss`` with its defaults: window lengths
      [2048, 512], hop = window / 4, per scale ``L1(log10(clamp(|S|, 1e-5)^2))`` plus
      ``L1(|S|)``, summed over the scales as in DAC (``reduction="mean"`` averages them).
    * Signals shorter than half a window are zero-padded at the end (both alike) so the
      reflect padding of the centred STFT is defined.
    * `stoi`: short-time objective intelligibility (Taal et al. 2011) via the optional
      ``pystoi`` package, per channel, averaged; ``extended=True`` gives ESTOI.
    * `kbps`: ``8 * nbytes / 1000 / seconds``.

Video (``Video``, or uint8 arrays ``[T, H, W, 3]``)
    * `video_psnr`: per-frame RGB PSNR and BT.601 luma PSNR (as `psnr` / `psnr_y`, peak 255) and
      their arithmetic means over frames (the usual codec-comparison convention, not the PSNR
      of the mean MSE); a lossless frame is ``inf`` and so makes its mean ``inf``. Shapes must
      match exactly (no cropping of frames).
    * `video_bpp`: ``8 * nbytes / (T * H * W)``; `video_kbps`: ``8 * nbytes / 1000 / (T / fps)``.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import MediaError
from ..transforms.mel import mel_filterbank
from ..media.types import Audio, Image, Video

__all__ = [
    "DAC_MEL_BANDS", "DAC_MEL_WINDOWS", "DAC_STFT_WINDOWS", "MS_SSIM_WEIGHTS",
    "ImageReference", "bpp", "kbps", "mel_distance", "ms_ssim", "ms_ssim_db", "psnr", "psnr_y", "si_sdr",
    "stft_distance", "stoi", "video_bpp", "video_kbps", "video_psnr",
]

ImageLike = Image | np.ndarray | Tensor
AudioLike = Audio | np.ndarray | Tensor
VideoLike = Video | np.ndarray
Reduction = Literal["mean", "sum"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
DAC_MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)
DAC_STFT_WINDOWS = (2048, 512)
DAC_CLAMP = 1e-5
BT601_LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------ images
def _image(x: ImageLike) -> tuple[Tensor, int]:
    """``(pixels float64 [H, W, C] on x's device, bit depth)`` of an image-like input."""
    if isinstance(x, Image):
        px, depth = x.pixels, x.bit_depth
    else:
        px = x if isinstance(x, Tensor) else np.asarray(x)
        if px.ndim == 2:
            px = px[:, :, None]
        name = str(px.dtype).replace("torch.", "")
        if name in ("uint8", "uint16"):
            depth = 8 if name == "uint8" else 16
        else:
            raise MediaError(f"image pixels must be uint8 or uint16 (or an Image), got {px.dtype}")
    if not isinstance(px, Tensor):  # numpy -> float64 first: torch's uint16 support is partial
        px = torch.from_numpy(px.astype(np.float64))
    if px.ndim != 3 or px.shape[2] not in (1, 2, 3, 4) or px.shape[0] < 1 or px.shape[1] < 1:
        raise MediaError(f"an image must be [H, W] or [H, W, C] with C <= 4, got shape {tuple(px.shape)}")
    dtype = torch.float32 if px.device.type == "mps" else torch.float64
    return px.to(dtype), int(depth)


def _psnr_from_mse(mse: float, peak: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _luma(px: Tensor) -> Tensor:
    """BT.601 full-range luma ``[H, W]`` of ``[H, W, C]`` (C = 1 or 2: gray (+ alpha), as is)."""
    if px.shape[-1] < 3:
        return px[..., 0]
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    return BT601_LUMA[0] * r + BT601_LUMA[1] * g + BT601_LUMA[2] * b


def psnr(a: ImageLike, b: ImageLike) -> float:
    """PSNR in dB over all pixels and channels (peak from the bit depth; inf when equal)."""
    return ImageReference(a).psnr(b)


def psnr_y(a: ImageLike, b: ImageLike) -> float:
    """PSNR in dB of BT.601 full-range luma (0.299 R + 0.587 G + 0.114 B, unrounded; gray as is)."""
    return ImageReference(a).psnr_y(b)


@functools.lru_cache(maxsize=8)
def _gaussian_cpu(size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-coords.square() / (2 * sigma * sigma))
    return g / g.sum()


def _blur(t: Tensor, taps: list[float]) -> Tensor:
    """Separable valid-window Gaussian blur of the last two dimensions, as weighted sums of shifted views:
    float64 convolutions take torch's slow path (no oneDNN kernel); this is ~2x faster on CPU, same numbers."""
    size = len(taps)
    h, w = t.shape[-2] - size + 1, t.shape[-1] - size + 1
    rows = t[..., 0:h, :] * taps[0]
    for k in range(1, size):
        rows = rows.add_(t[..., k:k + h, :], alpha=taps[k])
    out = rows[..., 0:w] * taps[0]
    for k in range(1, size):
        out = out.add_(rows[..., k:k + w], alpha=taps[k])
    return out


class ImageReference:
    """One reference image, prepared once for scoring many decoded versions of it (the eval harness's
    operating points): its float pixels, its luma, and its MS-SSIM pyramid with the blurred mean and
    variance of each scale, so that a score blurs 3 images per scale instead of 5. `psnr`, `psnr_y`
    and `ms_ssim` of a pair are this class's scores of a fresh reference: the same numbers."""

    def __init__(self, reference: ImageLike):
        x, depth = _image(reference)
        self.pixels, self.shape, self.depth = x, tuple(x.shape), depth
        self.peak = float(2 ** depth - 1)
        self._luma: Tensor | None = None
        self._levels: list[tuple[Tensor, Tensor, Tensor]] | None = None

    def _decoded(self, decoded: ImageLike) -> Tensor:
        y, depth = _image(decoded)
        if tuple(y.shape) != self.shape:
            raise MediaError(f"images differ in shape: {self.shape} vs {tuple(y.shape)}")
        if depth != self.depth:
            raise MediaError(f"images differ in bit depth: {self.depth} vs {depth}")
        return y.to(self.pixels.device)

    def scores(self, decoded: ImageLike) -> dict[str, float]:
        """``psnr``, ``psnr_y`` and ``ms_ssim`` of ``decoded`` (converted once)."""
        y = self._decoded(decoded)
        return {"psnr": self._psnr(y), "psnr_y": self._psnr_y(y), "ms_ssim": self._ms_ssim(y)}

    def psnr(self, decoded: ImageLike) -> float:
        return self._psnr(self._decoded(decoded))

    def psnr_y(self, decoded: ImageLike) -> float:
        return self._psnr_y(self._decoded(decoded))

    def ms_ssim(self, decoded: ImageLike) -> float:
        return self._ms_ssim(self._decoded(decoded))

    def _psnr(self, y: Tensor) -> float:
        return _psnr_from_mse(float((self.pixels - y).square().mean()), self.peak)

    def _psnr_y(self, y: Tensor) -> float:
        if self._luma is None:
            self._luma = _luma(self.pixels)
        return _psnr_from_mse(float((self._luma - _luma(y)).square().mean()), self.peak)

    def _pyramid(self) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per scale: the reference, its blurred mean and the variance of its window."""
        if self._levels is None:
            x = self.pixels.permute(2, 0, 1)[None]
            side = min(x.shape[-2:])
            if side < SSIM_WINDOW:
                size = side if side % 2 else side - 1
                scales = 1
            else:
                size, scales, s = SSIM_WINDOW, 1, side // 2
                while scales < len(MS_SSIM_WEIGHTS) and s >= SSIM_WINDOW:
                    scales, s = scales + 1, s // 2
            self.taps = [float(w) for w in _gaussian_cpu(size, SSIM_SIGMA)]
            weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
            self.weights = weights / weights.sum()
            self.c1, self.c2 = (SSIM_K1 * self.peak) ** 2, (SSIM_K2 * self.peak) ** 2
            self._levels = []
            for level in range(scales):
                both = _blur(torch.stack([x, x * x]), self.taps)
                mu = both[0]
                self._levels.append((x, mu, both[1] - mu.square()))
                if level < scales - 1:
                    x = _halve(x)
        return self._levels

    def _ms_ssim(self, y: Tensor) -> float:
        levels = self._pyramid()
        y = y.to(levels[0][0].dtype).permute(2, 0, 1)[None]
        terms = []
        for level, (x, mu_x, var_x) in enumerate(levels):
            moments = torch.empty((3, *y.shape), dtype=y.dtype, device=y.device)
            moments[0].copy_(y)
            torch.mul(y, y, out=moments[1])
            torch.mul(x, y, out=moments[2])
            blurred = _blur(moments, self.taps)
            mu_y = blurred[0]
            var_y = blurred[1] - mu_y.square()
            cov = blurred[2] - mu_x * mu_y
            cs = (2 * cov + self.c2) / (var_x + var_y + self.c2)
            if level < len(levels) - 1:
                terms.append(cs.mean(dim=(-2, -1))[0].clamp_min(0))
                y = _halve(y)
            else:
                luminance = (2 * mu_x * mu_y + self.c1) / (mu_x.square() + mu_y.square() + self.c1)
                terms.append((luminance * cs).mean(dim=(-2, -1))[0].clamp_min(0))
        per_channel = torch.prod(torch.stack(terms) ** self.weights[:, None], dim=0)
        return float(per_channel.mean())


def _halve(x: Tensor) -> Tensor:
    """2x2 average pooling of the even-sized top-left part (the MS-SSIM pyramid step)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return F.avg_pool2d(x[..., :h, :w], 2)


def ms_ssim(a: ImageLike, b: ImageLike) -> float:
    """Multi-scale SSIM in [0, 1] (Wang et al. 2003; fewer scales below 176 px, see the module doc)."""
    return ImageReference(a).ms_ssim(b)


def ms_ssim_db(a: ImageLike, b: ImageLike) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - ms_ssim)`` (inf when equal)."""
    value = ms_ssim(a, b)
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def _pixels(image: Any) -> int:
    if isinstance(image, Image):
        return image.num_pixels
    shape = tuple(image.shape)
    if len(shape) not in (2, 3) or shape[0] < 1 or shape[1] < 1:
        raise MediaError(f"an image must be [H, W] or [H, W, C], got shape {shape}")
    return int(shape[0]) * int(shape[1])


def bpp(nbytes: int, image: ImageLike) -> float:
    """Bits per pixel: ``8 * nbytes / (H * W)``."""
    return 8.0 * nbytes / _pixels(image)


# ------------------------------------------------------------------ audio
def _audio(x: AudioLike, sample_rate: int | None) -> tuple[Tensor, int | None]:
    """``(samples float64 [channels, frames] in [-1, 1], sample rate or None)``."""
    if isinstance(x, Audio):
        if sample_rate is not None and int(sample_rate) != x.sample_rate:
            raise MediaError(f"audio is at {x.sample_rate} Hz but sample_rate={sample_rate} was given")
        s = torch.from_numpy(x.samples)
        scale = float(2 ** (x.bit_depth - 1)) if x.is_integer else 1.0
        rate: int | None = x.sample_rate
    else:
        s = x if isinstance(x, Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[1] < 1:
            raise MediaError(f"audio must be [frames] or [frames, channels], got shape {tuple(s.shape)}")
        if s.dtype.is_floating_point:
            scale = 1.0
        elif s.dtype == torch.int16:
            scale = 32768.0
        elif s.dtype == torch.int32:
            scale = 2.0 ** 31
        else:
            raise MediaError(f"audio samples must be float, int16 or int32, got {s.dtype}")
        rate = None if sample_rate is None else int(sample_rate)
    dtype = torch.float32 if s.device.type == "mps" else torch.float64
    return s.to(dtype).T / scale, rate


def _audio_pair(ref: AudioLike, est: AudioLike, sample_rate: int | None = None,
                need_rate: bool = False) -> tuple[Tensor, Tensor, int | None]:
    """Both signals ``[C, T]`` on one device, cropped to the shorter, and the common sample rate."""
    r, rate_r = _audio(ref, sample_rate)
    e, rate_e = _audio(est, sample_rate)
    if rate_r is not None and rate_e is not None and rate_r != rate_e:
        raise MediaError(f"reference is at {rate_r} Hz, estimate at {rate_e} Hz")
    rate = rate_r if rate_r is not None else rate_e
    if need_rate and rate is None:
        raise MediaError("give sample_rate (or Audio objects) for this metric")
    if r.shape[0] != e.shape[0]:
        raise MediaError(f"reference has {r.shape[0]} channels, estimate {e.shape[0]}")
    n = min(r.shape[1], e.shape[1])
    if n == 0:
        raise MediaError("cannot compare empty audio")
    return r[:, :n], e[:, :n].to(r.device), rate


def si_sdr(ref: AudioLike, est: AudioLike) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, averaged over channels."""
    r, e, _ = _audio_pair(ref, est)
    r = r - r.mean(dim=1, keepdim=True)
    e = e - e.mean(dim=1, keepdim=True)
    values = []
    for rc, ec in zip(r, e):
        energy = float(rc.square().sum())
        if energy == 0.0:
            continue
        target = (float((ec * rc).sum()) / energy) * rc
        signal, noise = float(target.square().sum()), float((ec - target).square().sum())
        if noise == 0.0:
            values.append(math.inf)
        elif signal == 0.0:
            values.append(-math.inf)
        else:
            values.append(10.0 * math.log10(signal / noise))
    return float(np.mean(values)) if values else math.nan


def _magnitudes(x: Tensor, window: int) -> Tensor:
    """``|STFT|`` ``[C, window // 2 + 1, frames]``: periodic Hann, hop window / 4, centred, reflect-padded."""
    if x.shape[-1] <= window // 2:
        x = F.pad(x, (0, window // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, window, hop_length=window // 4, window=torch.hann_window(window, device=x.device, dtype=x.dtype),
                      center=True, pad_mode="reflect", return_complex=True)
    return spec.abs()


def _reduce(per_scale: list[float], reduction: Reduction) -> float:
    if reduction == "mean":
        return float(np.mean(per_scale))
    if reduction == "sum":
        return float(np.sum(per_scale))
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def mel_distance(ref: AudioLike, est: AudioLike, sample_rate: int | None = None,
                 window_lengths: Sequence[int] = DAC_MEL_WINDOWS, n_mels: Sequence[int] = DAC_MEL_BANDS,
                 reduction: Reduction = "sum") -> float:
    """DAC's multi-scale log10-mel L1 distance (magnitude STFT, Slaney mel), averaged over scales."""
    if len(window_lengths) != len(n_mels) or not window_lengths:
        raise ValueError("window_lengths and n_mels must be non-empty and of equal length")
    r, e, rate = _audio_pair(ref, est, sample_rate, need_rate=True)
    assert rate is not None
    r, e = r.float(), e.float()
    per_scale = []
    for window, bands in zip(window_lengths, n_mels):
        fb = mel_filterbank(rate, int(window), int(bands)).to(r.device)
        mel_r = (fb @ _magnitudes(r, int(window))).clamp_min(DAC_CLAMP).log10()
        mel_e = (fb @ _magnitudes(e, int(window))).clamp_min(DAC_CLAMP).log10()
        per_scale.append(float((mel_r - mel_e).abs().mean()))
    return _reduce(per_scale, reduction)


def stft_distance(ref: AudioLike, est: AudioLike, sample_rate: int | None = None,
                  window_lengths: Sequence[int] = DAC_STFT_WINDOWS, reduction: Reduction = "sum") -> float:
    """DAC's multi-scale STFT distance: L1 of log10(|S|^2) plus L1 of |S|, averaged over scales."""
    if not window_lengths:
        raise ValueError("window_lengths must not be empty")
    r, e, _ = _audio_pair(ref, est, sample_rate)
    r, e = r.float(), e.float()
    per_scale = []
    for window in window_lengths:
        mag_r, mag_e = _magnitudes(r, int(window)), _magnitudes(e, int(window))
        log_term = (mag_r.clamp_min(DAC_CLAMP).square().log10() - mag_e.clamp_min(DAC_CLAMP).square().log10()).abs().mean()
        per_scale.append(float(log_term) + float((mag_r - mag_e).abs().mean()))
    return _reduce(per_scale, reduction)


def stoi(ref: AudioLike, est: AudioLike, sample_rate: int | None = None, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``) via the optional ``pystoi`` package, averaged over channels."""
    try:
        from pystoi import stoi as _pystoi
    except ImportError:
        raise MediaError("stoi needs the optional 'pystoi' package: pip install pystoi") from None
    r, e, rate = _audio_pair(ref, est, sample_rate, need_rate=True)
    r, e = r.cpu().double().numpy(), e.cpu().double().numpy()
    return float(np.mean([_pystoi(rc, ec, rate, extended=extended) for rc, ec in zip(r, e)]))


def kbps(nbytes: int, seconds: float) -> float:
    """Kilobits (1000 bits) per second: ``8 * nbytes / 1000 / seconds``."""
    if not seconds > 0:
        raise MediaError(f"duration must be positive, got {seconds}")
    return 8.0 * nbytes / 1000.0 / seconds


# ------------------------------------------------------------------ video
def _frames(x: VideoLike) -> np.ndarray:
    f = x.frames if isinstance(x, Video) else np.asarray(x)
    if f.ndim != 4 or f.shape[3] != 3 or min(f.shape[:3]) < 1:
        raise MediaError(f"video frames must be [T, H, W, 3], got shape {f.shape}")
    if f.dtype != np.uint8:
        raise MediaError(f"video frames must be uint8, got {f.dtype}")
    return f


VIDEO_PSNR_CAP_DB = 100.0  # a frame decoded exactly (a black frame, say) counts 100 dB, not inf, in the mean


def video_psnr(ref: VideoLike, dec: VideoLike) -> dict[str, Any]:
    """Per-frame RGB and Y PSNR (``per_frame``, ``per_frame_y``, each capped at 100 dB so exact
    frames do not make the mean infinite) and their means (``psnr``, ``psnr_y``)."""
    r, d = _frames(ref), _frames(dec)
    if r.shape != d.shape:
        raise MediaError(f"videos differ in shape: {r.shape} vs {d.shape}")
    rgb, luma = np.empty(r.shape[0]), np.empty(r.shape[0])
    weights = np.asarray(BT601_LUMA)
    for t in range(r.shape[0]):
        diff = r[t].astype(np.float64) - d[t]
        rgb[t] = min(_psnr_from_mse(float(np.mean(diff * diff)), 255.0), VIDEO_PSNR_CAP_DB)
        y = diff @ weights
        luma[t] = min(_psnr_from_mse(float(np.mean(y * y)), 255.0), VIDEO_PSNR_CAP_DB)
    return {"psnr": float(np.mean(rgb)), "psnr_y": float(np.mean(luma)), "per_frame": rgb, "per_frame_y": luma}


def video_bpp(nbytes: int, frames: VideoLike) -> float:
    """Bits per pixel over all frames: ``8 * nbytes / (T * H * W)``."""
    f = _frames(frames)
    return 8.0 * nbytes / (f.shape[0] * f.shape[1] * f.shape[2])


def video_kbps(nbytes: int, frames: VideoLike, fps: float) -> float:
    """Kilobits per second at ``fps``: ``8 * nbytes / 1000 / (T / fps)``."""
    if not fps > 0:
        raise MediaError(f"frame rate must be positive, got {fps}")
    return kbps(nbytes, _frames(frames).shape[0] / float(fps))
