"""16-bit colour PNG, read and written without loss (Pillow reads 16-bit RGB as 8-bit, and cannot write it).

Only what Pillow gets wrong goes through here: 16 bits per sample, colour types 0 (gray),
2 (RGB), 4 (gray + alpha) and 6 (RGBA), not interlaced. The reader checks every chunk's CRC
and bounds the inflated size by the header's, so a hostile file costs no more memory than
the image it claims (itself bounded). imagecodecs is used when installed (faster); the
fallback undoes the five PNG filters with numpy.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import MediaError

__all__ = ["is_wide_png", "read_png16", "write_png16"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
MAX_PIXELS = 1 << 28


def _chunks(data: bytes):
    """(type, payload) of every chunk, CRC-checked; MediaError on a truncated or corrupt file."""
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise MediaError("truncated PNG: a chunk header is cut off")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise MediaError(f"truncated PNG: chunk {kind!r} is cut off")
        payload = data[pos + 8:end]
        if zlib.crc32(payload, zlib.crc32(kind)) != struct.unpack(">I", data[end:end + 4])[0]:
            raise MediaError(f"corrupt PNG: CRC mismatch in chunk {kind!r}")
        yield kind, payload
        if kind == b"IEND":
            return
        pos = end + 4
    raise MediaError("truncated PNG: no IEND chunk")


def _header(data: bytes) -> tuple[int, int, int, int, int]:
    """(width, height, bit depth, colour type, interlace) from the IHDR chunk."""
    if data[:8] != SIGNATURE or len(data) < 33 or data[12:16] != b"IHDR":
        raise MediaError("not a PNG file")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, colour, interlace


def is_wide_png(data: bytes) -> bool:
    """Whether ``data`` is a PNG with 16-bit colour or gray + alpha samples (what Pillow narrows to 8 bits)."""
    try:
        _, _, depth, colour, _ = _header(data)
    except MediaError:
        return False
    return depth == 16 and colour in (2, 4, 6)


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    """The PNG filters (None, Sub, Up, Average, Paeth) undone, row by row."""
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            cur = (line + prev) & 255
        elif kind in (3, 4):
            cur = line.copy()
            left = np.zeros(bpp, dtype=np.int64)
            up_left = np.zeros(bpp, dtype=np.int64)
            for x in range(0, stride, bpp):
                up = prev[x:x + bpp]
                if kind == 3:
                    pred = (left + up) >> 1
                else:
                    p = left + up - up_left
                    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
                left = (line[x:x + bpp] + pred) & 255
                cur[x:x + bpp] = left
                up_left = up
        else:
            raise MediaError(f"corrupt PNG: unknown filter type {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out


def read_png16(data: bytes) -> np.ndarray:
    """A 16-bit PNG's samples as uint16 ``[H, W, C]``; MediaError for anything else or a corrupt file."""
    width, height, depth, colour, interlace = _header(data)
    if depth != 16 or colour not in CHANNELS:
        raise MediaError(f"not a 16-bit gray/RGB PNG (bit depth {depth}, colour type {colour})")
    if interlace:
        raise MediaError("interlaced 16-bit PNG is not supported; save it without interlacing")
    if not (1 <= width and 1 <= height and width * height <= MAX_PIXELS):
        raise MediaError(f"PNG of {width}x{height} pixels is outside what ncodec reads")
    try:
        import imagecodecs

        pixels = np.asarray(imagecodecs.png_decode(data))
        return pixels.reshape(height, width, -1).astype(np.uint16, copy=False)
    except ImportError:
        pass
    except Exception as exc:  # imagecodecs raises its own error types
        raise MediaError(f"cannot read PNG: {exc}") from None
    c = CHANNELS[colour]
    stride = width * c * 2
    expected = height * (stride + 1)
    inflate = zlib.decompressobj()
    raw = bytearray()
    try:
        for kind, payload in _chunks(data):
            if kind == b"IDAT":
                raw += inflate.decompress(payload, expected + 1 - len(raw))
                if len(raw) > expected:
                    raise MediaError("corrupt PNG: more image data than the header announces")
    except zlib.error as exc:
        raise MediaError(f"corrupt PNG: {exc}") from None
    if len(raw) != expected:
        raise MediaError(f"truncated PNG: {len(raw)} of {expected} bytes of image data")
    rows = _unfilter(np.frombuffer(bytes(raw), dtype=np.uint8), height, stride, c * 2)
    return rows.view(">u2").reshape(height, width, c).astype(np.uint16)


def write_png16(pixels: np.ndarray) -> bytes:
    """uint16 ``[H, W, C]`` (C = 1 to 4) as a 16-bit PNG (Sub filter on every row, zlib level 6)."""
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise MediaError(f"write_png16 takes uint16 [H, W, 1-4], got {pixels.dtype} {pixels.shape}")
    h, w, c = pixels.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.ascontiguousarray(pixels).astype(">u2").view(np.uint8).reshape(h, w, 2 * c).astype(np.int16)
    filtered = raw.copy()
    filtered[:, 1:] = raw[:, 1:] - raw[:, :-1]          # Sub: each byte minus the same byte of the pixel before
    body = np.concatenate([np.ones((h, 1), np.uint8), (filtered.reshape(h, -1) & 255).astype(np.uint8)], axis=1)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body.tobytes(), 6)) + chunk(b"IEND", b"")
