"""``learned-wavelet``: the `wavelet` codec with its two learned parts, a context table and a restoration network.

The transform and quantizer are `wavelet`'s. Its subband coder weighs each coefficient's context
(causal neighbours, parent, siblings) with a table fitted to the training photos per band class
(`scripts/fit_contexts.py`, `ncodec.train.contexts`) instead of the hand-set weights: all integer,
so the entropy coding stays exact on every machine. The decoder then runs a `RestorationNet`
(trained on photos coded by `wavelet`, `scripts/train_restoration.py`) on the decoded image and
adds ``strength`` times its correction. The encoder, which has both the image and what the
decoder will see, picks the strength that minimises the squared error of the rounded output (in
1/16 steps, 0 to 1.5; 0 turns the network off) and sends it in a one-byte ``WAVR`` chunk, so a
photo never decodes worse than the same coefficients without the network. Both parts live in one
model file; the stream names it and carries its hash, and decoding with other weights is refused.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import bitstream
from ...errors import BitstreamError, MediaError, ModelFileError, UsageError
from ...media.types import Image
from ...progress import Progress
from ...zoo.restoration import find_restoration, load_restoration, restoration_models
from ..registry import register
from .subband_coder import ContextTable
from .wavelet_lossy import LEVELS, QuantizedPlane, WaveletCodec, decoded_pixels, to_pixels

DEFAULT_MODEL = "wavelet-restore"
STRENGTH_CHUNK = "WAVR"
STRENGTH_UNITS = 16            # strength in 1/16
MAX_STRENGTH = 24              # 1.5: the network's correction, scaled up to half as much again
#: Images are restored in tiles of this many rows (plus a margin), so memory stays bounded on large images.
TILE_ROWS, TILE_MARGIN = 256, 32


def correction(net: torch.nn.Module, pixels: np.ndarray, step: float) -> np.ndarray:
    """The network's correction (in pixel units, float32, H x W x C) to a decoded uint8 image coded at
    base ``step``; gray images go through as three equal planes and take the mean correction. Computed in
    overlapping row tiles (each keeps a margin wider than the network's receptive field)."""
    from ...models.image.restoration import step_feature

    h, w, c = pixels.shape
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float().div_(255)
    if c == 1:
        x = x.expand(1, 3, h, w)
    feat = step_feature(torch.tensor([step]))
    out = torch.empty(3, h, w)
    with torch.no_grad():
        for top in range(0, h, TILE_ROWS):
            lo, hi = max(0, top - TILE_MARGIN), min(h, top + TILE_ROWS + TILE_MARGIN)
            lo -= lo % 4   # keep the network's 4-pixel grid where the whole image has it
            tile = net.correction(x[..., lo:hi, :], feat)[0]
            out[:, top:min(h, top + TILE_ROWS)] = tile[:, top - lo:min(h, top + TILE_ROWS) - lo]
    corr = out.mul_(255).permute(1, 2, 0).numpy()
    return corr.mean(axis=2, keepdims=True) if c == 1 else corr


def best_strength(decoded: np.ndarray, corr: np.ndarray, original: np.ndarray) -> int:
    """The strength (in 1/16, 0..MAX_STRENGTH) whose output (`apply`: rounded to 8 bits) is closest to
    ``original`` in squared error: the least-squares scale of ``corr`` (float64), rounded, checked against
    its neighbours and 0 after the output's rounding (which at small strengths can undo the gain)."""
    d = corr.astype(np.float64)
    energy = float(np.sum(d * d))
    if energy <= 0:
        return 0
    scale = float(np.sum(d * (original.astype(np.float64) - decoded))) / energy
    centre = int(np.clip(round(scale * STRENGTH_UNITS), 0, MAX_STRENGTH))
    target = original.astype(np.int64)

    def error(strength: int) -> int:
        return int(np.sum((apply(decoded, corr, strength).astype(np.int64) - target) ** 2))

    candidates = sorted({0, max(0, centre - 1), centre, min(MAX_STRENGTH, centre + 1)})
    return min(candidates, key=lambda s: (error(s), s))


def apply(decoded: np.ndarray, corr: np.ndarray, strength: int) -> np.ndarray:
    """``decoded + strength / 16 * corr``, rounded and clipped to 8 bits."""
    if strength == 0:
        return decoded
    out = decoded.astype(np.float32) + np.float32(strength / STRENGTH_UNITS) * corr
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@register(default_for="image", priority=30)
class LearnedWaveletCodec(WaveletCodec):
    """Lossy 8-bit gray / RGB images: `wavelet` plus a learned restoration network; the default for such
    images when its network is installed."""

    name = "learned-wavelet"
    pretrained = True
    description = ("lossy images: the wavelet codec's stream + a learned restoration network (trained on CPU), "
                   "strength chosen by the encoder; entropy coding exact integer")
    quality_scale = ('quality 1-100 (higher is better, JPEG-like; 100 near-lossless), default 75 (about 0.5-1 bpp on '
                     'photos); rate target --bpp')

    def __init__(self, quality: float = 75.0, bpp: float | None = None, levels: int = LEVELS,
                 step: float | None = None, model: str | os.PathLike | None = None):
        super().__init__(quality=quality, bpp=bpp, levels=levels, step=step)
        name = DEFAULT_MODEL if model is None else str(model)
        if name.endswith(".safetensors") or os.sep in name:
            path = Path(name)
        else:
            path = find_restoration(name).path
        self.net, self.facts = load_restoration(path)
        try:
            self.contexts = ContextTable(self.facts["contexts"])   # None: the hand-set weights
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None

    @classmethod
    def accepts(cls, media: Any) -> bool:
        """The default for 8-bit gray / RGB images when the default network is installed."""
        return WaveletCodec.accepts(media) and any(m.name == DEFAULT_MODEL for m in restoration_models())

    @classmethod
    def eval_version(cls) -> str:
        """Part of the harness's cache key: the stream layout and the default network's weights."""
        import hashlib

        found = [m for m in restoration_models() if m.name == DEFAULT_MODEL]
        digest = hashlib.sha256(b"".join(m.path.read_bytes() for m in found)).hexdigest()[:16]
        return f"{super().eval_version()}-{digest}"

    def model_hash(self) -> str | None:
        return str(self.facts["hash"])

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "model": self.facts["name"]}   # the model's hash pins its context table too

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> "LearnedWaveletCodec":
        base = WaveletCodec.from_header(header)
        name = header.config.get("model")
        if not isinstance(name, str) or not name:
            raise BitstreamError("corrupt learned-wavelet header: no model name")
        model = options.get("model")
        try:
            codec = cls(levels=base.levels, model=model if model is not None else name)
        except (MediaError, UsageError) as exc:
            raise BitstreamError(f"corrupt learned-wavelet header: {exc}") from None
        except ModelFileError as exc:
            if model is not None:
                raise
            raise ModelFileError(f"this stream was made with restoration model {name!r}, which is not in the "
                                 f"local zoo ({exc}); pass the weights with --model / model=") from None
        return codec

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        steps = self.facts.get("steps")
        return {"model": f"{header.config.get('model')} (restoration network"
                         f"{'' if steps is None else f', {steps} training steps'})"}

    # --------------------------------------------------------------- coding
    def _closing_chunks(self, image: Image, step: float,
                        planes: list[QuantizedPlane] | None) -> list[tuple[str, bytes]]:
        """The strength chunk: the least-squares strength of the network's correction (0 while sizing)."""
        if planes is None:
            return [(STRENGTH_CHUNK, bytes([0]))]
        decoded = decoded_pixels(planes, step)
        strength = best_strength(decoded, correction(self.net, decoded, step), image.pixels)
        return [(STRENGTH_CHUNK, bytes([strength]))]

    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Image:
        planes, step, others = self._decode_planes(reader)
        payload = others.get(STRENGTH_CHUNK)
        if payload is None or len(payload) != 1 or payload[0] > MAX_STRENGTH:
            raise BitstreamError("corrupt learned-wavelet stream: missing or impossible restoration strength")
        decoded = to_pixels(planes)
        strength = payload[0]
        if strength:
            decoded = apply(decoded, correction(self.net, decoded, step), strength)
        if progress:
            progress.update(1)
        return Image(decoded, 8, source=dict(reader.header.metadata.get("source") or {}))
