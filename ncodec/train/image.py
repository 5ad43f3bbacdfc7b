"""Training pieces of the learned image codecs (`ncodec.models.image`): random crops of a folder of
photos, the rate-distortion loss, and validation through real bitstreams.

``scripts/train_image.py`` is the command line over this module.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from ..media.formats import media_files

__all__ = ["load_images", "random_crops", "rd_loss", "validate"]


def load_images(folder: Path, min_side: int) -> list[np.ndarray]:
    """Every RGB image of a folder as uint8 [H, W, 3] (images smaller than a crop are skipped)."""
    out = []
    for path in media_files(folder, "image"):
        with PILImage.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_side:
            out.append(arr)
    if not out:
        raise SystemExit(f"no images of at least {min_side} px in {folder}")
    return out


def random_crops(images: list[np.ndarray], batch: int, size: int, gen: np.random.Generator) -> torch.Tensor:
    """A batch of random crops (random image, position and horizontal flip), float in [0, 1], [B, 3, S, S]."""
    crops = []
    for _ in range(batch):
        img = images[gen.integers(len(images))]
        y, x = gen.integers(img.shape[0] - size + 1), gen.integers(img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        crops.append(crop[:, ::-1] if gen.random() < 0.5 else crop)
    return torch.from_numpy(np.stack(crops).copy()).permute(0, 3, 1, 2).float() / 255


def rd_loss(model: torch.nn.Module, x: torch.Tensor, lmbda: float) -> tuple[torch.Tensor, float, float]:
    """lambda * 255^2 * MSE + bpp, and the two terms."""
    out = model(x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * pixels)
    mse = torch.mean((out["x_hat"].float() - x) ** 2)
    return lmbda * 255 ** 2 * mse + bpp, float(bpp.detach()), float(mse.detach())


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[np.ndarray], device: torch.device) -> dict[str, float]:
    """bpp from real bitstreams and PSNR on each validation image, averaged."""
    model.eval()
    model.update(force=True)
    bpps, psnrs = [], []
    for img in images:
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
        enc = model.compress(x)
        nbytes = sum(len(s) for strings in enc["strings"] for s in strings)
        dec = model.decompress(enc["strings"], enc["shape"], **({"size": enc["size"]} if "size" in enc else {}))
        x_hat = dec["x_hat"].clamp(0, 1)
        mse = float(torch.mean((x_hat - x) ** 2))
        bpps.append(8 * nbytes / (img.shape[0] * img.shape[1]))
        psnrs.append(10 * math.log10(1 / max(mse, 1e-12)))
    model.train()
    return {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}
