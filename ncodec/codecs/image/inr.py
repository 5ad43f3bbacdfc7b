"""``inr``: lossy images by overfitting latent grids and tiny networks to each image (Cool-chic / C3).

Encoding fits a `ncodec.models.inr.image.LatentImageModel` to the image (`ncodec.models.inr.fit.fit`, preset
``fast`` / ``medium`` / ``slow``, trade-off ``lmbda`` or ``quality``), quantizes the decoder
networks' weights per tensor by rate-distortion (`ncodec.models.inr.weights`) and codes everything
with the rANS core. No pretrained weights: the stream carries the decoder.

Stream: the header config holds ``architecture`` (the `ImageInrConfig` fields that differ from
its defaults, which are part of format 1), ``weights`` (two base-32 digits per decoder tensor in
canonical order: step exponent, table rung) and ``tables`` (digest of the coding tables), plus
``lmbda`` and ``preset`` for information; chunk ``WGHT`` is the weights' rANS stream, chunk ``LATN`` the latents'
(coded by the exact ARM, `ncodec.models.inr.arm`, so they decode on any device). The synthesis is
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
from ...errors import BitstreamError, EntropyCodingError, MediaError
from ...models.inr import tables as tb
from ...models.inr import weights as wq
from ...models.inr.arm import ArmCoder
from ...models.inr.fit import FitResult, fit, total_steps
from ...models.inr.image import ImageInrConfig, LatentImageModel, complexity
from ...models.inr.latents import level_shapes
from ...media.types import Image
from ...progress import Progress
from ..registry import register
from .. import fitted
from ..fitted import LATENTS_CHUNK, WEIGHTS_CHUNK

FORMAT = 1
MAX_PIXELS = 1 << 24          # the float synthesis holds ~100 bytes per pixel
PRESET_ENV = "NCODEC_INR_PRESET"


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
class InrImageCodec(fitted.FittedCodec):
    """8-bit gray / RGB images coded by an overfitted neural representation (no pretrained weights)."""

    name = "inr"
    media = "image"
    lossless = False
    description = ("lossy images: per-image overfitted latent grids + tiny synthesis, exact autoregressive "
                   "entropy model (Cool-chic / C3 design); slow to encode")
    quality_scale = ('quality 0-10 (higher is better; lambda = 0.02 * 2**-quality), default 4; no rate target (fits '
                     'minutes per image)')

    def __init__(self, quality: float | None = None, lmbda: float | None = None, preset: str | None = None,
                 device: str = "auto", iterations: int | None = None, seed: int = 0, **architecture: Any):
        self._use(fitted.fit_settings(self.name, quality, lmbda, preset, PRESET_ENV, device, iterations, seed))
        try:
            self.architecture = ImageInrConfig(**architecture)
        except (TypeError, ValueError) as exc:
            raise MediaError(f"inr: {exc}") from None

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
        x = torch.tensor(image.pixels, dtype=torch.float32).permute(2, 0, 1)[None] / 255  # a copy: pixels may be read-only
        with torch.random.fork_rng():
            torch.manual_seed(self.fit_config.seed or 0)
            model = LatentImageModel(cfg, h, w)   # the same initialisation on every run
        enabled = progress.enabled if progress is not None else False
        with Progress(total_steps(self.fit_config), "fit inr", enabled=enabled) as bar:
            result = fit(model, x, self.lmbda, self.fit_config, self.device, bar)
        codes = self._quantize_weights(model, x.to(self.device))
        model.cpu()
        meta = {"media": "image", "width": w, "height": h, "channels": c, "bit_depth": 8, "source": image.source}
        data = fitted.pack_stream(self.name, FORMAT, cfg.changes(), codes, model, self.lmbda, self.preset, meta)
        with torch.no_grad():
            pixels = _to_uint8(model.synthesize(model.quantized_grids("hard")), c)
        return Encoded(data, pixels, result, time.monotonic() - t0)

    def _quantize_weights(self, model: LatentImageModel, x: torch.Tensor) -> list[wq.TensorCode]:
        """Per-tensor steps by rate-distortion, with the latents hard-rounded (the model is changed in place)."""
        with torch.no_grad():
            grids = [g.detach() for g in model.quantized_grids("hard")]
        return fitted.quantize_weights(
            model, self.lmbda, x[0, 0].numel(), lambda: model.latent_bits(grids),
            lambda: torch.mean((model.synthesize(grids).clamp(0, 1) - x) ** 2))

    def write(self, media: Image, out: BinaryIO, progress: Progress | None = None) -> None:
        out.write(self.encode_image(media, progress).data)
        if progress:
            progress.update(1)

    # --------------------------------------------------------------- decoding
    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        header = reader.header
        h, w, c, cfg, codes = _parse_header(header)
        chunks = fitted.read_chunks(self.name, reader)
        latents = sum(a * b for a, b in level_shapes(h, w, cfg.levels))
        fitted.check_count(self.name, chunks[LATENTS_CHUNK], latents, tb.latent_tables().precision, "latents")
        model = LatentImageModel(cfg, h, w)
        fitted.load_weights(self.name, model.decoder_tensors(), codes, chunks[WEIGHTS_CHUNK])
        try:
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

def _parse_header(header: bitstream.Header) -> tuple[int, int, int, ImageInrConfig, list[wq.TensorCode]]:
    """(height, width, channels, architecture, weight codes) of a stream, all checked."""
    meta, cfg = header.metadata, header.config
    try:
        h, w, c = int(meta["height"]), int(meta["width"]), int(meta["channels"])
        fmt = cfg["format"]
        arch = ImageInrConfig.from_changes(cfg["architecture"])
        codes = fitted.parse_codes(cfg["weights"])
        digest = cfg["tables"]
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("corrupt inr header: bad or missing configuration") from None
    if fmt != FORMAT:
        raise BitstreamError(f"inr stream format {fmt!r} is not supported (this ncodec reads {FORMAT})")
    if not (1 <= h <= 1 << 16 and 1 <= w <= 1 << 16 and h * w <= MAX_PIXELS and c in (1, 3) and arch.channels == c):
        raise BitstreamError("corrupt inr header: impossible image parameters")
    fitted.check_codes("inr", codes, digest)
    return h, w, c, arch, codes

