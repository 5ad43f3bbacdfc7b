"""The overfitted video model: per-frame embeddings decoded by upsampling conv blocks (HNeRV design).

Each frame ``t`` has an embedding ``[E, h0, w0]`` at ``1 / S`` of the (padded) frame size, ``S``
the product of the blocks' strides. Like HNeRV's encoder outputs, the embeddings carry the
content; here they are free parameters fitted with the decoder (no encoder is needed, the stream
carries them) and quantized to integers like Cool-chic's latents. The decoder is the same for
every frame: blocks ``conv k x k -> PixelShuffle(r) -> GELU`` each upsample by their stride ``r``,
then a ``k x k`` conv to RGB. Frames of any size are padded up to a multiple of ``S`` and cropped.

Entropy model. The integer embeddings are coded with the exact ARM (`ncodec.models.inr.arm`): channel
``e`` of all frames forms one grid, laid out ``temporal`` (row ``y * T + t`` holds row ``y`` of
frame ``t``, so the ARM's "rows above" are the same row in the previous frames and "left" is the
same frame) or ``spatial`` (frames stacked, row ``t * h0 + y``). The ARM's probabilities come
out of integer arithmetic, so the embeddings decode identically on every device.

`NervModel.rd_forward` is what `ncodec.models.inr.fit.fit` trains (target ``[1, 3, T, H, W]``), with the
ARM's rate of the embeddings; the decoder weights are quantized after the fit by rate-distortion
(`ncodec.models.inr.weights.rd_quantize`), as the image model's are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arm import CONTEXTS, LATENT_MAX, Arm
from .config import ArchitectureConfig, check_limits, is_int
from .fit import RDOutput
from .quantize import QuantMode, quantize

LATENT_LR_SCALE = 8.0          # embeddings learn faster than the networks (with Adam eps 1e-15: ~+0.3 dB over 32x at equal rate, liveband 16 frames, 600 steps)
NET_LR_SCALE = 0.5             # the conv blocks learn at half fit's rate (measured: better than 0.25 or 1)
EMBED_INIT_SCALE = 32.0        # embedding units per unit of pixel value at the start (see init_embeddings)
FRAME_BATCH = 4                # frames synthesized together when decoding (fixed: the output must not vary)
LAYOUTS = ("temporal", "spatial")
LIMITS: dict[str, tuple[int, int]] = {"embed": (1, 64), "kernel": (1, 7), "arm_hidden": (1, 64),
                                      "arm_layers": (1, 4)}
MAX_BLOCKS, MAX_WIDTH, MAX_STRIDE, MAX_TOTAL_STRIDE = 6, 256, 5, 256


@dataclass(frozen=True)
class VideoInrConfig(ArchitectureConfig):
    """Architecture of a video INR (all a decoder needs besides the weights, frame count and size)."""

    embed: int = 8
    strides: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (24, 16, 12, 8)
    kernel: int = 3
    arm_context: int = 12
    arm_hidden: int = 12
    arm_layers: int = 2
    layout: str = "temporal"

    def __post_init__(self) -> None:
        check_limits(self, LIMITS)
        object.__setattr__(self, "strides", _int_tuple(self.strides, "strides", 1, MAX_STRIDE))
        object.__setattr__(self, "widths", _int_tuple(self.widths, "widths", 1, MAX_WIDTH))
        if len(self.strides) != len(self.widths) or math.prod(self.strides) > MAX_TOTAL_STRIDE:
            raise ValueError(f"strides and widths need the same length and strides a product <= {MAX_TOTAL_STRIDE}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        if self.arm_context not in CONTEXTS:
            raise ValueError(f"arm_context must be one of {sorted(CONTEXTS)}, got {self.arm_context!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")

    @property
    def stride(self) -> int:
        """Total upsampling factor: the frame size is padded to a multiple of it."""
        return math.prod(self.strides)


def _int_tuple(value: Any, name: str, lo: int, hi: int) -> tuple[int, ...]:
    """``value`` (a list or tuple of 1..MAX_BLOCKS integers in lo..hi) as a tuple."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_BLOCKS or \
            not all(is_int(v) and lo <= v <= hi for v in value):
        raise ValueError(f"{name} must be 1..{MAX_BLOCKS} integers in {lo}..{hi}, got {value!r}")
    return tuple(value)


def embedding_shape(config: VideoInrConfig, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``[T, E, h0, w0]``: one embedding per frame at ``1 / stride`` of the padded frame."""
    s = config.stride
    return frames, config.embed, -(-height // s), -(-width // s)


def grid_shapes(config: VideoInrConfig, frames: int, height: int, width: int) -> list[tuple[int, int]]:
    """The ARM's grids: one ``[T * h0, w0]`` grid per embedding channel (both layouts)."""
    t, e, h0, w0 = embedding_shape(config, frames, height, width)
    return [(t * h0, w0)] * e


def to_grids(emb: Tensor, layout: str) -> Tensor:
    """Embeddings ``[T, E, h0, w0]`` -> the ARM's grids ``[E, T * h0, w0]`` in ``layout`` order."""
    t, e, h0, w0 = emb.shape
    order = (1, 2, 0, 3) if layout == "temporal" else (1, 0, 2, 3)
    return emb.permute(*order).reshape(e, t * h0, w0)


def from_grids(grids: Tensor, t: int, layout: str) -> Tensor:
    """The inverse of `to_grids`: ``[E, T * h0, w0]`` -> ``[T, E, h0, w0]``."""
    e, rows, w0 = grids.shape
    h0 = rows // t
    if layout == "temporal":
        return grids.reshape(e, h0, t, w0).permute(2, 0, 1, 3)
    return grids.reshape(e, t, h0, w0).permute(1, 0, 2, 3)


class NervDecoder(nn.Module):
    """Upsampling blocks (conv -> PixelShuffle -> GELU) and a conv to RGB: embedding -> frame."""

    def __init__(self, config: VideoInrConfig):
        super().__init__()
        k = config.kernel
        widths = (config.embed, *config.widths)
        self.blocks = nn.ModuleList()
        for c_in, c_out, r in zip(widths[:-1], widths[1:], config.strides):
            self.blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out * r * r, k, padding=k // 2), nn.PixelShuffle(r),
                                             nn.GELU()))
        self.head = nn.Conv2d(widths[-1], 3, k, padding=k // 2)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.fill_(0.5)   # mid-grey before anything is learned

    def forward(self, emb: Tensor) -> Tensor:
        x = emb.contiguous(memory_format=torch.channels_last)   # oneDNN's fast path on CPU (1.7x here)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def complexity(config: VideoInrConfig, frames: int, height: int, width: int) -> dict[str, float]:
    """Decoder multiply-accumulates per output pixel: ARM (per latent x latents per pixel), conv blocks, head."""
    _, e, h0, w0 = embedding_shape(config, frames, height, width)
    pixels = float(height * width)
    arm = Arm(config.arm_context, config.arm_hidden, config.arm_layers).macs_per_latent() * e * h0 * w0 / pixels
    k2, side = config.kernel ** 2, (h0, w0)
    blocks = 0.0
    for c_in, c_out, r in zip((config.embed, *config.widths), config.widths, config.strides):
        blocks += k2 * c_in * c_out * r * r * side[0] * side[1] / pixels   # conv at the block's input size
        side = (side[0] * r, side[1] * r)
    head = k2 * config.widths[-1] * 3 * side[0] * side[1] / pixels
    return {"arm": arm, "blocks": blocks, "head": head, "total": arm + blocks + head}


def network_parameters(config: VideoInrConfig) -> int:
    """Decoder weights (conv blocks, head and ARM): what the stream carries besides the embeddings."""
    arm = sum(p.numel() for p in Arm(config.arm_context, config.arm_hidden, config.arm_layers).parameters())
    k2, total = config.kernel ** 2, 0
    for c_in, c_out, r in zip((config.embed, *config.widths), config.widths, config.strides):
        total += (k2 * c_in + 1) * c_out * r * r
    return arm + total + (k2 * config.widths[-1] + 1) * 3


class NervModel(nn.Module):
    """A clip as per-frame integer embeddings decoded by one conv network; trained per clip by `fit`."""

    def __init__(self, config: VideoInrConfig, frames: int, height: int, width: int):
        super().__init__()
        self.config, self.frames, self.height, self.width = config, int(frames), int(height), int(width)
        self.latent_lr_scale, self.net_lr_scale = LATENT_LR_SCALE, NET_LR_SCALE
        self.embeddings = nn.Parameter(torch.zeros(embedding_shape(config, frames, height, width)))
        self.arm = Arm(config.arm_context, config.arm_hidden, config.arm_layers)
        self.decoder = NervDecoder(config)

    # ------------------------------------------------------------------ training
    def init_embeddings(self, target: Tensor) -> None:
        """Start the embeddings from the clip (``[1, 3, T, H, W]`` in [0, 1]): its first channels hold each
        frame average-pooled to the embedding size, centred and scaled to ``EMBED_INIT_SCALE`` per unit.

        HNeRV's embeddings come from an encoder that sees the frame; this is the simplest such start,
        and the fit converges much faster from it than from zeros.
        """
        s = self.config.stride
        frames = target[0].permute(1, 0, 2, 3).to(self.embeddings)
        padded = F.pad(frames, (0, -self.width % s, 0, -self.height % s), mode="replicate")
        pooled = (F.avg_pool2d(padded, s) - 0.5) * EMBED_INIT_SCALE
        c = min(3, self.config.embed)
        with torch.no_grad():
            self.embeddings.zero_()
            self.embeddings[:, :c] = pooled[:, :c]
        self._initial_embeddings = self.embeddings.detach().clone()

    def reset_parameters(self) -> None:
        """Fresh networks from torch's global generator, the embeddings as initialised: for warm-up candidates."""
        fresh = NervModel(self.config, self.frames, self.height, self.width)
        initial = getattr(self, "_initial_embeddings", None)
        self.load_state_dict(fresh.state_dict())
        if initial is not None:
            with torch.no_grad():
                self.embeddings.copy_(initial)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups for `fit`: embeddings at ``lr * latent_lr_scale``, networks at ``lr * net_lr_scale``."""
        nets = [p for name, p in self.named_parameters() if name != "embeddings"]
        return [{"params": [self.embeddings], "lr": lr * self.latent_lr_scale},
                {"params": nets, "lr": lr * self.net_lr_scale}]

    def quantized_embeddings(self, mode: QuantMode, temperature: float = 0.3) -> Tensor:
        return quantize(self.embeddings, mode, temperature)

    def synthesize(self, emb: Tensor) -> Tensor:
        """Frames ``[T, 3, H, W]`` (unclamped, cropped to the clip size) from quantized embeddings."""
        return self.decoder(emb)[..., : self.height, : self.width]

    def latent_bits(self, emb: Tensor) -> Tensor:
        """The ARM's rate of the embeddings, in bits."""
        grids = to_grids(emb, self.config.layout)
        return self.arm.rate_bits([g[None, None] for g in grids])

    def rd_forward(self, mode: QuantMode, temperature: float = 0.3) -> RDOutput:
        emb = self.quantized_embeddings(mode, temperature)
        recon = self.synthesize(emb).permute(1, 0, 2, 3)[None]   # [1, 3, T, H, W], as fit's target
        return RDOutput(recon, self.latent_bits(emb))

    # ------------------------------------------------------------------ coding
    def decoder_tensors(self) -> list[tuple[str, nn.Parameter]]:
        """(group, parameter) of every decoder weight, in the canonical stream order."""
        return [("arm", p) for p in self.arm.parameters()] + [("synthesis", p) for p in self.decoder.parameters()]

    def integer_latents(self) -> list[np.ndarray]:
        """The ARM's grids of the rounded embeddings (clamped to the coder's range), [T * h0, w0] int64 each."""
        emb = torch.round(self.embeddings.detach()).clamp(-LATENT_MAX, LATENT_MAX).to("cpu", torch.int64)
        return list(to_grids(emb, self.config.layout).numpy())

    def load_integer_latents(self, grids: list[np.ndarray]) -> None:
        """Set the embeddings from the ARM's integer grids (decoder side, or after encoding)."""
        stacked = torch.from_numpy(np.stack([np.asarray(g, dtype=np.float32) for g in grids]))
        with torch.no_grad():
            self.embeddings.copy_(from_grids(stacked, self.frames, self.config.layout))

    def decode_frames(self) -> np.ndarray:
        """The decoded clip ``[T, H, W, 3]`` uint8 from the rounded embeddings, ``FRAME_BATCH`` frames at a time.

        Encoder and decoder both call this, so the same batches reach the convolutions on both sides.
        """
        emb = torch.round(self.embeddings.detach())
        out = np.empty((self.frames, self.height, self.width, 3), dtype=np.uint8)
        with torch.no_grad():
            for t in range(0, self.frames, FRAME_BATCH):
                x = torch.nan_to_num(self.synthesize(emb[t:t + FRAME_BATCH]).float(), nan=0.0)
                px = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
                out[t:t + FRAME_BATCH] = px.cpu().numpy()
        return out

    def macs_per_pixel(self) -> float:
        return complexity(self.config, self.frames, self.height, self.width)["total"]


def frames_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[1, 3, T, H, W]`` in [0, 1]: `fit`'s target."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].to(torch.float32) / 255
