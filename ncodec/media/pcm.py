"""PCM conversion: integer samples to float and back, and channel layouts to a model's and back."""
from __future__ import annotations

import numpy as np
from torch import Tensor

from ..errors import MediaError

__all__ = ["downmix", "from_float", "to_float", "upmix"]


def to_float(samples: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """PCM ``[n, c]`` as float32 in [-1, 1] (float input as is)."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    return samples.astype(np.float32) / float(1 << ((bit_depth or 16) - 1))


def from_float(x: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """Float samples back to PCM of ``bit_depth`` bits (rounded, clipped), or float32 when None or > 24."""
    if bit_depth is None or bit_depth > 24:
        return x.astype(np.float32, copy=False)
    top = float(1 << (bit_depth - 1))
    pcm = np.clip(np.round(x.astype(np.float64) * top), -top, top - 1)
    return pcm.astype(np.int16 if bit_depth <= 16 else np.int32)


def downmix(x: Tensor, channels: int) -> Tensor:
    """``[B, c, T]`` to the model's ``channels``: mono models take the mean, stereo models copy mono input
    and take the first two channels of wider input."""
    c = x.shape[1]
    if channels == 1:
        return x if c == 1 else x.mean(dim=1, keepdim=True)
    if c == 1:
        return x.expand(-1, channels, -1)
    if c < channels:
        raise MediaError(f"cannot map {c} channels to a {channels}-channel model")
    return x[:, :channels]


def upmix(y: Tensor, channels: int) -> Tensor:
    """The model's output ``[B, m, T]`` in the input's layout: mono copied to every channel, stereo averaged
    for mono input (wider input gets the model's channels)."""
    m = y.shape[1]
    if m == 1:
        return y.expand(-1, channels, -1)
    if channels == 1:
        return y.mean(dim=1, keepdim=True)
    return y
