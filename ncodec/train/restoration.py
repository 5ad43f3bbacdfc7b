"""Training pieces of the restoration network (`ncodec.models.image.restoration`): photos coded by the
`wavelet` quantizer at many steps (the decoded images it learns to restore), paired random crops, and
validation on whole images.

``scripts/train_restoration.py`` is the command line over this module.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..codecs.image import learned_wavelet as lw
from ..codecs.image import wavelet_lossy as wl
from ..media.types import Image
from ..models.image.restoration import RestorationNet, step_feature

__all__ = ["CodedImage", "code_images", "paired_crops", "psnr", "validate"]

#: Base steps the training pairs are coded at: 2^1.5 .. 2^7 (about 0.05-3 bpp on photos).
DEFAULT_STEPS = tuple(float(2 ** (e / 2)) for e in range(3, 15))


@dataclass
class CodedImage:
    """A photo, what `wavelet` decodes it to at base ``step``, and that step."""

    original: np.ndarray
    decoded: np.ndarray
    step: float


def _code_one(job: tuple[np.ndarray, Sequence[float]]) -> list[CodedImage]:
    pixels, steps = job
    torch.set_num_threads(1)
    codec = wl.WaveletCodec()
    bands = codec._bands(Image(pixels, 8))
    return [CodedImage(pixels, wl.decoded_pixels(wl.quantize_image(bands, s, pixels.shape[2]), s), s) for s in steps]


def code_images(images: Sequence[np.ndarray], steps: Sequence[float] = DEFAULT_STEPS,
                workers: int = 1) -> list[CodedImage]:
    """Every image quantized and reconstructed as the `wavelet` decoder would, at each base step (no entropy
    coding: the decoded pixels do not depend on it), in ``workers`` processes."""
    jobs = [(img, tuple(steps)) for img in images]
    if workers <= 1:
        return [c for job in jobs for c in _code_one(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [c for coded in pool.map(_code_one, jobs) for c in coded]


def paired_crops(coded: Sequence[CodedImage], batch: int, size: int, gen: np.random.Generator,
                 align: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoded, original) crops in [0, 1], ``[B, 3, S, S]``, and each crop's `step_feature`: a random
    coded image and a place on an ``align`` grid (the network's own), the same flips for both."""
    dec, org, feat = [], [], []
    for _ in range(batch):
        c = coded[gen.integers(len(coded))]
        h, w = c.original.shape[:2]
        y = int(gen.integers((h - size) // align + 1)) * align
        x = int(gen.integers((w - size) // align + 1)) * align
        a, b = c.decoded[y:y + size, x:x + size], c.original[y:y + size, x:x + size]
        if gen.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if gen.random() < 0.5:
            a, b = a[::-1], b[::-1]
        dec.append(a)
        org.append(b)
        feat.append(float(step_feature(c.step)))

    def tensor(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays).copy()).permute(0, 3, 1, 2).float() / 255

    return tensor(dec), tensor(org), torch.tensor(feat)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255 ** 2 / max(mse, 1e-12))


def restore(net: RestorationNet, decoded: np.ndarray, step: float) -> np.ndarray:
    """The network's output for a whole decoded uint8 image at strength 1, as the `learned-wavelet` decoder
    computes it (rounded to uint8)."""
    return lw.apply(decoded, lw.correction(net, decoded, step), lw.STRENGTH_UNITS)


def validate(net: RestorationNet, coded: Sequence[CodedImage]) -> dict[str, float]:
    """Mean PSNR gain (dB) of the restored over the decoded images, per step and overall."""
    net.eval()
    gains: dict[float, list[float]] = {}
    for c in coded:
        gains.setdefault(c.step, []).append(psnr(restore(net, c.decoded, c.step), c.original) -
                                            psnr(c.decoded, c.original))
    net.train()
    out = {f"step {s:g}": float(np.mean(g)) for s, g in sorted(gains.items())}
    out["mean"] = float(np.mean([v for g in gains.values() for v in g]))
    return out
