"""What the harness needs from a codec: encode at a quality setting, decode, and how to drive it.

Three ways a codec is driven to its operating points (a harness run has target rates in
bpp or kbps):
- ``knob``: a quality parameter (JPEG quality, AVIF quality, ...) that the harness searches,
  per file, to hit each target rate; rate must grow with the knob.
- ``rate_controlled``: the codec takes the target rate itself (Opus at N kbps).
- ``fixed_points``: the codec runs at its own list of settings (x264 CRF values) and the
  curve is whatever rates come out.
A lossless codec has one point (``quality`` None) and infinite PSNR.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Knob:
    """A codec's quality parameter: its range, whether it is an integer, and that rate rises with it."""

    lo: float
    hi: float
    integer: bool = True


class EvalCodec(ABC):
    """A codec as the harness sees it."""

    name: ClassVar[str]
    media: ClassVar[str]                       # "image", "audio" or "video"
    lossless: ClassVar[bool] = False
    knob: ClassVar[Knob | None] = None
    rate_controlled: ClassVar[bool] = False
    fixed_points: ClassVar[tuple[float, ...] | None] = None
    description: ClassVar[str] = ""

    @abstractmethod
    def encode(self, media: Any, quality: float | None) -> bytes:
        """Compressed bytes of ``media`` at ``quality`` (knob value, target rate, or fixed point)."""

    @abstractmethod
    def decode(self, data: bytes, reference: Any) -> Any:
        """The decoded media; ``reference`` (the original) gives what the stream may not carry (shape, rate)."""

    def version(self) -> str:
        """Changes when the codec's output could change (library versions, settings): part of the cache key."""
        return "1"
