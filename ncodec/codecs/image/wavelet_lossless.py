"""``wavelet-lossless``: bit-exact images by reversible colour transform + integer 5/3 wavelet + rANS.

Each plane (Y, Cb, Cr after JPEG 2000's reversible colour transform, or gray, plus
alpha) is split into 5 octaves of subbands. The coarsest LL band is coded as horizontal
differences; every detail band is read in 16x16 tiles and coded with forward-adaptive
discrete Laplace tables (`ncodec.entropy.residuals`) over partitions of those tiles.
One container chunk per plane, each one rANS stream. 8- and 16-bit, gray / RGB / RGBA.
"""
from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np

from ... import bitstream, wavelet
from ...entropy import rans
from ...entropy import residuals as rc
from ...errors import BitstreamError, MediaError
from ...media import Image
from ...progress import Progress
from ...registry import register
from ..base import Codec

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


@lru_cache(maxsize=64)
def tile_order(height: int, width: int, tile: int = TILE) -> np.ndarray:
    """Raster indices of an [height, width] band read tile by tile (tiles in raster order)."""
    idx = np.arange(height * width).reshape(height, width)
    ty, tx = -(-height // tile), -(-width // tile)
    pad = np.full((ty * tile, tx * tile), -1, dtype=np.int64)
    pad[:height, :width] = idx
    order = pad.reshape(ty, tile, tx, tile).transpose(0, 2, 1, 3).reshape(-1)
    return order[order >= 0]


def _max_order(n: int) -> int:
    return int(np.clip(np.floor(np.log2(max(n, 1) / 64)), 0, 12))


def _band_symbols(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plan and residual symbols of a flattened band."""
    plan = rc.plan_partitions(values, max_order=_max_order(values.size), min_partition=64)
    ps, pi = rc.plan_symbols(plan)
    rs, ri = rc.residual_symbols(values, plan)
    return np.concatenate([ps, rs]), np.concatenate([pi, ri])


def _decode_band(dec: rans.Decoder, n: int) -> np.ndarray:
    plan = rc.decode_plan(dec, n, max_order=_max_order(n))
    return rc.decode_residual(dec, plan)


def _ll_residual(ll: np.ndarray) -> np.ndarray:
    """Horizontal differences, the first column as vertical differences."""
    res = np.diff(ll, axis=1, prepend=0)
    res[:, 0] = np.diff(ll[:, 0], prepend=0)
    return res


def _ll_restore(res: np.ndarray) -> np.ndarray:
    first = np.cumsum(res[:, 0])
    out = res.copy()
    out[:, 0] = first
    return np.cumsum(out, axis=1)


def encode_plane(plane: np.ndarray, levels: int) -> bytes:
    """One plane as a rANS stream: LL differences, then detail bands coarsest first."""
    bands = wavelet.forward_2d(plane, levels)
    syms, idxs = [], []
    s, i = _band_symbols(_ll_residual(bands.ll).reshape(-1))
    syms.append(s)
    idxs.append(i)
    for details in reversed(bands.details):
        for band in details:
            if band.size:
                s, i = _band_symbols(band.reshape(-1)[tile_order(*band.shape)])
                syms.append(s)
                idxs.append(i)
    return rans.encode(np.concatenate(syms), np.concatenate(idxs), rc.table_bank())


def decode_plane(data: bytes | memoryview, height: int, width: int, levels: int) -> np.ndarray:
    """Inverse of `encode_plane`."""
    dec = rans.Decoder(data, rc.table_bank())
    ll_shape, detail_shapes = wavelet.subband_shapes(height, width, levels)
    ll = _ll_restore(_decode_band(dec, ll_shape[0] * ll_shape[1]).reshape(ll_shape))
    details: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for shapes in reversed(detail_shapes):
        bands = []
        for shape in shapes:
            band = np.zeros(shape, dtype=np.int64)
            n = shape[0] * shape[1]
            if n:
                band.reshape(-1)[tile_order(*shape)] = _decode_band(dec, n)
            bands.append(band)
        details.insert(0, (bands[0], bands[1], bands[2]))
    dec.finish()
    return wavelet.inverse_2d(wavelet.Subbands(ll, details))


@register(default_for="image")
class WaveletLosslessCodec(Codec):
    """Lossless 8/16-bit gray, RGB and RGBA images."""

    name = "wavelet-lossless"
    media = "image"
    lossless = True
    description = "lossless images: reversible colour transform + integer 5/3 wavelet + adaptive rANS"

    def __init__(self, levels: int = 5):
        if not 0 <= int(levels) <= 16:
            raise MediaError("wavelet-lossless needs 0 <= levels <= 16")
        self.levels = int(levels)

    @classmethod
    def from_header(cls, header: bitstream.Header) -> "WaveletLosslessCodec":
        try:
            codec = cls(int(header.config["levels"]))
        except (KeyError, TypeError, ValueError, MediaError):
            raise BitstreamError("corrupt wavelet-lossless header: bad configuration") from None
        rc.check_bank(header.config.get("tables"))
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
        header = bitstream.Header(self.name, {"levels": self.levels, "tables": rc.bank_digest()}, meta)
        with bitstream.Writer(out, header) as w:
            for k, plane in enumerate(self._planes(image)):
                w.write_chunk(CHUNK_KIND, _PLANE_HEAD.pack(k, _plane_crc(plane)) + encode_plane(plane, self.levels))
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
        for chunk in reader:
            if chunk.kind != CHUNK_KIND:
                continue
            if len(chunk.payload) < _PLANE_HEAD.size:
                raise BitstreamError("corrupt wavelet-lossless stream: plane chunk shorter than its header")
            index, crc = _PLANE_HEAD.unpack_from(chunk.payload)
            if index != len(planes):
                raise BitstreamError("corrupt wavelet-lossless stream: planes out of order")
            planes.append(decode_plane(memoryview(chunk.payload)[_PLANE_HEAD.size:], h, w, self.levels))
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
