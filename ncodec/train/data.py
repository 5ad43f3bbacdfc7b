"""Training and benchmarking data from real media: image patches, and vector sets ``[N, D]`` built
from the shared data (``../shared/data``: ``audio/<set>/<split>/*`` and ``images/<split>/*``).

* `image_patches` / `image_from_patches`: non-overlapping ``size x size`` RGB patches and back.
* `mel_frames` / `image_patch_set`: log-mel frames and RGB patches of every file of a set.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..media.formats import media_files
from ..media.io import read_mono
from ..transforms.mel import log_mel

__all__ = ["image_from_patches", "image_patch_set", "image_patches", "mel_frames", "read_mono"]


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
        for path in media_files(Path(root) / "audio" / name, "audio"):
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
    for path in media_files(Path(root) / "images" / split, "image"):
        with Image.open(path) as im:
            patches = image_patches(np.asarray(im.convert("RGB")), size)
        if patches_per_image is not None:
            order = torch.randperm(patches.shape[0], generator=gen)
            patches = patches[order[offset:offset + patches_per_image]]
        out.append(patches)
    if not out:
        raise FileNotFoundError(f"no images under {root}/images/{split}")
    return torch.cat(out)
