"""``audio-lossless``: bit-exact PCM coding by integer linear prediction and adaptive rANS.

The design follows FLAC (blocks, LPC up to order 32 with quantised coefficients, stereo
decorrelation, partitioned residual parameters) with two changes that make files smaller:
prediction history runs on across the blocks of a chunk instead of verbatim warm-up
samples, and residuals go through the rANS core with discrete Laplace tables instead of
Rice codes. Each chunk (16 blocks of 4096 frames by default) is one container chunk with
its own rANS stream and a CRC32 of its PCM, so long files stream and decode chunk by chunk.
"""
from __future__ import annotations

import struct
import zlib
from typing import Any, BinaryIO

import numpy as np

from ... import bitstream
from ...entropy import rans
from ...entropy import residuals as rc
from ...errors import BitstreamError, MediaError
from ...media.types import Audio
from ...progress import Progress
from ..registry import register
from ..base import Codec
from . import lpc

CHUNK_KIND = "AUDB"
_CHUNK_HEAD = struct.Struct("<QII")  # first frame, frames, CRC32 of the PCM
MAX_ORDER = 32
_PRECISIONS = (12, 15)
_MODES = ("LR", "LS", "RS", "MS")


def _stereo_signals(x: np.ndarray) -> dict[str, np.ndarray]:
    """The four stereo signals FLAC chooses between: left, right, mid and side."""
    left, right = x[..., 0], x[..., 1]
    return {"L": left, "R": right, "M": (left + right) >> 1, "S": left - right}


def _pair(mode: str) -> tuple[str, str]:
    return {"LR": ("L", "R"), "LS": ("L", "S"), "RS": ("R", "S"), "MS": ("M", "S")}[mode]


def _unstereo(mode: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right from a decoded signal pair."""
    if mode == "LR":
        return a, b
    if mode == "LS":
        return a, a - b
    if mode == "RS":
        return a + b, a
    mid = (a << 1) | (b & 1)
    return (mid + b) >> 1, (mid - b) >> 1


def _wasted_bits(x: np.ndarray) -> int:
    """Trailing zero bits shared by every sample (e.g. 16-bit audio in a 24-bit file)."""
    acc = int(np.bitwise_or.reduce(x)) if x.size else 0
    if acc == 0:
        return 0
    return min((acc & -acc).bit_length() - 1, 31)


class _SignalPlan:
    """The chosen coding of one signal of one block: predictor, residual and their symbols."""

    def __init__(self, wasted: int, coefs: np.ndarray, shift: int, precision: int,
                 residual: np.ndarray, plan: rc.Plan):
        self.wasted, self.coefs, self.shift, self.precision = wasted, coefs, shift, precision
        self.residual, self.plan = residual, plan

    @property
    def bits(self) -> float:
        return self.plan.bits + 11 + (9 + self.precision * self.coefs.size if self.coefs.size else 0)

    def symbols(self) -> tuple[np.ndarray, np.ndarray]:
        parts = [rc.raw_symbols(np.array([self.wasted]), 5), rc.raw_symbols(np.array([self.coefs.size]), 6)]
        if self.coefs.size:
            parts.append(rc.raw_symbols(np.array([self.precision - 1]), 4))
            parts.append(rc.raw_symbols(np.array([self.shift]), 5))
            parts.append(rc.signed_raw_symbols(self.coefs, self.precision))
        parts.append(rc.plan_symbols(self.plan))
        parts.append(rc.residual_symbols(self.residual, self.plan))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _estimate_bits(errors: np.ndarray, n: int, precision: int) -> np.ndarray:
    """Laplacian estimate of residual bits for each order from Levinson error powers."""
    var = np.maximum(errors / max(n, 1), 1e-3)
    orders = np.arange(errors.size)
    return n * np.maximum(np.log2(np.sqrt(2.0) * np.e * np.sqrt(var)), 0.05) + orders * precision


def _analyse(x: np.ndarray, max_order: int) -> tuple[list[np.ndarray], np.ndarray]:
    order = min(max_order, x.size - 1)
    if order < 1 or not np.any(x):
        return [], np.array([float(np.dot(x, x))])
    xw = x.astype(np.float64) * lpc.tukey(x.size, 0.5)
    return lpc.levinson(lpc.autocorrelation(xw, order), order)


def _code_signal(x: np.ndarray, history: np.ndarray, max_order: int, candidates: int = 3,
                 analysis: tuple[list[np.ndarray], np.ndarray] | None = None) -> _SignalPlan:
    """Pick wasted bits, predictor order and precision for one signal by actual coded size.

    ``analysis`` is `_analyse` of ``x >> wasted`` when the caller already has it.
    """
    wasted = _wasted_bits(x)
    s, h = x >> wasted, history >> wasted
    coefs_by_order, errors = analysis or _analyse(s, max_order)
    est = _estimate_bits(errors, s.size, _PRECISIONS[-1])
    orders = [int(p) for p in np.argsort(est, kind="stable")[:candidates]]
    if 0 not in orders:
        orders.append(0)
    best: _SignalPlan | None = None
    for p in orders:
        for precision in (_PRECISIONS if p else (0,)):
            if p:
                q, shift = lpc.quantize(coefs_by_order[p - 1], precision)
                res = lpc.residual(s, h[h.size - p:], q, shift)
            else:
                q, shift, res = np.zeros(0, np.int32), 0, s.astype(np.int32)
            cand = _SignalPlan(wasted, q, shift, precision, res, rc.plan_partitions(res))
            if best is None or cand.bits < best.bits:
                best = cand
    assert best is not None
    return best


def _decode_signal(dec: rans.Decoder, n: int, history: np.ndarray) -> np.ndarray:
    """Inverse of `_SignalPlan.symbols` followed by prediction."""
    wasted = int(rc.decode_raw(dec, 1, 5)[0])
    order = int(rc.decode_raw(dec, 1, 6)[0])
    if order > MAX_ORDER:
        raise BitstreamError(f"corrupt stream: predictor order {order} exceeds {MAX_ORDER}")
    coefs, shift = np.zeros(0, np.int32), 0
    if order:
        precision = int(rc.decode_raw(dec, 1, 4)[0]) + 1
        shift = int(rc.decode_raw(dec, 1, 5)[0])
        coefs = rc.decode_signed_raw(dec, order, precision).astype(np.int32)
    plan = rc.decode_plan(dec, n)
    res = rc.decode_residual(dec, plan)
    if res.size and (res.min() < np.iinfo(np.int32).min or res.max() > np.iinfo(np.int32).max):
        raise BitstreamError("corrupt stream: residual out of range")
    h = history >> wasted
    try:
        s = lpc.restore(res.astype(np.int32), h[h.size - order:], coefs, shift) if order else res
    except ValueError:
        raise BitstreamError("corrupt stream: prediction overflowed") from None
    return s.astype(np.int64) << wasted


def _pcm_crc(x: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(x, dtype="<i4").tobytes())


@register(default_for="audio")
class LosslessAudioCodec(Codec):
    """Bit-exact integer PCM (up to 24 bits, any channel count) at less than FLAC's size."""

    name = "audio-lossless"
    media = "audio"
    lossless = True
    description = "lossless PCM: integer LPC + stereo decorrelation + adaptive rANS (FLAC-like, smaller)"

    def __init__(self, block: int = 4096, blocks_per_chunk: int = 16, max_order: int = MAX_ORDER):
        if not 16 <= block <= 65536 or not 1 <= blocks_per_chunk <= 1024 or not 0 <= max_order <= MAX_ORDER:
            raise MediaError("audio-lossless needs 16 <= block <= 65536, 1 <= blocks_per_chunk <= 1024, "
                             f"0 <= max_order <= {MAX_ORDER}")
        self.block, self.blocks_per_chunk, self.max_order = int(block), int(blocks_per_chunk), int(max_order)

    @property
    def chunk_frames(self) -> int:
        return self.block * self.blocks_per_chunk

    def config(self) -> dict[str, Any]:
        return {"block": self.block, "blocks_per_chunk": self.blocks_per_chunk, "max_order": self.max_order,
                "tables": rc.bank_digest()}

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> "LosslessAudioCodec":
        cfg = header.config
        try:
            codec = cls(int(cfg["block"]), int(cfg["blocks_per_chunk"]), int(cfg["max_order"]))
        except (KeyError, TypeError, ValueError, MediaError):
            raise BitstreamError("corrupt audio-lossless header: bad block configuration") from None
        rc.check_bank(cfg.get("tables"))
        return codec

    # ------------------------------------------------------------------ encode
    def write(self, media: Audio, out: BinaryIO, progress: Progress | None = None) -> None:
        audio = media
        if not isinstance(audio, Audio) or not audio.is_integer:
            raise MediaError("audio-lossless codes integer PCM; this audio is floating point "
                             "(decoded from a lossy format?); choose a lossy audio codec or convert to PCM")
        if (audio.bit_depth or 32) > 24:
            raise MediaError(f"audio-lossless takes PCM up to 24 bits, this is {audio.bit_depth}-bit")
        x = audio.samples.astype(np.int64)
        lim = 1 << (audio.bit_depth - 1)
        if x.size and (x.min() < -lim or x.max() >= lim):
            raise MediaError(f"samples exceed the {audio.bit_depth}-bit range")
        meta = {"media": "audio", "sample_rate": audio.sample_rate, "channels": audio.channels,
                "frames": audio.frames, "bit_depth": audio.bit_depth, "source": audio.source}
        header = bitstream.Header(self.name, self.config(), meta)
        with bitstream.Writer(out, header) as w:
            for start in range(0, audio.frames, self.chunk_frames):
                chunk = x[start:start + self.chunk_frames]
                payload = self._encode_chunk(chunk)
                w.write_chunk(CHUNK_KIND, _CHUNK_HEAD.pack(start, chunk.shape[0], _pcm_crc(chunk)) + payload)
                if progress:
                    progress.update(chunk.shape[0])

    def _encode_chunk(self, x: np.ndarray) -> bytes:
        syms: list[np.ndarray] = []
        idxs: list[np.ndarray] = []
        frames, channels = x.shape
        padded = np.concatenate([np.zeros((MAX_ORDER, channels), np.int64), x])
        for b0 in range(0, frames, self.block):
            blk = padded[MAX_ORDER + b0:MAX_ORDER + b0 + self.block]
            hist = padded[b0:MAX_ORDER + b0]
            if channels == 2:
                mode, plans = self._choose_stereo(blk, hist)
                s, i = rc.raw_symbols(np.array([_MODES.index(mode)]), 2)
                syms.append(s)
                idxs.append(i)
            else:
                plans = [_code_signal(blk[:, c], hist[:, c], self.max_order) for c in range(channels)]
            for p in plans:
                s, i = p.symbols()
                syms.append(s)
                idxs.append(i)
        return rans.encode(np.concatenate(syms), np.concatenate(idxs), rc.table_bank())

    def _choose_stereo(self, blk: np.ndarray, hist: np.ndarray) -> tuple[str, list[_SignalPlan]]:
        """Pick the stereo mode from quick estimates, then code its two signals."""
        sig, his = _stereo_signals(blk), _stereo_signals(hist)
        analyses = {name: _analyse(s >> _wasted_bits(s), self.max_order) for name, s in sig.items()}
        est = {name: float(np.min(_estimate_bits(errors, sig[name].size, _PRECISIONS[-1])))
               for name, (_, errors) in analyses.items()}
        mode = min(_MODES, key=lambda m: sum(est[n] for n in _pair(m)))
        return mode, [_code_signal(sig[n], his[n], self.max_order, analysis=analyses[n]) for n in _pair(mode)]

    # ------------------------------------------------------------------ decode
    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Audio:
        meta = reader.header.metadata
        try:
            rate, channels, frames, depth = (int(meta["sample_rate"]), int(meta["channels"]),
                                             int(meta["frames"]), int(meta["bit_depth"]))
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt audio-lossless header: missing audio metadata") from None
        if not (1 <= channels <= 64 and 1 <= depth <= 24 and frames >= 0 and 1 <= rate <= 10_000_000):
            raise BitstreamError("corrupt audio-lossless header: impossible audio parameters")
        parts: list[np.ndarray] = []
        done = 0
        for chunk in reader:
            if chunk.kind != CHUNK_KIND:
                continue
            parts.append(self._decode_chunk(chunk.payload, done, channels, depth))
            done += parts[-1].shape[0]
            if done > frames:
                raise BitstreamError("corrupt stream: more audio than the header announces")
            if progress:
                progress.update(parts[-1].shape[0])
        if done != frames:
            raise BitstreamError(f"stream holds {done} frames, its header announces {frames}")
        x = np.concatenate(parts) if parts else np.zeros((0, channels), np.int64)
        dtype = np.int16 if depth <= 16 else np.int32
        return Audio(x.astype(dtype), rate, bit_depth=depth, source=dict(meta.get("source") or {}))

    def _decode_chunk(self, payload: bytes, expected_start: int, channels: int, depth: int) -> np.ndarray:
        if len(payload) < _CHUNK_HEAD.size:
            raise BitstreamError("corrupt audio chunk: shorter than its header")
        start, frames, crc = _CHUNK_HEAD.unpack_from(payload)
        if start != expected_start or not 1 <= frames <= self.chunk_frames:
            raise BitstreamError(f"corrupt audio chunk: frames {start}+{frames} do not follow {expected_start}")
        dec = rans.Decoder(memoryview(payload)[_CHUNK_HEAD.size:], rc.table_bank())
        x = np.zeros((MAX_ORDER + frames, channels), np.int64)
        for b0 in range(0, frames, self.block):
            n = min(self.block, frames - b0)
            hist = x[b0:MAX_ORDER + b0]
            if channels == 2:
                mode = _MODES[int(rc.decode_raw(dec, 1, 2)[0])]
                his = _stereo_signals(hist)
                a, b = (_decode_signal(dec, n, his[name]) for name in _pair(mode))
                left, right = _unstereo(mode, a, b)
                x[MAX_ORDER + b0:MAX_ORDER + b0 + n, 0] = left
                x[MAX_ORDER + b0:MAX_ORDER + b0 + n, 1] = right
            else:
                for c in range(channels):
                    x[MAX_ORDER + b0:MAX_ORDER + b0 + n, c] = _decode_signal(dec, n, hist[:, c])
        dec.finish()
        out = x[MAX_ORDER:]
        lim = 1 << (depth - 1)
        if out.min() < -lim or out.max() >= lim or _pcm_crc(out) != crc:
            raise BitstreamError("corrupt audio chunk: decoded samples fail their checksum")
        return out
