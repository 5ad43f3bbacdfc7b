"""Training data (`ncodec.train.data`): image patches on the bundled photo, and the shared-data set builders."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from ncodec.train.data import image_from_patches, image_patch_set, image_patches, mel_frames


def test_patches_round_trip_bundled_image(samples) -> None:
    with Image.open(samples / "garden.png") as im:
        pixels = np.asarray(im.convert("RGB"))
    h, w, _ = pixels.shape
    patches = image_patches(pixels, 8)
    assert patches.shape == ((h // 8) * (w // 8), 192)
    assert patches.dtype == torch.float32 and 0.0 <= patches.min() and patches.max() <= 1.0
    back = image_from_patches(patches, h, w, 8, 3)
    assert np.array_equal(back.numpy(), pixels[: h // 8 * 8, : w // 8 * 8])
    # raster order, (row, column, channel) inside a patch
    assert torch.equal(patches[1].reshape(8, 8, 3), torch.from_numpy(pixels[:8, 8:16].copy()).float() / 255)


def test_patches_drop_partial_edges() -> None:
    pixels = np.arange(10 * 13 * 3, dtype=np.uint8).reshape(10, 13, 3)
    assert image_patches(pixels, 4).shape == (2 * 3, 48)
    with pytest.raises(ValueError):
        image_patches(pixels.astype(np.float32), 4)


def test_data_set_builders(shared_data) -> None:
    frames = mel_frames(shared_data, sets=("speech/dev",), seconds_per_file=1.0)
    assert frames.ndim == 2 and frames.shape[1] == 64 and frames.shape[0] > 6 * 90
    assert torch.isfinite(frames).all()
    patches = image_patch_set(shared_data, "dev", patches_per_image=16)
    assert patches.shape[1] == 192 and patches.shape[0] == 16 * len(list((shared_data / "images/dev").iterdir()))
    assert torch.equal(patches, image_patch_set(shared_data, "dev", patches_per_image=16))
