"""``wavelet``: lossy images by colour transform + CDF 9/7 + dead-zone quantization + context coding.

Like JPEG 2000's irreversible path: the ICT (YCbCr) colour transform, 5 octaves of the
float 9/7 wavelet per plane, and a dead-zone scalar quantizer whose step in each band is
``step / sqrt(gain)``, with ``gain`` the band's synthesis energy times the plane's weight in
RGB error, so every band costs the same RGB MSE per unit of quantization error. Quantized
bands go through the context coder of `subband_coder`, each plane's with the quantized bands
of the planes before it as context. The quantizer decides by rate-distortion: each index is
the floor or the ceiling of its magnitude, whichever costs less in error plus estimated bits
under its context (`_rdo_quantize`; the stream format does not depend on it). The decoder
puts each coefficient at the centroid of its bin: the encoder measures the mean offset per
band and sends it. ``bpp`` asks for a rate: the base step is searched on the real coded size
(`WaveletCodec._rate_controlled`).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np
import torch

from ... import bitstream
from ...transforms import wavelet
from ...entropy import residuals as rc
from ...errors import BitstreamError, MediaError, UsageError
from ...media.types import Image
from ...progress import Progress
from ..registry import register
from ..base import Codec, number_option
from . import subband_coder
from .subband_coder import Details, decode_subbands, encode_subbands

CHUNK_KIND = "WAVQ"
LEVELS = 5
MIN_STEP, MAX_STEP = 1 / 64, 4096.0   # base steps the coder takes (rate control searches 1/64 .. 1024)
MAX_BPP = 64.0             # a rate target above this is no lossy target (16-bit RGBA is 64 bpp raw)
ROUNDING = 0.30            # quantizer rounding offset: below 1/2 widens the dead zone (rate-distortion trade)
OFFSET_STEPS = 64          # reconstruction offsets in 1/64 of a step
RDO_LAMBDA = 0.1           # rate weight of the quantizer's decisions (steps^2 per estimated bit)
RDO_PASSES = 2
_MIN_RDO_MEAN = 0.02       # floor of a context's mean magnitude in the bit estimates
_ICT = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_ICT_INV = np.linalg.inv(_ICT)
_PLANE_WEIGHTS = (_ICT_INV ** 2).sum(axis=0)  # RGB squared error per unit of Y, Cb, Cr error
_HEAD = struct.Struct("<B")          # plane index
_STEP = struct.Struct("<d")          # base step, in plane 0's chunk
_OFFSETS = struct.Struct("<16b")     # (1 + 3 levels) offsets per plane, padded to 16


@lru_cache(maxsize=8)
def band_gains(levels: int) -> tuple[float, tuple[dict[str, float], ...]]:
    """Synthesis energy of the low band and of each detail band of the 9/7 transform."""
    low, details = wavelet.synthesis_gains(wavelet.CDF_97, levels)
    return low, tuple(details)


#: The base step at the default quality 75: about 0.5-1 bpp on the dev photos (0.26 to 2.7 bpp from
#: the smoothest to the most detailed; step 8: 0.26-2.7, step 12: 0.19-2.0, measured on three of them).
DEFAULT_STEP = 10.0


def quality_to_step(quality: float) -> float:
    """Quality 1..100 (higher is better, JPEG-like) to a base quantization step, log-linear in two pieces:
    75 -> `DEFAULT_STEP` (about 0.5-1 bpp on photos), 100 -> 1/2 (near-lossless), 1 -> 256 (a thumbnail's
    worth of bits). Every quality between codes at a rate between."""
    q = float(quality)
    top = math.log2(DEFAULT_STEP)
    if q >= 75:
        return float(2.0 ** (top - (q - 75.0) * (top + 1.0) / 25.0))
    return float(2.0 ** (top + (75.0 - q) * (8.0 - top) / 74.0))


def _planes(image: Image) -> list[np.ndarray]:
    px = image.pixels.astype(np.float64)
    if image.channels == 1:
        return [px[..., 0] - 128.0]
    return [p - (128.0 if i == 0 else 0.0) for i, p in enumerate(np.moveaxis(px[..., :3] @ _ICT.T, -1, 0))]


def _offset_code(mag: np.ndarray, q: np.ndarray) -> int:
    """The mean of ``mag - q`` over the nonzero indices, in 1/64 steps: where the decoder puts a bin's values."""
    nz = q > 0
    offset = float(np.mean(mag[nz] - q[nz])) if nz.any() else 0.0
    return int(np.clip(round(offset * OFFSET_STEPS), -OFFSET_STEPS // 2, OFFSET_STEPS // 2))


def _quantize(c: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    """Dead-zone indices of coefficients and the band's mean reconstruction offset (in 1/64 steps)."""
    mag = np.abs(c) / step
    q = np.floor(mag + ROUNDING).astype(np.int64)
    return np.sign(c).astype(np.int64) * q, _offset_code(mag, q)


def _rdo_quantize(c: np.ndarray, step: float, parent: np.ndarray | None, siblings: list[np.ndarray],
                  weights: subband_coder.ContextWeights = subband_coder.DEFAULT_WEIGHTS,
                  same_level: int | None = None) -> tuple[np.ndarray, int]:
    """Dead-zone indices chosen by rate-distortion (an encoder decision: the stream is the same format).

    Each coefficient takes the index below or above its magnitude, whichever costs less in
    squared error (in steps^2, at the band's reconstruction offset) plus ``RDO_LAMBDA`` times
    its estimated bits: the discrete Laplace law of its context bin, as the coder will see it
    (contexts and means from the previous pass, `RDO_PASSES` passes). Isolated small
    coefficients, whose context makes them expensive, go to zero; busy areas keep theirs.
    """
    mag = np.abs(c) / step
    below = np.floor(mag).astype(np.int64)
    q = np.floor(mag + ROUNDING).astype(np.int64)
    for _ in range(RDO_PASSES):
        bins = subband_coder.band_bins(q, parent, siblings, None, weights, same_level).reshape(-1)
        counts = np.bincount(bins, minlength=subband_coder.BINS)
        sums = np.bincount(bins, weights=q.reshape(-1).astype(np.float64), minlength=subband_coder.BINS)
        mean = np.maximum(sums / np.maximum(counts, 1), _MIN_RDO_MEAN)[bins].reshape(q.shape)
        offset = _offset_code(mag, q) / OFFSET_STEPS
        up, down = (_rd_cost(mag, k, offset, mean) for k in (below + 1, below))
        q = np.where(up < down, below + 1, below)
    return np.sign(c).astype(np.int64) * q, _offset_code(mag, q)


def _rd_cost(mag: np.ndarray, index: np.ndarray, offset: float, mean: np.ndarray) -> np.ndarray:
    """Squared error (steps^2) of coding magnitudes as ``index`` plus ``RDO_LAMBDA`` x estimated bits:
    the context's Laplace law, plus one bit per nonzero index for what it costs its neighbours
    (it raises their context activity); tuned with ``RDO_LAMBDA`` on the dev images."""
    error = mag - np.where(index > 0, index + offset, 0.0)
    return error * error + RDO_LAMBDA * (rc.discrete_laplace_bits(index, mean) + (index > 0))


def _dequantize(q: np.ndarray, step: float, offset: int) -> np.ndarray:
    mag = np.abs(q).astype(np.float64)
    return np.sign(q) * np.where(mag > 0, (mag + offset / OFFSET_STEPS) * step, 0.0)


def _band_steps(step: float, plane_weight: float, levels: int) -> tuple[float, list[dict[str, float]]]:
    low, details = band_gains(levels)
    return (step / math.sqrt(low * plane_weight),
            [{k: step / math.sqrt(g * plane_weight) for k, g in lv.items()} for lv in details])


def transform_plane(plane: np.ndarray, levels: int) -> wavelet.Subbands:
    """A plane's 9/7 subbands (computed once, then quantized at as many steps as rate control tries)."""
    return wavelet.forward_2d(torch.from_numpy(plane), levels, wavelet.CDF_97)


@dataclass
class QuantizedPlane:
    """A plane's quantized subbands and reconstruction offsets (low band's first, then HL, LH, HH of
    each level, finest first): what its stream holds, and all the decoder needs besides the step."""

    low: np.ndarray
    details: Details
    offsets: list[int]


@dataclass
class CodedPlanes:
    """Every plane of an image at one base step: its quantized subbands and its rANS stream."""

    step: float
    planes: list[QuantizedPlane]
    streams: list[bytes]


def quantize_bands(bands: wavelet.Subbands, step: float, weight: float, references: Sequence[Details] = (),
                   contexts: subband_coder.ContextTable = subband_coder.HAND_SET) -> QuantizedPlane:
    """A plane's subbands quantized at base ``step`` (rate-distortion decisions under the contexts the
    coder will use, ``contexts``; ``references``: the quantized subbands of the planes before it)."""
    low_step, steps = _band_steps(step, weight, len(bands.details))
    low, low_offset = _quantize(bands.low.numpy(), low_step)
    details: Details = [{} for _ in bands.details]
    offsets: list[dict[str, int]] = [{} for _ in bands.details]
    for level in range(len(bands.details) - 1, -1, -1):  # coarse to fine, in coding order: parents first
        coded: list[np.ndarray] = []
        for key in subband_coder.ORIENTATIONS:
            parent = details[level + 1][key] if level + 1 < len(details) else None
            details[level][key], offsets[level][key] = _rdo_quantize(
                bands.details[level][key].numpy(), steps[level][key], parent,
                subband_coder.neighbour_bands(coded, references, level, key),
                contexts.weights(len(references), level, key), len(coded))
            coded.append(details[level][key])
    offs = [low_offset] + [offsets[level][key] for level in range(len(details)) for key in ("HL", "LH", "HH")]
    return QuantizedPlane(low, details, offs)


def quantize_image(bands: Sequence[wavelet.Subbands], step: float, channels: int,
                   contexts: subband_coder.ContextTable = subband_coder.HAND_SET) -> list[QuantizedPlane]:
    """Every plane's quantized subbands at base ``step``, each plane with those before it as context."""
    planes: list[QuantizedPlane] = []
    for k, b in enumerate(bands):
        planes.append(quantize_bands(b, step, _weight(channels, k), [p.details for p in planes], contexts))
    return planes


def reconstruct_plane(plane: QuantizedPlane, step: float, weight: float) -> np.ndarray:
    """The decoded plane (float, before colour conversion) from its quantized subbands."""
    low_step, steps = _band_steps(step, weight, len(plane.details))
    if len(plane.offsets) < 1 + 3 * len(plane.details):
        raise BitstreamError("corrupt wavelet stream: wrong number of band offsets")
    bands = wavelet.Subbands(torch.from_numpy(_dequantize(plane.low, low_step, plane.offsets[0])), [], (0, 1))
    i = 1
    for lv, lv_steps in zip(plane.details, steps):
        level = {}
        for key in ("HL", "LH", "HH"):
            level[key] = torch.from_numpy(_dequantize(lv[key], lv_steps[key], plane.offsets[i]))
            i += 1
        bands.details.append(level)
    return wavelet.inverse_2d(bands, wavelet.CDF_97).numpy()


def decode_plane(data: bytes | memoryview, shape: tuple[int, int], step: float, weight: float, levels: int,
                 offsets: list[int], references: Sequence[Details] = (),
                 contexts: subband_coder.ContextTable = subband_coder.HAND_SET) -> tuple[np.ndarray, Details]:
    """Inverse of a plane's `encode_subbands` stream (after `quantize_bands`): the plane and its quantized subbands."""
    low_shape, detail_shapes = wavelet.band_shapes(shape, levels)
    low, details = decode_subbands(data, low_shape, detail_shapes, references,  # type: ignore[arg-type]
                                   contexts=contexts)
    return reconstruct_plane(QuantizedPlane(low, details, offsets), step, weight), details


def to_pixels(planes: Sequence[np.ndarray]) -> np.ndarray:
    """Decoded planes (Y, Cb, Cr or gray, float) to 8-bit RGB / gray pixels, H x W x C."""
    if len(planes) == 1:
        px = planes[0][..., None] + 128.0
    else:
        ycc = np.stack(planes, axis=-1)
        ycc[..., 0] += 128.0
        px = ycc @ _ICT_INV.T
    return np.clip(np.rint(px), 0, 255).astype(np.uint8)


def decoded_pixels(planes: Sequence[QuantizedPlane], step: float) -> np.ndarray:
    """The image the decoder makes of these quantized planes (what the encoder can see without coding)."""
    channels = len(planes)
    return to_pixels([reconstruct_plane(p, step, _weight(channels, k)) for k, p in enumerate(planes)])


@register(default_for="image", priority=20)
class WaveletCodec(Codec):
    """Lossy 8-bit gray / RGB images, by quality (1..100, default 75: about 0.5-1 bpp on photos) or at a
    target ``bpp``. The default codec for such images: the best ncodec has until a learned model beats it."""

    name = "wavelet"
    media = "image"
    lossless = False
    description = "lossy images: YCbCr + CDF 9/7 wavelet + dead-zone quantization + context-modelled rANS"
    quality_scale = ('quality 1-100 (higher is better, JPEG-like; 100 near-lossless), default 75 (about 0.5-1 bpp on '
                     'photos); rate target --bpp')
    eval_rate_option = "bpp"  # the harness gives it the target rate directly
    #: context weights of the subband coder (the hand-set ones; `learned-wavelet` has learned ones)
    contexts: subband_coder.ContextTable = subband_coder.HAND_SET

    @classmethod
    def eval_version(cls) -> str:
        """Part of the harness's cache key: the stream layout (changes invalidate cached results)."""
        return f"subband-{subband_coder.FORMAT}"

    @classmethod
    def accepts(cls, media: Any) -> bool:
        """Default codec for 8-bit gray / RGB images (alpha and 16-bit go to wavelet-lossless)."""
        return isinstance(media, Image) and media.pixels.dtype == np.uint8 and media.channels in (1, 3)

    def __init__(self, quality: float = 75.0, bpp: float | None = None, levels: int = LEVELS,
                 step: float | None = None):
        self.quality = number_option(self.name, "quality", quality, 1, 100)
        self.bpp = None if bpp is None else number_option(self.name, "bpp", bpp, 0, MAX_BPP, open_low=True)
        self.levels = int(number_option(self.name, "levels", levels, 1, LEVELS, integer=True))
        self.step = (number_option(self.name, "step", step, MIN_STEP, MAX_STEP) if step is not None
                     else quality_to_step(self.quality))

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> "WaveletCodec":
        cfg = header.config
        try:
            codec = cls(levels=int(cfg["levels"]))
        except (KeyError, TypeError, ValueError, MediaError, UsageError):
            raise BitstreamError("corrupt wavelet header: bad configuration") from None
        if codec.levels > 5:
            raise BitstreamError("corrupt wavelet header: more levels than the stream layout holds offsets for")
        rc.check_bank(cfg.get("tables"))
        subband_coder.check_format(cfg.get("format"))
        return codec

    def _bands(self, image: Image) -> list[wavelet.Subbands]:
        return [transform_plane(plane, self.levels) for plane in _planes(image)]

    def _encode_planes(self, image: Image, step: float,
                       bands: list[wavelet.Subbands] | None = None) -> CodedPlanes:
        """Every plane quantized and entropy-coded at a base step (``bands``: the planes' transforms, when
        already made)."""
        bands = self._bands(image) if bands is None else bands
        planes = quantize_image(bands, step, image.channels, self.contexts)
        streams = [encode_subbands(p.low, p.details, [q.details for q in planes[:k]], contexts=self.contexts)
                   for k, p in enumerate(planes)]
        return CodedPlanes(step, planes, streams)

    def _pack(self, image: Image, coded: CodedPlanes, final: bool = True) -> bytes:
        """The whole stream of coded planes; without ``final``, its closing chunks (`_closing_chunks`) have
        their final size but not their content (what rate control measures)."""
        meta = {"media": "image", "width": image.width, "height": image.height, "channels": image.channels,
                "bit_depth": 8, "source": image.source}
        chunks = []
        for k, (data, plane) in enumerate(zip(coded.streams, coded.planes)):
            offs = plane.offsets
            head = (_HEAD.pack(k) + (_STEP.pack(coded.step) if k == 0 else b"")
                    + _OFFSETS.pack(*offs, *[0] * (16 - len(offs))))
            chunks.append((CHUNK_KIND, head + data))
        chunks += self._closing_chunks(image, coded.step, coded.planes if final else None)
        # one small image: no chunk index (it would cost more than it saves at low rates)
        header = bitstream.Header(self.name, self._config(), meta, self.model_hash())
        return bitstream.pack(header, chunks, index=False)

    def _closing_chunks(self, image: Image, step: float,
                        planes: list[QuantizedPlane] | None) -> list[tuple[str, bytes]]:
        """Chunks after the planes' (none here; a subclass adds its own). ``planes`` None: only their
        size counts (rate control), so they must not depend on the planes in size."""
        return []

    def _config(self) -> dict[str, Any]:
        """The header's coding configuration."""
        return {"levels": self.levels, "tables": rc.bank_digest(), "format": subband_coder.FORMAT}

    def _rate_controlled(self, image: Image) -> bytes:
        """The stream with the smallest step whose total size fits ``bpp`` (`_search_step`)."""
        return self._pack(image, self._search_step(image))

    def _search_step(self, image: Image) -> CodedPlanes:
        """The planes coded at the smallest step whose total stream fits ``bpp``.

        Size falls smoothly with the step, almost linearly in log-log, so the search is
        regula falsi (Illinois) on ``log(size / budget)`` over ``log2(step)``, bracketed in
        [1/64, 1024], stopping once the bracket is 1/128 octave wide: 6-9 encodes instead
        of the 14 of bisection.
        """
        budget = self.bpp * image.num_pixels / 8  # type: ignore[operator]
        bands = self._bands(image)

        def excess(log_step: float) -> tuple[float, CodedPlanes]:
            coded = self._encode_planes(image, 2 ** log_step, bands)
            return math.log(len(self._pack(image, coded, final=False)) / budget), coded

        lo, hi = math.log2(1 / 64), math.log2(1024.0)
        f_lo, d_lo = excess(lo)
        if f_lo <= 0:
            return d_lo
        f_hi, d_hi = excess(hi)
        if f_hi > 0:  # even the coarsest step does not fit: say so rather than give a larger stream
            smallest = len(self._pack(image, d_hi, final=False))
            raise MediaError(f"{self.name} cannot code this image in bpp={self.bpp:g}: its smallest stream "
                             f"(coarsest step) takes {8 * smallest / image.num_pixels:.4f} bpp")
        best, side = d_hi, 0
        for _ in range(24):
            if hi - lo <= 1 / 128:
                break
            mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
            mid = min(max(mid, lo + (hi - lo) / 64), hi - (hi - lo) / 64)  # keep it strictly inside
            f_mid, d_mid = excess(mid)
            if f_mid <= 0:
                hi, f_hi, best = mid, f_mid, d_mid
                if side == -1:
                    f_lo /= 2
                side = -1
            else:
                lo, f_lo = mid, f_mid
                if side == 1:
                    f_hi /= 2
                side = 1
        return best

    def write(self, media: Image, out: BinaryIO, progress: Progress | None = None) -> None:
        image = media
        if not isinstance(image, Image) or image.pixels.dtype != np.uint8 or image.channels not in (1, 3):
            raise MediaError("wavelet codes 8-bit gray or RGB images (drop alpha, or use wavelet-lossless)")
        coded = self._encode_planes(image, self.step) if self.bpp is None else self._search_step(image)
        out.write(self._pack(image, coded))
        if progress:
            progress.update(1)

    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        planes, _, _ = self._decode_planes(reader)
        if progress:
            progress.update(1)
        return Image(to_pixels(planes), 8, source=dict(reader.header.metadata.get("source") or {}))

    def _decode_planes(self, reader: bitstream.Reader) -> tuple[list[np.ndarray], float, dict[str, bytes]]:
        """The decoded planes (float), the base step, and the payloads of the other chunks by kind."""
        meta = reader.header.metadata
        try:
            h, w, c = int(meta["height"]), int(meta["width"]), int(meta["channels"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt wavelet header: missing image metadata") from None
        if not (1 <= h <= 1 << 16 and 1 <= w <= 1 << 16 and c in (1, 3)):
            raise BitstreamError("corrupt wavelet header: impossible image parameters")
        planes: list[np.ndarray] = []
        references: list[Details] = []
        others: dict[str, bytes] = {}
        step = 0.0
        for chunk in reader:
            if chunk.kind != CHUNK_KIND:
                if chunk.kind in others:
                    raise BitstreamError(f"stream holds two {chunk.kind} chunks")
                others[chunk.kind] = bytes(chunk.payload)
                continue
            k = len(planes)
            head = _HEAD.size + (_STEP.size if k == 0 else 0) + _OFFSETS.size
            if len(chunk.payload) < head or chunk.payload[0] != k or k >= c:
                raise BitstreamError("corrupt wavelet stream: planes out of order or truncated")
            if k == 0:
                (step,) = _STEP.unpack_from(chunk.payload, _HEAD.size)
                if not (math.isfinite(step) and 1e-6 < step < 1e6):
                    raise BitstreamError("corrupt wavelet stream: impossible step")
            offsets = list(_OFFSETS.unpack_from(chunk.payload, head - _OFFSETS.size))
            if any(abs(o) > OFFSET_STEPS // 2 for o in offsets):
                raise BitstreamError("corrupt wavelet stream: reconstruction offsets out of range")
            plane, details = decode_plane(memoryview(chunk.payload)[head:], (h, w), step, _weight(c, k),
                                          self.levels, offsets, references, self.contexts)
            planes.append(plane)
            references.append(details)
        if len(planes) != c:
            raise BitstreamError(f"stream holds {len(planes)} planes, the image needs {c}")
        return planes, step, others


def _weight(channels: int, plane: int) -> float:
    return 1.0 if channels == 1 else float(_PLANE_WEIGHTS[plane])
