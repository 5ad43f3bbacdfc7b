"""The media objects codecs take and return: `Image` and `Audio`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MediaError

MEDIA_KINDS = ("image", "audio", "video")


@dataclass
class Image:
    """An image as ``pixels[H, W, C]`` (uint8 or uint16, C in 1, 3, 4) at ``bit_depth`` bits."""

    pixels: np.ndarray
    bit_depth: int = 8
    source: dict[str, Any] = field(default_factory=dict)  # how the caller gave it, to hand it back alike

    def __post_init__(self) -> None:
        p = self.pixels
        if p.ndim == 2:
            p = p[:, :, None]
        if p.ndim != 3 or p.shape[2] not in (1, 3, 4) or p.shape[0] < 1 or p.shape[1] < 1:
            raise MediaError(f"an image must be HxW or HxWxC with C in 1, 3, 4; got shape {self.pixels.shape}")
        if p.dtype not in (np.uint8, np.uint16):
            raise MediaError(f"image pixels must be uint8 or uint16, got {p.dtype}")
        if not 1 <= self.bit_depth <= p.dtype.itemsize * 8:
            raise MediaError(f"bit depth {self.bit_depth} does not fit {p.dtype}")
        self.pixels = np.ascontiguousarray(p)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def num_pixels(self) -> int:
        return self.height * self.width


@dataclass
class Audio:
    """Audio as ``samples[frames, channels]``: integer PCM (int16/int32) or float32 in [-1, 1].

    ``bit_depth`` is the significant bits of integer PCM (16 or 24 for most files; 24-bit
    PCM lives in int32) and None for float audio.
    """

    samples: np.ndarray
    sample_rate: int
    bit_depth: int | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.samples
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[1] < 1:
            raise MediaError(f"audio samples must be [frames] or [frames, channels], got shape {self.samples.shape}")
        if not isinstance(self.sample_rate, (int, np.integer)) or not 1 <= int(self.sample_rate) <= 10_000_000:
            raise MediaError(f"invalid sample rate {self.sample_rate!r}")
        if s.dtype.kind == "f":
            s = s.astype(np.float32, copy=False)
            self.bit_depth = None
        elif s.dtype in (np.int16, np.int32, np.int8, np.uint8):
            if s.dtype != np.int16:
                s = s.astype(np.int32, copy=False) if s.dtype != np.uint8 else (s.astype(np.int32) - 128)
            if self.bit_depth is None:
                self.bit_depth = 16 if s.dtype == np.int16 else 32
            if not 1 <= self.bit_depth <= s.dtype.itemsize * 8:
                raise MediaError(f"bit depth {self.bit_depth} does not fit {s.dtype}")
        else:
            raise MediaError(f"audio samples must be int16, int32 or float, got {s.dtype}")
        self.sample_rate = int(self.sample_rate)
        self.samples = np.ascontiguousarray(s)

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def is_integer(self) -> bool:
        return self.samples.dtype.kind == "i"


@dataclass
class Video:
    """A video as ``frames[T, H, W, 3]`` 8-bit RGB at ``fps`` frames per second."""

    frames: np.ndarray
    fps: float
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[3] != 3 or min(f.shape[:3]) < 1:
            raise MediaError(f"video frames must be [T, H, W, 3] with T, H, W >= 1; got shape {f.shape}")
        if f.dtype != np.uint8:
            raise MediaError(f"video frames must be uint8, got {f.dtype}")
        fps = float(self.fps)
        if not np.isfinite(fps) or not 0 < fps <= 1000:
            raise MediaError(f"invalid frame rate {self.fps!r}")
        self.fps = fps
        self.frames = np.ascontiguousarray(f)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps
