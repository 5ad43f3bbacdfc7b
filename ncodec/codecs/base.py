"""The interface every codec implements, so the API, the CLI and `ncodec list` treat them alike."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, BinaryIO, ClassVar

from .. import bitstream
from ..errors import UsageError
from ..media.types import Audio, Image
from ..progress import Progress

Media = Image | Audio


def number_option(codec: str, name: str, value: Any, low: float, high: float, *, integer: bool = False,
                  open_low: bool = False) -> float:
    """A codec option as a finite number in [low, high] (``(low, high]`` with ``open_low``), or a `UsageError`
    that says which option, what it got and what it takes (strings from the command line included)."""
    kind = "a whole number" if integer else "a number"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{codec}: {name} must be {kind}, got {value!r}") from None
    below = number <= low if open_low else number < low
    if not math.isfinite(number) or below or number > high or (integer and not number.is_integer()):
        span = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise UsageError(f"{codec}: {name} must be {kind} in {span}, got {value!r}")
    return number


class Codec(ABC):
    """A codec turns one kind of media into an ncodec container and back.

    Subclasses set the class attributes, implement `write` (stream the container to a
    binary file object) and `decode`, and build a decoder from a header in `from_header`.
    """

    name: ClassVar[str]
    media: ClassVar[str]  # "image", "audio" or "video"
    lossless: ClassVar[bool]
    pretrained: ClassVar[bool] = False
    description: ClassVar[str] = ""
    #: what ``--quality`` means for this codec (range, direction, default) and the rate target it takes;
    #: every lossy codec says it, and ``ncodec list`` shows it
    quality_scale: ClassVar[str] = ""

    @abstractmethod
    def write(self, media: Any, out: BinaryIO, progress: Progress | None = None) -> None:
        """Encode ``media`` and write the whole container to ``out``."""

    @abstractmethod
    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Any:
        """Decode the media of a container whose header named this codec."""

    @classmethod
    @abstractmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> "Codec":
        """The codec instance (configuration, weights) that decodes streams with this header.

        ``options`` are what the user gave to decode (e.g. ``model`` for weights that are not
        in the zoo); codecs that need none ignore them.
        """

    def model_hash(self) -> str | None:
        """SHA-256 of the weights this codec instance codes with (None for codecs without weights)."""
        return None

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        """Extra facts for `ncodec info` (e.g. nominal vs actual bitrate); empty by default."""
        return {}

    def encode(self, media: Any, progress: Progress | None = None) -> bytes:
        """Encode ``media`` into container bytes."""
        import io

        buf = io.BytesIO()
        self.write(media, buf, progress)
        return buf.getvalue()
