"""What the codecs that fit a network to each signal share (``inr`` images, ``nerv`` video).

Their streams carry the decoder: weights quantized per tensor (`ncodec.models.inr.weights`, one
step exponent and table rung per tensor, written in the header as two base-32 digits each)
in chunk ``WGHT``, and integer latents coded by the exact ARM in chunk ``LATN``. This module
holds the option parsing, the weight-code text, and the checked reading of those chunks.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .. import bitstream
from ..entropy import rans
from ..errors import BitstreamError, EntropyCodingError, MediaError
from ..models.inr import tables as tb
from ..models.inr import weights as wq
from ..models.inr.arm import Arm, ArmCoder
from ..models.inr.fit import FitConfig
from ..models.inr.fit import preset as fit_preset
from .base import Codec

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


class FittedModel(Protocol):
    """What a fitted codec's model gives for coding: its decoder tensors, its ARM and its integer latents."""

    arm: Arm

    def decoder_tensors(self) -> list[tuple[str, torch.nn.Parameter]]: ...

    def integer_latents(self) -> list[Any]: ...

    def load_integer_latents(self, grids: list[Any]) -> None: ...


class FittedCodec(Codec):
    """Base of the codecs that fit a network to each signal."""

    pretrained = False

    def _use(self, settings: FitSettings) -> None:
        """Keep the resolved fit options: quality, lambda, preset, fit schedule, device."""
        self.quality, self.lmbda, self.preset = settings.quality, settings.lmbda, settings.preset
        self.fit_config, self.device = settings.fit, settings.device

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> FittedCodec:
        return cls(device="cpu", preset="fast")  # decoding needs no training settings

    @classmethod
    def eval_fixed_points(cls) -> list[float]:
        """Qualities the evaluation harness runs (lambda 0.01, 0.0025, 6.3e-4, 1.6e-4)."""
        return [1.0, 3.0, 5.0, 7.0]


def quantize_weights(model: FittedModel, lmbda: float, pixels: int, latent_bits: Callable[[], Any],
                     recon_error: Callable[[], Any]) -> list[wq.TensorCode]:
    """Per-tensor steps by rate-distortion (`ncodec.models.inr.weights.rd_quantize`; the model is changed in
    place): the ARM's tensors are judged by the latents' rate in bits, the others by the
    reconstruction's mean squared error, traded at ``lmbda`` per pixel."""
    def cost(group: str) -> float:
        return lmbda * float(latent_bits()) / pixels if group == "arm" else float(recon_error())

    with torch.no_grad():
        return wq.rd_quantize(model.decoder_tensors(), cost, lmbda / pixels)


def pack_stream(codec: str, fmt: int, architecture: dict[str, Any], codes: list[wq.TensorCode], model: FittedModel,
                lmbda: float, preset: str, meta: dict[str, Any]) -> bytes:
    """The whole stream of a fitted model (on the CPU): its weights at ``codes`` in ``WGHT``, its
    integer latents by the ARM in ``LATN``. The model is left holding the rounded latents, so it
    then synthesizes exactly what a decoder of the stream will."""
    ints = [wq.to_integers(p, code.exponent) for (_, p), code in zip(model.decoder_tensors(), codes)]
    weights = wq.encode_weights(ints, [code.rung for code in codes])
    latents = model.integer_latents()
    latent_stream = ArmCoder(model.arm).encode(latents)
    model.load_integer_latents(latents)
    config = {"format": fmt, "architecture": architecture, "tables": tb.tables_digest(),
              "weights": codes_text(codes), "lmbda": float(f"{lmbda:.6g}"), "preset": preset}
    return bitstream.pack(bitstream.Header(codec, config, meta),
                          [(WEIGHTS_CHUNK, weights), (LATENTS_CHUNK, latent_stream)], index=False)
