"""``learned``: lossy images with the hyperprior-family models of `models`, in the container.

A stream names its model (zoo name, architecture, N, M, quality) in the header and carries
the model hash; the decoder finds the same weights in the local zoo (`ncodec.zoo`) or takes
them from ``model=`` (a ``.safetensors`` path). Entropy parameters are always computed with
the exact integer hyper-synthesis (``model.exact = True``), so a stream encoded on one
device, thread count or dtype decodes on any other; the synthesis transform itself is float.
One chunk per coded string: ``LATZ`` (hyper-latent, absent for the factorized prior) then
``LATY`` (latent).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ... import bitstream, zoo
from ...errors import BitstreamError, MediaError, ModelFileError
from ...media.types import Image
from ...progress import Progress
from ..registry import register
from ..base import Codec
from ...models.image.hyperprior import HyperpriorModel, ImageCompressionModel
from ...models.image.variable_rate import LEVELS, GainedMeanScaleHyperprior

DEFAULT_MODEL = "mbt2018-mean-tiny"
DEFAULT_VARIABLE_QUALITY = 4.0   # a variable-rate model's quality when none is given
MAX_PIXELS = 1 << 26        # 64 Mpixel: the float synthesis of a larger image would need tens of GB
Y_CHUNK, Z_CHUNK = "LATY", "LATZ"


def _fixed_quality(quality: float | None) -> int | None:
    if quality is not None and not float(quality).is_integer():
        raise MediaError(f"learned models have integer qualities (the zoo's files), got {quality!r}; "
                         f"variable-rate models take any quality in 1-{LEVELS}")
    return None if quality is None else int(quality)


def _model_from_option(model: str | os.PathLike | None, quality: float | None
                       ) -> tuple[ImageCompressionModel, dict[str, Any]]:
    """(network, facts) for a zoo name or a weights path. A fixed-rate model's quality picks among a zoo
    name's files (an integer); a variable-rate model codes at ``quality`` itself (1.0 ... 8.0)."""
    name = DEFAULT_MODEL if model is None else str(model)
    if name.endswith(".safetensors") or os.sep in name or Path(name).is_file():
        net, facts = zoo.load_model(name)
        facts.update(name=Path(name).stem)
        file_quality = None
    else:
        entry = zoo.find_model(name, None if quality is None or not float(quality).is_integer() else int(quality))
        net, facts = zoo.load_model(entry.path)
        facts.update(name=entry.name)
        file_quality = entry.quality
    if facts["architecture"] in zoo.VARIABLE_RATE:
        q = DEFAULT_VARIABLE_QUALITY if quality is None else float(quality)
        if not 1.0 <= q <= LEVELS:
            raise MediaError(f"variable-rate models code qualities 1-{LEVELS}, got {quality!r}")
        facts["quality"] = q
    else:
        fixed = _fixed_quality(quality)
        facts["quality"] = file_quality if file_quality is not None else fixed
    return net, facts


@register(default_for="image", priority=10)
class LearnedImageCodec(Codec):
    """8-bit gray / RGB images through a learned transform codec from the zoo or a weights file."""

    name = "learned"
    media = "image"
    lossless = False
    pretrained = True
    description = ("lossy images: learned hyperprior-family models (CompressAI-compatible weights), "
                   "entropy parameters exact on every device")
    quality_scale = ("quality 1-8 (higher is better; CompressAI's levels, fractional for a variable-rate model), "
                     "default: the model's middle level; no rate target")

    def __init__(self, model: str | os.PathLike | None = None, quality: float | None = None, device: str = "cpu"):
        if quality is not None:
            try:
                quality = float(quality)
            except (TypeError, ValueError):
                raise MediaError(f"quality must be a number, got {quality!r}") from None
            if not (math.isfinite(quality) and 0 <= quality <= 99):
                raise MediaError(f"learned qualities lie in 0-99 (zoo files) or 1-{LEVELS} (variable-rate), "
                                 f"got {quality!r}")
        self.net, self.facts = _model_from_option(model, quality)
        #: One model for every rate: the quality travels in the stream and steers the gains.
        self.variable = isinstance(self.net, GainedMeanScaleHyperprior)
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise MediaError(f"unknown device {device!r}: {exc}") from None
        self.net.to(self.device)
        if isinstance(self.net, HyperpriorModel):
            self.net.exact = True

    @classmethod
    def accepts(cls, media: Any) -> bool:
        """Default codec for 8-bit gray / RGB images when the default model is installed."""
        if not (isinstance(media, Image) and media.pixels.dtype == np.uint8 and media.channels in (1, 3)):
            return False
        return any(z.name == DEFAULT_MODEL for z in zoo.zoo_models())

    @classmethod
    def eval_fixed_points(cls) -> list[int]:
        """The evaluation harness's operating points: every installed quality of the default model."""
        return [z.quality for z in zoo.zoo_models() if z.name == DEFAULT_MODEL]

    @classmethod
    def eval_version(cls) -> str:
        """Part of the harness's cache key: which files the default model's qualities are."""
        import hashlib

        found = [z for z in zoo.zoo_models() if z.name == DEFAULT_MODEL]
        return hashlib.sha256(b"".join(z.path.read_bytes() for z in found)).hexdigest()[:16]

    # --------------------------------------------------------------- header
    def model_hash(self) -> str | None:
        return str(self.facts["hash"])

    def _config(self, latent: list[int]) -> dict[str, Any]:
        f = self.facts
        return {"model": f["name"], "quality": f["quality"], "architecture": f["architecture"], "N": f["N"],
                "M": f["M"], "K": f["K"], "latent": latent, "exact": True}

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> LearnedImageCodec:
        cfg = header.config
        try:
            name, quality = str(cfg["model"]), cfg.get("quality")
            quality = None if quality is None else float(quality)
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt learned-image header: no model name") from None
        model = options.get("model")
        try:
            codec = cls(model=model if model is not None else name, quality=quality,
                        device=options.get("device", "cpu"))
        except MediaError as exc:
            raise BitstreamError(f"corrupt learned-image header: {exc}") from None
        except ModelFileError as exc:
            if model is not None:
                raise
            raise ModelFileError(f"this stream was made with model {name!r} quality {quality}, which is not in "
                                 f"the local zoo ({exc}); pass the weights with --model / model=") from None
        for key in ("architecture", "N", "M", "K"):
            if cfg.get(key) != codec.facts[key]:
                raise BitstreamError(f"stream header says {key}={cfg.get(key)!r}, the model has "
                                     f"{codec.facts[key]!r}")
        return codec

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        cfg = header.config
        return {"model": f"{cfg.get('model')} q{cfg.get('quality')} ({cfg.get('architecture')}, "
                         f"N={cfg.get('N')}, M={cfg.get('M')})", "entropy parameters": "exact integer"}

    # --------------------------------------------------------------- coding
    def write(self, media: Image, out: BinaryIO, progress: Progress | None = None) -> None:
        image = media
        if not isinstance(image, Image) or image.pixels.dtype != np.uint8 or image.channels not in (1, 3):
            raise MediaError("learned codes 8-bit gray or RGB images (for alpha or 16-bit use wavelet-lossless)")
        if image.num_pixels > MAX_PIXELS:
            raise MediaError(f"image of {image.num_pixels} pixels is larger than learned codes ({MAX_PIXELS})")
        px = torch.tensor(image.pixels, dtype=torch.float32).permute(2, 0, 1)[None]  # a copy: pixels may be read-only
        x = px.expand(1, 3, -1, -1) if image.channels == 1 else px
        x = x.to(self.device).div(255)
        enc = self.net.compress(x, quality=self.facts["quality"]) if self.variable else self.net.compress(x)
        strings = [s[0] for s in enc["strings"]]
        chunks = [(Y_CHUNK, strings[0])] + ([(Z_CHUNK, strings[1])] if len(strings) > 1 else [])
        meta = {"media": "image", "width": image.width, "height": image.height, "channels": image.channels,
                "bit_depth": 8, "source": image.source}
        header = bitstream.Header(self.name, self._config([int(s) for s in enc["shape"]]), meta, self.model_hash())
        out.write(bitstream.pack(header, chunks))
        if progress:
            progress.update(1)

    def _expected_latent(self, h: int, w: int) -> list[int]:
        """The coded shape for an image size: the hyper-latent's for hyperprior models, else the latent's."""
        per = self.net.stride if isinstance(self.net, HyperpriorModel) else 16
        return [math.ceil(h / per), math.ceil(w / per)]

    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        meta, cfg = reader.header.metadata, reader.header.config
        try:
            h, w, c = int(meta["height"]), int(meta["width"]), int(meta["channels"])
            latent = [int(v) for v in cfg["latent"]]
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt learned-image header: missing image metadata") from None
        if not (1 <= h <= 1 << 16 and 1 <= w <= 1 << 16 and c in (1, 3)) or h * w > MAX_PIXELS:
            raise BitstreamError(f"corrupt learned-image header: impossible image {w}x{h}x{c}")
        if latent != self._expected_latent(h, w):
            raise BitstreamError(f"corrupt learned-image header: latent {latent} does not match a {w}x{h} image")
        found: dict[str, bytes] = {}
        for chunk in reader:
            if chunk.kind in (Y_CHUNK, Z_CHUNK):
                if chunk.kind in found:
                    raise BitstreamError(f"stream holds two {chunk.kind} chunks")
                found[chunk.kind] = bytes(chunk.payload)
        kinds = [Y_CHUNK] + ([Z_CHUNK] if isinstance(self.net, HyperpriorModel) else [])
        missing = [k for k in kinds if k not in found]
        if missing:
            raise BitstreamError(f"stream lacks the {', '.join(missing)} chunk(s)")
        strings = [[found[k]] for k in kinds]
        with torch.no_grad():
            extra = {"quality": self.facts["quality"]} if self.variable else {}
            x_hat = self.net.decompress(strings, latent, size=(h, w), **extra)["x_hat"]
        px = torch.round(x_hat[0] * 255).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        if c == 1:  # coded as gray RGB: the mean of the three decoded planes
            px = np.round(x_hat[0].mean(0).mul(255).clamp(0, 255).cpu().numpy())[..., None].astype(np.uint8)
        if progress:
            progress.update(1)
        return Image(np.ascontiguousarray(px), 8, source=dict(meta.get("source") or {}))
