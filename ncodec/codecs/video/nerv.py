"""``nerv``: lossy video by overfitting per-frame embeddings and one conv decoder to each clip (HNeRV style).

Encoding sizes a `ncodec.models.inr.nerv.NervModel` to the clip (`sized_config`: the embedding stride
from the frame size, the conv widths from a weight budget that grows with the quality and the
clip's pixel count), fits it (`ncodec.models.inr.fit.fit`, preset ``fast`` / ``medium`` / ``slow``,
trade-off ``lmbda`` or ``quality``), quantizes the decoder networks' weights per tensor by
rate-distortion (`ncodec.models.inr.weights`) and codes everything with the rANS core. No pretrained
weights: the stream carries the decoder.

Stream: the header config holds ``architecture`` (the `VideoInrConfig` fields that differ from
its defaults, which are part of format 1), ``weights`` (two base-32 digits per decoder tensor in
canonical order: step exponent, table rung), ``tables`` (digest of the coding tables), plus
``lmbda`` and ``preset`` for information; the metadata has the frame count, size and rate. Chunk
``WGHT`` is the weights' rANS stream, chunk ``LATN`` the integer embeddings' (coded by the exact
ARM, so they decode identically on any device). The synthesis is float: a decoder on another
machine may differ in the last bits of some pixels' pre-rounding values, never in the embeddings.
"""
from __future__ import annotations

import math
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
from ...models.inr.nerv import (MAX_WIDTH, NervModel, VideoInrConfig, complexity, embedding_shape, frames_tensor,
                                grid_shapes, network_parameters)
from ...media.types import Video
from ...progress import Progress
from ..registry import register
from .. import fitted
from ..fitted import LATENTS_CHUNK, WEIGHTS_CHUNK

FORMAT = 1
MAX_FRAMES = 1 << 16
MAX_SIDE = 1 << 14
MAX_FRAME_PIXELS = 1 << 23    # 4K is 2**23.0; the decoder synthesizes one frame at a time
MAX_VOXELS = 1 << 30          # frames x pixels: the decoded clip is 3 bytes per voxel
MAX_LATENTS = 1 << 26
MAX_PARAMETERS = 1 << 22
PRESET_ENV = "NCODEC_NERV_PRESET"
ITERATIONS_ENV = "NCODEC_NERV_ITERATIONS"
RD_FRAMES = 8                 # frames the weight quantization measures its distortion on
WEIGHT_SHARE = 0.5            # share of a clip's bits the sizing gives the decoder weights
BITS_PER_WEIGHT = 5.0         # what a quantized weight costs, about
EMBEDDING_POSITIONS = 128     # sizing: aim for about this many embedding positions per frame
LATENT_WIDTH_RATIO = 1.5      # sizing: each block is this much narrower than the one before


def quality_to_bpp(quality: float) -> float:
    """The rate (bits per pixel) a quality aims at, for sizing the model: 0.05 * 2**(quality / 2)."""
    return 0.05 * 2.0 ** (float(quality) / 2)


def sized_config(quality: float, frames: int, height: int, width: int, **changes: Any) -> VideoInrConfig:
    """An architecture for a clip: stride from the frame size, widths from the weight budget; ``changes`` win.

    The embeddings get about ``EMBEDDING_POSITIONS`` positions per frame (stride 2**n, n in 2..6);
    the widths shrink by ``LATENT_WIDTH_RATIO`` per block, scaled so that the decoder has about
    ``WEIGHT_SHARE * quality_to_bpp(quality) * T * H * W / BITS_PER_WEIGHT`` weights.
    """
    base = VideoInrConfig(**{k: v for k, v in changes.items() if k not in ("strides", "widths")})
    n = min(6, max(2, round(math.log(max(height * width, 1) / EMBEDDING_POSITIONS, 4))))
    strides = tuple(changes.get("strides", (2,) * n))
    budget = WEIGHT_SHARE * quality_to_bpp(quality) * frames * height * width / BITS_PER_WEIGHT

    def widths_for(first: float) -> tuple[int, ...]:
        return tuple(max(4, min(MAX_WIDTH, round(first / LATENT_WIDTH_RATIO ** i))) for i in range(len(strides)))

    first = 4.0
    while first < MAX_WIDTH:
        candidate = VideoInrConfig(**{**base.to_dict(), "strides": strides, "widths": widths_for(first * 1.1)})
        if network_parameters(candidate) > budget:
            break
        first *= 1.1
    widths = tuple(changes.get("widths", widths_for(first)))
    return VideoInrConfig(**{**base.to_dict(), "strides": strides, "widths": widths})


@dataclass
class Encoded:
    """An encoding's stream, the frames the decoder will produce ([T, H, W, 3] uint8) and the fit's record."""

    data: bytes
    frames: np.ndarray
    fit: FitResult
    seconds: float


@register(default_for="video")
class NervVideoCodec(fitted.FittedCodec):
    """8-bit RGB video coded by an overfitted neural representation (no pretrained weights)."""

    name = "nerv"
    media = "video"
    lossless = False
    description = ("lossy video: per-clip overfitted frame embeddings + upsampling conv decoder (HNeRV design), "
                   "exact autoregressive entropy model of the embeddings; slow to encode")
    quality_scale = ('quality 0-10 (higher is better; sizes the network for about 0.05 * 2**(quality/2) bpp), default '
                     '4; no rate target (fits minutes per clip)')

    def __init__(self, quality: float | None = None, lmbda: float | None = None, preset: str | None = None,
                 device: str = "auto", iterations: int | None = None, seed: int = 0, **architecture: Any):
        iterations = iterations if iterations is not None else _env_iterations()
        self._use(fitted.fit_settings(self.name, quality, lmbda, preset, PRESET_ENV, device, iterations, seed))
        try:
            sized_config(self.quality, 1, 16, 16, **architecture)   # checks the architecture options now
        except (TypeError, ValueError) as exc:
            raise MediaError(f"nerv: {exc}") from None
        self.architecture = architecture

    @classmethod
    def eval_version(cls) -> str:
        return (f"nerv-format{FORMAT} preset={os.environ.get(PRESET_ENV) or 'medium'} "
                f"iterations={_env_iterations()}")

    # --------------------------------------------------------------- encoding
    def encode_video(self, video: Video, progress: Progress | None = None) -> Encoded:
        """Size, fit, quantize and code ``video``; also returns the frames the decoder will produce."""
        if not isinstance(video, Video):
            raise MediaError(f"nerv codes video, got {type(video).__name__}")
        t, h, w = video.frames.shape[:3]
        if h * w > MAX_FRAME_PIXELS or t * h * w > MAX_VOXELS or t > MAX_FRAMES or max(h, w) > MAX_SIDE:
            raise MediaError(f"a {t}x{h}x{w} clip is larger than nerv codes ({MAX_VOXELS} voxels, "
                             f"{MAX_FRAME_PIXELS} pixels a frame)")
        t0 = time.monotonic()
        try:
            cfg = sized_config(self.quality, t, h, w, **self.architecture)
        except ValueError as exc:
            raise MediaError(f"nerv: {exc}") from None
        x = frames_tensor(video.frames)
        with torch.random.fork_rng():
            torch.manual_seed(self.fit_config.seed or 0)
            model = NervModel(cfg, t, h, w)   # the same initialisation on every run
        model.init_embeddings(x)
        enabled = progress.enabled if progress is not None else False
        with Progress(total_steps(self.fit_config), "fit nerv", enabled=enabled) as bar:
            result = fit(model, x, self.lmbda, self.fit_config, self.device, bar)
        codes = self._quantize_weights(model, x.to(self.device))
        model.cpu()
        meta = {"media": "video", "frames": t, "height": h, "width": w, "fps": video.fps, "source": video.source}
        data = fitted.pack_stream(self.name, FORMAT, cfg.changes(), codes, model, self.lmbda, self.preset, meta)
        frames = model.decode_frames()
        return Encoded(data, frames, result, time.monotonic() - t0)

    def _quantize_weights(self, model: NervModel, x: torch.Tensor) -> list[wq.TensorCode]:
        """Per-tensor steps by rate-distortion, embeddings hard-rounded, distortion on up to ``RD_FRAMES`` frames."""
        picks = torch.from_numpy(np.unique(np.linspace(0, model.frames - 1, RD_FRAMES).round().astype(np.int64)))
        target = x[:, :, picks.to(x.device)]
        with torch.no_grad():
            emb = model.quantized_embeddings("hard").detach()
        some = emb[picks.to(emb.device)]

        def recon_error() -> torch.Tensor:
            recon = model.synthesize(some).permute(1, 0, 2, 3)[None]
            return torch.mean((recon.clamp(0, 1) - target) ** 2)

        return fitted.quantize_weights(model, self.lmbda, x[0, 0].numel(), lambda: model.latent_bits(emb), recon_error)

    def write(self, media: Video, out: BinaryIO, progress: Progress | None = None) -> None:
        out.write(self.encode_video(media, progress).data)
        if progress:
            progress.update(1)

    # --------------------------------------------------------------- decoding
    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Video:
        model = self.decoder_model(reader)
        frames = model.decode_frames()
        if progress:
            progress.update(model.frames)
        fps = float(reader.header.metadata["fps"])
        return Video(frames, fps, source=dict(reader.header.metadata.get("source") or {}))

    def decoder_model(self, reader: bitstream.Reader) -> NervModel:
        """The model a stream describes, its weights and integer embeddings decoded (everything checked first)."""
        t, h, w, _, cfg, codes = _parse_header(reader.header)
        chunks = fitted.read_chunks(self.name, reader)
        latents = math.prod(embedding_shape(cfg, t, h, w))
        fitted.check_count(self.name, chunks[LATENTS_CHUNK], latents, tb.latent_tables().precision, "latents")
        model = NervModel(cfg, t, h, w)
        fitted.load_weights(self.name, model.decoder_tensors(), codes, chunks[WEIGHTS_CHUNK])
        try:
            grids = ArmCoder(model.arm).decode(chunks[LATENTS_CHUNK], grid_shapes(cfg, t, h, w))
        except EntropyCodingError as exc:
            raise BitstreamError(f"corrupt nerv stream: {exc}") from None
        model.load_integer_latents(grids)
        return model

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        """Decoder complexity (MACs per pixel), network size and payload split, for `ncodec info`."""
        try:
            t, h, w, _, cfg, _ = _parse_header(header)
        except BitstreamError:
            return {}
        macs = complexity(cfg, t, h, w)
        sizes = {k.kind: k.length for k in chunks}
        _, e, h0, w0 = embedding_shape(cfg, t, h, w)
        return {"decoder": f"{macs['total']:.0f} MACs/pixel (ARM {macs['arm']:.1f}, conv blocks "
                           f"{macs['blocks']:.0f}, head {macs['head']:.0f})",
                "macs": round(macs["total"], 1),
                "params": network_parameters(cfg),
                "network": (f"embeddings {e}x{h0}x{w0} per frame ({cfg.layout} ARM layout); blocks "
                            f"{'/'.join(map(str, cfg.widths))} channels, strides {'x'.join(map(str, cfg.strides))}, "
                            f"{cfg.kernel}x{cfg.kernel} convs; ARM {cfg.arm_context} neighbours, "
                            f"{cfg.arm_layers}x{cfg.arm_hidden}"),
                "payload": f"weights {sizes.get(WEIGHTS_CHUNK)} bytes, embeddings {sizes.get(LATENTS_CHUNK)} bytes",
                "fit": f"preset {header.config.get('preset')}, lambda {header.config.get('lmbda')}"}


def _env_iterations() -> int | None:
    """``$NCODEC_NERV_ITERATIONS`` (overrides the preset's iterations, e.g. for CPU evaluations), if set."""
    text = os.environ.get(ITERATIONS_ENV)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise MediaError(f"{ITERATIONS_ENV} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise MediaError(f"{ITERATIONS_ENV} must be a positive integer, got {text!r}")
    return value


def _parse_header(header: bitstream.Header) -> tuple[int, int, int, float, VideoInrConfig, list[wq.TensorCode]]:
    """(frames, height, width, fps, architecture, weight codes) of a stream, all checked."""
    meta, cfg = header.metadata, header.config
    try:
        t, h, w = (meta[k] for k in ("frames", "height", "width"))
        fps = float(meta["fps"])
        fmt = cfg["format"]
        arch = VideoInrConfig.from_changes(cfg["architecture"])
        codes = fitted.parse_codes(cfg["weights"])
        digest = cfg["tables"]
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("corrupt nerv header: bad or missing configuration") from None
    if fmt != FORMAT:
        raise BitstreamError(f"nerv stream format {fmt!r} is not supported (this ncodec reads {FORMAT})")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (t, h, w)) or \
            not (1 <= t <= MAX_FRAMES and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or \
            h * w > MAX_FRAME_PIXELS or t * h * w > MAX_VOXELS or not (math.isfinite(fps) and 0 < fps <= 1000):
        raise BitstreamError("corrupt nerv header: impossible clip parameters")
    if math.prod(embedding_shape(arch, t, h, w)) > MAX_LATENTS or network_parameters(arch) > MAX_PARAMETERS:
        raise BitstreamError("corrupt nerv header: the architecture is larger than nerv decodes")
    fitted.check_codes("nerv", codes, digest)
    return t, h, w, fps, arch, codes
