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

__all__ = ["load_images", "random_crops", "rd_loss", "rescaled", "validate"]


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


def rescaled(images: list[np.ndarray], scales: tuple[float, ...], min_side: int) -> list[np.ndarray]:
    """The images at each of ``scales`` (Lanczos downscaling; 1.0 keeps them), those still ``min_side`` or larger.

    Augmentation for a thin training set: a downscaled photo shows its content at other
    frequencies (finer detail per pixel), as photos of other cameras and distances would.
    """
    out = []
    for img in images:
        for s in scales:
            if s == 1.0:
                out.append(img)
                continue
            h, w = round(img.shape[0] * s), round(img.shape[1] * s)
            if min(h, w) >= min_side:
                out.append(np.asarray(PILImage.fromarray(img).resize((w, h), PILImage.Resampling.LANCZOS)))
    return out


def random_crops(images: list[np.ndarray], batch: int, size: int, gen: np.random.Generator,
                 jitter: float = 0.0) -> torch.Tensor:
    """A batch of random crops, float in [0, 1], ``[B, 3, S, S]``: a random image and position, flipped
    horizontally half the time and vertically a quarter of the time; with ``jitter`` each crop's
    channels are scaled by ``1 +- jitter`` (a small colour and brightness change), clipped to [0, 1]."""
    crops = []
    for _ in range(batch):
        img = images[gen.integers(len(images))]
        y, x = gen.integers(img.shape[0] - size + 1), gen.integers(img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        crop = crop[:, ::-1] if gen.random() < 0.5 else crop
        crops.append(crop[::-1] if gen.random() < 0.25 else crop)
    out = torch.from_numpy(np.stack(crops).copy()).permute(0, 3, 1, 2).float() / 255
    if jitter > 0:
        gains = 1 + jitter * (2 * torch.from_numpy(gen.random((batch, 3, 1, 1))).float() - 1)
        out = (out * gains).clamp_(0, 1)
    return out


def rd_loss(model: torch.nn.Module, x: torch.Tensor, lmbda: float | torch.Tensor,
            quality: torch.Tensor | None = None) -> tuple[torch.Tensor, float, float]:
    """lambda * 255^2 * MSE + bpp, and the two terms (batch means).

    With ``quality`` (a ``[B]`` tensor, for the variable-rate model) each image has its own
    quality and ``lmbda`` is a ``[B]`` tensor of their lambdas: the loss is the mean of the
    images' own rate-distortion costs.
    """
    out = model(x) if quality is None else model(x, quality)
    b = x.shape[0]
    pixels = x.shape[2] * x.shape[3]
    bits = sum(torch.log(lk.float()).reshape(b, -1).sum(1) for lk in out["likelihoods"].values())
    bpp = bits / (-math.log(2) * pixels)
    mse = ((out["x_hat"].float() - x.float()) ** 2).reshape(b, -1).mean(1)
    lam = torch.as_tensor(lmbda, dtype=torch.float32, device=x.device)
    loss = (lam * 255 ** 2 * mse + bpp).mean()
    return loss, float(bpp.mean().detach()), float(mse.mean().detach())


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[np.ndarray], device: torch.device,
             quality: float | None = None) -> dict[str, float]:
    """bpp from real bitstreams and PSNR on each validation image, averaged (at ``quality`` for the
    variable-rate model)."""
    model.eval()
    model.update(force=True)
    bpps, psnrs = [], []
    extra = {} if quality is None else {"quality": quality}
    for img in images:
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
        enc = model.compress(x, **extra)
        nbytes = sum(len(s) for strings in enc["strings"] for s in strings)
        dec = model.decompress(enc["strings"], enc["shape"], size=enc["size"], **extra)
        mse = float(torch.mean((dec["x_hat"].clamp(0, 1) - x) ** 2))
        bpps.append(8 * nbytes / (img.shape[0] * img.shape[1]))
        psnrs.append(10 * math.log10(1 / max(mse, 1e-12)))
    model.train()
    return {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}
