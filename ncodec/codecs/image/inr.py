"""``inr``: lossy images by overfitting latent grids and tiny networks to each image (Cool-chic / C3).

Encoding fits a `ncodec.inr.image.LatentImageModel` to the image (`ncodec.inr.fit.fit`, preset
``fast`` / ``medium`` / ``slow``, trade-off ``lmbda`` or ``quality``), quantizes the decoder
networks' weights per tensor by rate-distortion (`ncodec.inr.weights`) and codes everything
with the rANS core. No pretrained weights: the stream carries the decoder.

Stream: the header config holds ``architecture`` (the `ImageInrConfig` fields that differ from
its defaults, which are part of format 1), ``weights`` (two base-32 digits per decoder tensor in
canonical order: step exponent, table rung) and ``tables`` (digest of the coding tables), plus
``lmbda`` and ``preset`` for information; chunk ``WGHT`` is the weights' rANS stream, chunk ``LATN`` the latents'
(coded by the exact ARM, `ncodec.inr.arm`, so they decode on any device). The synthesis is
float: a decoder on another machine may differ in the last bits of some pixels' pre-rounding
values, never in the latents.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch

from ... import bitstream
from ...entropy import rans
from ...errors import BitstreamError, EntropyCodingError, MediaError
from ...inr import tables as tb
from ...inr import weights as wq
from ...inr.arm import ArmCoder
from ...inr.fit import FitResult, fit, total_steps
from ...inr.fit import preset as fit_preset
from ...inr.image import ImageInrConfig, LatentImageModel, complexity
from ...inr.latents import level_shapes
from ...media import Image
from ...progress import Progress
from ...registry import register
from ..base import Codec

FORMAT = 1
WEIGHTS_CHUNK, LATENTS_CHUNK = "WGHT", "LATN"
MAX_PIXELS = 1 << 24          # the float synthesis holds ~100 bytes per pixel
DEFAULT_QUALITY = 4.0
QUALITY_RANGE = (0.0, 10.0)
PRESET_ENV = "NCODEC_INR_PRESET"


def quality_to_lmbda(quality: float) -> float:
    """Quality 0..10 (higher is better) to the rate-distortion trade-off: 0.02 * 2**-quality."""
    return 0.02 * 2.0 ** -float(quality)


@dataclass
class Encoded:
    """An encoding's stream, the decoder output it reproduces (uint8 HxWxC) and the fit's record."""

    data: bytes
    pixels: np.ndarray
    fit: FitResult
    seconds: float


def _to_uint8(recon: torch.Tensor, channels: int) -> np.ndarray:
    """[1, C, H, W] float in [0, 1] -> HxWxC uint8 (NaN as 0)."""
    x = torch.nan_to_num(recon.detach().to("cpu", torch.float32), nan=0.0)
    px = torch.round(x.clamp(0, 1) * 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()
    return px[..., :channels]


@register()
class InrImageCodec(Codec):
    """8-bit gray / RGB images coded by an overfitted neural representation (no pretrained weights)."""

    name = "inr"
    media = "image"
    lossless = False
    pretrained = False
    description = ("lossy images: per-image overfitted latent grids + tiny synthesis, exact autoregressive "
                   "entropy model (Cool-chic / C3 design); slow to encode")

    def __init__(self, quality: float | None = None, lmbda: float | None = None, preset: str | None = None,
                 device: str = "auto", iterations: int | None = None, seed: int = 0, **architecture: Any):
        if lmbda is not None and not (isinstance(lmbda, (int, float)) and 0 < lmbda < 10):
            raise MediaError(f"inr needs 0 < lmbda < 10, got {lmbda!r}")
        q = DEFAULT_QUALITY if quality is None else float(quality)
        if not QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]:
            raise MediaError(f"inr quality must be in {QUALITY_RANGE[0]:g}..{QUALITY_RANGE[1]:g}, got {quality!r}")
        self.lmbda = float(lmbda) if lmbda is not None else quality_to_lmbda(q)
        self.preset = preset or os.environ.get(PRESET_ENV) or "medium"
        try:
            self.fit_config = fit_preset(self.preset, iterations=iterations, seed=seed)
            self.architecture = ImageInrConfig(**architecture)
        except (TypeError, ValueError) as exc:
            raise MediaError(f"inr: {exc}") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise MediaError(f"unknown device {device!r}: {exc}") from None

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> InrImageCodec:
        return cls(device="cpu", preset="fast")  # decoding needs no training settings

    @classmethod
    def eval_fixed_points(cls) -> list[float]:
        """Qualities the evaluation harness runs (lambda 0.01, 0.0025, 6.3e-4, 1.6e-4)."""
        return [1.0, 3.0, 5.0, 7.0]

    @classmethod
    def eval_version(cls) -> str:
        return f"inr-format{FORMAT} preset={os.environ.get(PRESET_ENV) or 'medium'}"

    # --------------------------------------------------------------- encoding
    def encode_image(self, image: Image, progress: Progress | None = None) -> Encoded:
        """Fit, quantize and code ``image``; also returns the pixels the decoder will produce."""
        if not isinstance(image, Image) or image.pixels.dtype != np.uint8 or image.channels not in (1, 3):
            raise MediaError("inr codes 8-bit gray or RGB images (drop alpha, or use wavelet-lossless)")
        if image.num_pixels > MAX_PIXELS:
            raise MediaError(f"image of {image.num_pixels} pixels is larger than inr codes ({MAX_PIXELS})")
        t0 = time.monotonic()
        h, w, c = image.height, image.width, image.channels
        cfg = ImageInrConfig(**{**self.architecture.to_dict(), "channels": c})
        x = torch.from_numpy(np.ascontiguousarray(image.pixels)).permute(2, 0, 1)[None].to(torch.float32) / 255
        with torch.random.fork_rng():
            torch.manual_seed(self.fit_config.seed or 0)
            model = LatentImageModel(cfg, h, w)   # the same initialisation on every run
        enabled = progress.enabled if progress is not None else False
        with Progress(total_steps(self.fit_config), "fit inr", enabled=enabled) as bar:
            result = fit(model, x, self.lmbda, self.fit_config, self.device, bar)
        codes = self._quantize_weights(model, x.to(self.device))
        model.cpu()
        ints = [wq.to_integers(p, code.exponent) for (_, p), code in zip(model.decoder_tensors(), codes)]
        weights = wq.encode_weights(ints, [code.rung for code in codes])
        latents = model.integer_latents()
        latent_stream = ArmCoder(model.arm).encode(latents)
        model.load_integer_latents(latents)
        with torch.no_grad():
            pixels = _to_uint8(model.synthesize(model.quantized_grids("hard")), c)
        config = {"format": FORMAT, "architecture": cfg.changes(), "tables": tb.tables_digest(),
                  "weights": _codes_text(codes), "lmbda": float(f"{self.lmbda:.6g}"), "preset": self.preset}
        meta = {"media": "image", "width": w, "height": h, "channels": c, "bit_depth": 8, "source": image.source}
        data = bitstream.pack(bitstream.Header(self.name, config, meta),
                              [(WEIGHTS_CHUNK, weights), (LATENTS_CHUNK, latent_stream)], index=False)
        return Encoded(data, pixels, result, time.monotonic() - t0)

    def _quantize_weights(self, model: LatentImageModel, x: torch.Tensor) -> list[wq.TensorCode]:
        """Per-tensor steps by rate-distortion, with the latents hard-rounded (the model is changed in place)."""
        pixels = x[0, 0].numel()
        with torch.no_grad():
            grids = [g.detach() for g in model.quantized_grids("hard")]

            def cost(group: str) -> float:
                if group == "arm":
                    return self.lmbda * float(model.latent_bits(grids)) / pixels
                return float(torch.mean((model.synthesize(grids).clamp(0, 1) - x) ** 2))

            return wq.rd_quantize(model.decoder_tensors(), cost, self.lmbda / pixels)

    def write(self, media: Image, out: BinaryIO, progress: Progress | None = None) -> None:
        out.write(self.encode_image(media, progress).data)
        if progress:
            progress.update(1)

    # --------------------------------------------------------------- decoding
    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        header = reader.header
        h, w, c, cfg, codes = _parse_header(header)
        chunks: dict[str, bytes] = {}
        for chunk in reader:
            if chunk.kind in (WEIGHTS_CHUNK, LATENTS_CHUNK):
                if chunk.kind in chunks:
                    raise BitstreamError(f"corrupt inr stream: two {chunk.kind!r} chunks")
                chunks[chunk.kind] = chunk.payload
        if set(chunks) != {WEIGHTS_CHUNK, LATENTS_CHUNK}:
            raise BitstreamError("corrupt inr stream: the weights or latents chunk is missing")
        latents = sum(a * b for a, b in level_shapes(h, w, cfg.levels))
        announced = rans.read_header(chunks[LATENTS_CHUNK]).n  # checked before anything image-sized is built
        room = rans.max_symbols(len(chunks[LATENTS_CHUNK]), tb.latent_tables().precision)
        if announced != latents or latents > room:
            raise BitstreamError(f"corrupt inr stream: {announced} latents coded, the image needs {latents}")
        model = LatentImageModel(cfg, h, w)
        tensors = model.decoder_tensors()
        if len(codes) != len(tensors):
            raise BitstreamError(f"corrupt inr header: {len(codes)} weight codes for {len(tensors)} tensors")
        try:
            ints = wq.decode_weights(chunks[WEIGHTS_CHUNK], [p.numel() for _, p in tensors],
                                     [code.rung for code in codes])
            with torch.no_grad():
                for (_, p), code, k in zip(tensors, codes, ints):
                    p.copy_(wq.from_integers(k, code.exponent, p))
            grids = ArmCoder(model.arm).decode(chunks[LATENTS_CHUNK], model.latents.shapes)
        except EntropyCodingError as exc:
            raise BitstreamError(f"corrupt inr stream: {exc}") from None
        model.load_integer_latents(grids)
        with torch.no_grad():
            pixels = _to_uint8(model.synthesize(model.quantized_grids("hard")), c)
        if progress:
            progress.update(1)
        return Image(pixels, 8, source=dict(header.metadata.get("source") or {}))

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        """Decoder complexity (MACs per pixel) and the encoding settings, for `ncodec info`."""
        try:
            h, w, _, cfg, _ = _parse_header(header)
        except BitstreamError:
            return {}
        macs = complexity(cfg, h, w)
        sizes = {k.kind: k.length for k in chunks}
        return {"decoder": f"{macs['total']:.0f} MACs/pixel (ARM {macs['arm']:.0f}, upsampler "
                           f"{macs['upsampler']:.0f}, synthesis {macs['synthesis']:.0f})",
                "macs": round(macs["total"], 1),
                "network": (f"{cfg.levels} latent levels; synthesis {cfg.syn_layers}x{cfg.syn_hidden} + "
                            f"{cfg.residual} residual 3x3; ARM {cfg.arm_context} neighbours, "
                            f"{cfg.arm_layers}x{cfg.arm_hidden}; {cfg.upsampler} upsampler"),
                "payload": f"weights {sizes.get(WEIGHTS_CHUNK)} bytes, latents {sizes.get(LATENTS_CHUNK)} bytes",
                "fit": f"preset {header.config.get('preset')}, lambda {header.config.get('lmbda')}"}

_DIGITS = "0123456789abcdefghijklmnopqrstuv"   # base 32: exponent and rung of a tensor, two digits


def _codes_text(codes: list[wq.TensorCode]) -> str:
    """Weight codes as a compact string: two base-32 digits (step exponent, table rung) per tensor."""
    return "".join(_DIGITS[c.exponent] + _DIGITS[c.rung] for c in codes)


def _parse_codes(text: Any) -> list[wq.TensorCode]:
    """The inverse of `_codes_text` (ValueError on anything malformed)."""
    if not isinstance(text, str) or len(text) % 2 or len(text) > 8192 or any(ch not in _DIGITS for ch in text):
        raise ValueError("bad weight codes")
    return [wq.TensorCode(_DIGITS.index(a), _DIGITS.index(b)) for a, b in zip(text[::2], text[1::2])]


def _parse_header(header: bitstream.Header) -> tuple[int, int, int, ImageInrConfig, list[wq.TensorCode]]:
    """(height, width, channels, architecture, weight codes) of a stream, all checked."""
    meta, cfg = header.metadata, header.config
    try:
        h, w, c = int(meta["height"]), int(meta["width"]), int(meta["channels"])
        fmt = cfg["format"]
        arch = ImageInrConfig.from_changes(cfg["architecture"])
        codes = _parse_codes(cfg["weights"])
        digest = cfg["tables"]
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("corrupt inr header: bad or missing configuration") from None
    if fmt != FORMAT:
        raise BitstreamError(f"inr stream format {fmt!r} is not supported (this ncodec reads {FORMAT})")
    if not (1 <= h <= 1 << 16 and 1 <= w <= 1 << 16 and h * w <= MAX_PIXELS and c in (1, 3) and arch.channels == c):
        raise BitstreamError("corrupt inr header: impossible image parameters")
    if not all(0 <= k.exponent <= wq.MAX_EXPONENT and 0 <= k.rung < tb.WEIGHT_RUNGS
                                    for k in codes):
        raise BitstreamError("corrupt inr header: bad weight step or table")
    if digest != tb.tables_digest():
        raise BitstreamError("inr stream was made with other coding tables than this ncodec builds")
    return h, w, c, arch, codes

