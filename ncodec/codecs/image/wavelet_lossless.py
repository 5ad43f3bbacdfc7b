"""``wavelet-lossless``: bit-exact images by reversible colour transform + integer 5/3 wavelet + rANS.

Each plane (Y, Cb, Cr after JPEG 2000's reversible colour transform, or gray, plus
alpha) is split into 5 octaves of subbands, coded by the context model of
`subband_coder` (neighbour, parent and sibling magnitudes pick each coefficient's table;
the same band of the planes coded before is a sibling too: chroma follows luma's edges).
The coder also gets each level's low band, so a band may be coded as the residual of a
linear prediction from it and from everything coded before (`band_prediction`).
One container chunk per plane, each one rANS stream. 8- and 16-bit, gray / RGB / RGBA.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import torch

from ... import bitstream
from ...transforms import wavelet
from ...entropy import residuals as rc
from ...errors import BitstreamError, MediaError
from ...media.types import Image
from ...progress import Progress
from ..registry import register
from ..base import Codec
from . import subband_coder
from .subband_coder import Details, decode_subbands, encode_subbands

CHUNK_KIND = "IMGP"
TILE = 16
MAX_SIDE = 1 << 16
_PLANE_HEAD = struct.Struct("<BI")  # plane index, CRC32 of its samples


def _plane_crc(plane: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(plane, dtype="<i8").tobytes())


def rct_forward(rgb: np.ndarray) -> list[np.ndarray]:
    """JPEG 2000's reversible colour transform: Y, Cb, Cr planes (int64)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return [(r + 2 * g + b) >> 2, b - g, r - g]


def rct_inverse(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Inverse of `rct_forward`, stacked as [H, W, 3]."""
    g = y - ((cb + cr) >> 2)
    return np.stack([cr + g, g, cb + g], axis=-1)


def split_levels(plane: np.ndarray, levels: int) -> tuple[np.ndarray, Details, list[np.ndarray]]:
    """The plane's 5/3 decomposition one level at a time: the low band, the detail bands (finest
    first) and each level's low band (what its details refine; the band predictors read it)."""
    low = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.int64))
    details: Details = []
    approximations: list[np.ndarray] = []
    for _ in range(levels):
        bands = wavelet.forward_2d(low, 1)
        if not bands.details:
            break
        low = bands.low
        details.append({k: v.numpy() for k, v in bands.details[0].items()})
        approximations.append(low.numpy())
    return low.numpy(), details, approximations


def encode_plane(plane: np.ndarray, levels: int, references: Sequence[Details] = ()) -> tuple[bytes, Details]:
    """One plane as a rANS stream of its context-coded, predicted 5/3 subbands (``references``: the
    subbands of the planes coded before it, context for its own), and its subbands."""
    low, details, approximations = split_levels(plane, levels)
    return encode_subbands(low, details, references, approximations), details


def _synthesize(low: np.ndarray, details: dict[str, np.ndarray]) -> np.ndarray:
    """One inverse 5/3 level: the next finer low band."""
    bands = wavelet.Subbands(torch.from_numpy(low), [{k: torch.from_numpy(v) for k, v in details.items()}], (0, 1))
    return wavelet.inverse_2d(bands).numpy()


def decode_plane(data: bytes | memoryview, height: int, width: int, levels: int,
                 references: Sequence[Details] = ()) -> tuple[np.ndarray, Details]:
    """Inverse of `encode_plane`: the plane and its subbands."""
    low_shape, detail_shapes = wavelet.band_shapes((height, width), levels)
    low, details = decode_subbands(data, low_shape, detail_shapes, references, _synthesize)  # type: ignore[arg-type]
    bands = wavelet.Subbands(torch.from_numpy(low), [{k: torch.from_numpy(v) for k, v in lv.items()} for lv in details],
                             (0, 1))
    return wavelet.inverse_2d(bands).numpy(), details


@register(default_for="image")
class WaveletLosslessCodec(Codec):
    """Lossless 8/16-bit gray, RGB and RGBA images."""

    name = "wavelet-lossless"
    media = "image"
    lossless = True
    description = "lossless images: reversible colour transform + integer 5/3 wavelet + adaptive rANS"

    @classmethod
    def eval_version(cls) -> str:
        """Part of the harness's cache key: the stream layout."""
        return f"subband-{subband_coder.FORMAT}"

    def __init__(self, levels: int = 5):
        if not 0 <= int(levels) <= 16:
            raise MediaError("wavelet-lossless needs 0 <= levels <= 16")
        self.levels = int(levels)

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> "WaveletLosslessCodec":
        try:
            codec = cls(int(header.config["levels"]))
        except (KeyError, TypeError, ValueError, MediaError):
            raise BitstreamError("corrupt wavelet-lossless header: bad configuration") from None
        rc.check_bank(header.config.get("tables"))
        subband_coder.check_format(header.config.get("format"))
        return codec

    def _planes(self, image: Image) -> list[np.ndarray]:
        px = image.pixels
        planes = rct_forward(px[..., :3]) if image.channels >= 3 else [px[..., 0].astype(np.int64)]
        if image.channels in (2, 4):
            planes.append(px[..., -1].astype(np.int64))
        return planes

    def write(self, media: Image, out: BinaryIO, progress: Progress | None = None) -> None:
        image = media
        if not isinstance(image, Image):
            raise MediaError("wavelet-lossless codes images")
        if max(image.height, image.width) > MAX_SIDE:
            raise MediaError(f"images up to {MAX_SIDE} pixels a side")
        meta = {"media": "image", "width": image.width, "height": image.height, "channels": image.channels,
                "bit_depth": image.bit_depth, "source": image.source}
        header = bitstream.Header(self.name, {"levels": self.levels, "tables": rc.bank_digest(),
                                               "format": subband_coder.FORMAT}, meta)
        coded: list[Details] = []
        with bitstream.Writer(out, header) as w:
            for k, plane in enumerate(self._planes(image)):
                data, details = encode_plane(plane, self.levels, coded)
                coded.append(details)
                w.write_chunk(CHUNK_KIND, _PLANE_HEAD.pack(k, _plane_crc(plane)) + data)
        if progress:
            progress.update(1)

    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        meta = reader.header.metadata
        try:
            h, w, c, depth = (int(meta["height"]), int(meta["width"]), int(meta["channels"]), int(meta["bit_depth"]))
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt wavelet-lossless header: missing image metadata") from None
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c in (1, 2, 3, 4) and depth in range(1, 17)):
            raise BitstreamError("corrupt wavelet-lossless header: impossible image parameters")
        planes: list[np.ndarray] = []
        coded: list[Details] = []
        for chunk in reader:
            if chunk.kind != CHUNK_KIND:
                continue
            if len(chunk.payload) < _PLANE_HEAD.size:
                raise BitstreamError("corrupt wavelet-lossless stream: plane chunk shorter than its header")
            index, crc = _PLANE_HEAD.unpack_from(chunk.payload)
            if index != len(planes):
                raise BitstreamError("corrupt wavelet-lossless stream: planes out of order")
            if index >= 4:
                raise BitstreamError("corrupt wavelet-lossless stream: more planes than an image has")
            plane, details = decode_plane(memoryview(chunk.payload)[_PLANE_HEAD.size:], h, w, self.levels, coded)
            planes.append(plane)
            coded.append(details)
            if _plane_crc(planes[-1]) != crc:
                raise BitstreamError(f"corrupt wavelet-lossless stream: plane {index} fails its checksum")
        expected = 3 + (c == 4) if c >= 3 else c
        if len(planes) != expected:
            raise BitstreamError(f"stream holds {len(planes)} planes, the image needs {expected}")
        px = rct_inverse(*planes[:3]) if c >= 3 else planes[0][..., None]
        if c in (2, 4):
            px = np.concatenate([px, planes[-1][..., None]], axis=-1)
        if px.min() < 0 or px.max() >= (1 << depth):
            raise BitstreamError("corrupt stream: decoded pixels out of range")
        if progress:
            progress.update(1)
        dtype = np.uint8 if depth <= 8 else np.uint16
        return Image(px.astype(dtype), depth, source=dict(meta.get("source") or {}))

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        return {"planes": sum(1 for c in chunks if c.kind == CHUNK_KIND), "levels": self.levels}
