"""What the codecs that fit a network to each signal share (``inr`` images, ``nerv`` video).

Their streams carry the decoder: weights quantized per tensor (`ncodec.inr.weights`, one
step exponent and table rung per tensor, written in the header as two base-32 digits each)
in chunk ``WGHT``, and integer latents coded by the exact ARM in chunk ``LATN``. This module
holds the option parsing, the weight-code text, and the checked reading of those chunks.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import bitstream
from ..entropy import rans
from ..errors import BitstreamError, EntropyCodingError, MediaError
from ..inr import tables as tb
from ..inr import weights as wq
from ..inr.fit import FitConfig
from ..inr.fit import preset as fit_preset

WEIGHTS_CHUNK, LATENTS_CHUNK = "WGHT", "LATN"
QUALITY_RANGE = (0.0, 10.0)
DEFAULT_QUALITY = 4.0
_DIGITS = "0123456789abcdefghijklmnopqrstuv"   # base 32: exponent and rung of a tensor, two digits


def quality_to_lmbda(quality: float) -> float:
    """Quality 0..10 (higher is better) to the rate-distortion trade-off: 0.02 * 2**-quality."""
    return 0.02 * 2.0 ** -float(quality)


@dataclass(frozen=True)
class FitSettings:
    """A fitted codec's encoding options, checked: quality, trade-off, preset, training settings, device."""

    quality: float
    lmbda: float
    preset: str
    fit: FitConfig
    device: torch.device


def fit_settings(codec: str, quality: float | None, lmbda: float | None, preset: str | None, preset_env: str,
                 device: str, iterations: int | None, seed: int,
                 to_lmbda: Callable[[float], float] = quality_to_lmbda) -> FitSettings:
    """Check and resolve the options (``preset`` falls back to ``$preset_env``, then ``medium``;
    ``device`` ``auto`` is CUDA when there is one); `MediaError` on anything invalid."""
    if lmbda is not None and not (isinstance(lmbda, (int, float)) and 0 < lmbda < 10):
        raise MediaError(f"{codec} needs 0 < lmbda < 10, got {lmbda!r}")
    q = DEFAULT_QUALITY if quality is None else float(quality)
    if not QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]:
        raise MediaError(f"{codec} quality must be in {QUALITY_RANGE[0]:g}..{QUALITY_RANGE[1]:g}, got {quality!r}")
    name = preset or os.environ.get(preset_env) or "medium"
    try:
        config = fit_preset(name, iterations=iterations, seed=seed)
    except (TypeError, ValueError) as exc:
        raise MediaError(f"{codec}: {exc}") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise MediaError(f"unknown device {device!r}: {exc}") from None
    return FitSettings(q, float(lmbda) if lmbda is not None else to_lmbda(q), name, config, torch_device)


def codes_text(codes: list[wq.TensorCode]) -> str:
    """Weight codes as a compact string: two base-32 digits (step exponent, table rung) per tensor."""
    return "".join(_DIGITS[c.exponent] + _DIGITS[c.rung] for c in codes)


def parse_codes(text: object) -> list[wq.TensorCode]:
    """The inverse of `codes_text` (ValueError on anything malformed)."""
    if not isinstance(text, str) or len(text) % 2 or len(text) > 8192 or any(ch not in _DIGITS for ch in text):
        raise ValueError("bad weight codes")
    return [wq.TensorCode(_DIGITS.index(a), _DIGITS.index(b)) for a, b in zip(text[::2], text[1::2])]


def check_codes(codec: str, codes: list[wq.TensorCode], digest: object) -> None:
    """Weight codes within range and the coding tables this ncodec builds; BitstreamError otherwise."""
    if not all(0 <= k.exponent <= wq.MAX_EXPONENT and 0 <= k.rung < tb.WEIGHT_RUNGS for k in codes):
        raise BitstreamError(f"corrupt {codec} header: bad weight step or table")
    if digest != tb.tables_digest():
        raise BitstreamError(f"{codec} stream was made with other coding tables than this ncodec builds")


def read_chunks(codec: str, reader: bitstream.Reader) -> dict[str, bytes]:
    """The weights and latents chunks, each exactly once."""
    chunks: dict[str, bytes] = {}
    for chunk in reader:
        if chunk.kind in (WEIGHTS_CHUNK, LATENTS_CHUNK):
            if chunk.kind in chunks:
                raise BitstreamError(f"corrupt {codec} stream: two {chunk.kind!r} chunks")
            chunks[chunk.kind] = chunk.payload
    if set(chunks) != {WEIGHTS_CHUNK, LATENTS_CHUNK}:
        raise BitstreamError(f"corrupt {codec} stream: the weights or latents chunk is missing")
    return chunks


def check_count(codec: str, data: bytes, needed: int, precision: int, what: str) -> None:
    """The rANS stream announces ``needed`` symbols and is long enough to hold them (before allocating)."""
    announced = rans.read_header(data).n
    if announced != needed or needed > rans.max_symbols(len(data), precision):
        raise BitstreamError(f"corrupt {codec} stream: {announced} {what} coded, the signal needs {needed}")


def load_weights(codec: str, tensors: list[tuple[str, torch.nn.Parameter]], codes: list[wq.TensorCode],
                 data: bytes) -> None:
    """Decode the ``WGHT`` stream into the decoder's tensors (in place)."""
    if len(codes) != len(tensors):
        raise BitstreamError(f"corrupt {codec} header: {len(codes)} weight codes for {len(tensors)} tensors")
    check_count(codec, data, sum(p.numel() for _, p in tensors), tb.weight_tables().precision, "weights")
    try:
        ints = wq.decode_weights(data, [p.numel() for _, p in tensors], [code.rung for code in codes])
    except EntropyCodingError as exc:
        raise BitstreamError(f"corrupt {codec} stream: {exc}") from None
    with torch.no_grad():
        for (_, p), code, k in zip(tensors, codes, ints):
            p.copy_(wq.from_integers(k, code.exponent, p))
