"""Training data and validation of the learned integer lifting transform (`ncodec.models.learned_lifting`):
random crops of colour-transformed planes, and real sizes through the wavelet-lossless context coder.

``scripts/train_lifting.py`` is the command line over this module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from ..codecs.image.subband_coder import encode_subbands
from ..codecs.image.wavelet_lossless import rct_forward
from ..media.formats import media_files
from ..models.learned_lifting import LearnedLifting
from ..transforms import wavelet

__all__ = ["coded_bits", "crops", "load_planes", "validate"]


def load_planes(folder: Path, limit: int | None = None) -> list[list[np.ndarray]]:
    """The RCT planes (int64) of every RGB image in a folder."""
    files = media_files(folder, "image")[:limit]
    return [rct_forward(np.asarray(PILImage.open(p).convert("RGB"))) for p in files]


def crops(planes: list[list[np.ndarray]], batch: int, size: int, gen: np.random.Generator) -> torch.Tensor:
    """[batch, size, size] float crops of random planes of random images."""
    out = []
    for _ in range(batch):
        image = planes[gen.integers(len(planes))]
        plane = image[gen.integers(len(image))]
        y, x = gen.integers(plane.shape[0] - size + 1), gen.integers(plane.shape[1] - size + 1)
        out.append(plane[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out)).float()


def coded_bits(planes: list[np.ndarray], lifting: object, levels: int) -> int:
    """Real size of the planes' subbands through the wavelet-lossless context coder."""
    total = 0
    for plane in planes:
        with torch.no_grad():
            bands = wavelet.forward_2d(torch.from_numpy(np.ascontiguousarray(plane)), levels, lifting)
        total += 8 * len(encode_subbands(bands.low.numpy(), [{k: v.numpy() for k, v in lv.items()}
                                                             for lv in bands.details]))
    return total


def validate(model: LearnedLifting, val: list[list[np.ndarray]], levels: int) -> dict[str, float]:
    """Bits per pixel of the validation images through the real coder, learned lifting against 5/3."""
    model.eval()
    pixels = sum(p[0].size for p in val)
    learned = sum(coded_bits(p, model, levels) for p in val)
    base = sum(coded_bits(p, wavelet.LE_GALL_53, levels) for p in val)
    model.train()
    return {"bpp_learned": learned / pixels, "bpp_53": base / pixels, "ratio": learned / base}
