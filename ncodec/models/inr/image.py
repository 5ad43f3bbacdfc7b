"""The overfitted image model: latent grids + ARM + upsampler + synthesis (Cool-chic / C3 design).

`LatentImageModel.rd_forward` is what `ncodec.models.inr.fit.fit` trains: it quantizes the grids with
the current proxy, synthesizes the image and returns the ARM's rate of the grids. The coding
side (`integer_latents`, `decoder_tensors`) is what the ``inr`` codec puts in a stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .arm import CONTEXTS, LATENT_MAX, Arm
from .config import ArchitectureConfig, check_limits
from .fit import RDOutput
from .latents import LatentGrids, Synthesis, Upsampler, level_shapes
from .quantize import QuantMode, quantize

LATENT_LR_SCALE = 4.0   # latents learn 4x faster than the networks (measured: clearly better fits in 600-2000 steps)
# Bounds a stream's configuration must respect (decoders check them before building anything).
LIMITS: dict[str, tuple[int, int]] = {"levels": (1, 12), "channels": (1, 3), "syn_hidden": (1, 64),
                                      "syn_layers": (0, 4), "residual": (0, 4), "arm_hidden": (1, 64),
                                      "arm_layers": (1, 4)}


@dataclass(frozen=True)
class ImageInrConfig(ArchitectureConfig):
    """Architecture sizes of an image INR (all a decoder needs besides the weights and the image size)."""

    levels: int = 7
    channels: int = 3
    syn_hidden: int = 24
    syn_layers: int = 2
    residual: int = 2
    arm_context: int = 16
    arm_hidden: int = 16
    arm_layers: int = 2
    upsampler: str = "learned"

    def __post_init__(self) -> None:
        check_limits(self, LIMITS)
        if self.arm_context not in CONTEXTS:
            raise ValueError(f"arm_context must be one of {sorted(CONTEXTS)}, got {self.arm_context!r}")
        if self.upsampler not in ("learned", "bilinear"):
            raise ValueError(f"upsampler must be 'learned' or 'bilinear', got {self.upsampler!r}")


def complexity(config: ImageInrConfig, height: int, width: int) -> dict[str, float]:
    """Decoder multiply-accumulates per pixel: ARM (per latent x latents per pixel), upsampler, synthesis."""
    latents = sum(h * w for h, w in level_shapes(height, width, config.levels))
    arm = Arm(config.arm_context, config.arm_hidden, config.arm_layers).macs_per_latent() * latents / (height * width)
    up = Upsampler(config.levels, config.upsampler).macs_per_pixel()  # bilinear: 4 taps per sample too
    syn = Synthesis(config.levels, config.channels, config.syn_hidden, config.syn_layers,
                    config.residual).macs_per_pixel()
    return {"arm": arm, "upsampler": up, "synthesis": syn, "total": arm + up + syn}


class LatentImageModel(nn.Module):
    """An image as latent grids decoded by tiny networks; trained per image by `fit`."""

    def __init__(self, config: ImageInrConfig, height: int, width: int):
        super().__init__()
        self.config, self.height, self.width = config, int(height), int(width)
        self.latent_lr_scale, self.net_lr_scale = LATENT_LR_SCALE, 1.0
        self.latents = LatentGrids(height, width, config.levels)
        self.arm = Arm(config.arm_context, config.arm_hidden, config.arm_layers)
        self.upsampler = Upsampler(config.levels, config.upsampler)
        self.synthesis = Synthesis(config.levels, config.channels, config.syn_hidden, config.syn_layers,
                                   config.residual)

    # ------------------------------------------------------------------ training
    def reset_parameters(self) -> None:
        """A fresh initialisation (latents at zero), from torch's global generator: for warm-up candidates."""
        self.load_state_dict(LatentImageModel(self.config, self.height, self.width).state_dict())

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups for `fit`: latents at ``lr * latent_lr_scale``, the networks at ``lr * net_lr_scale``."""
        latents = list(self.latents.parameters())
        ids = {id(p) for p in latents}
        nets = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": latents, "lr": lr * self.latent_lr_scale}, {"params": nets, "lr": lr * self.net_lr_scale}]

    def quantized_grids(self, mode: QuantMode, temperature: float = 0.3) -> list[Tensor]:
        return [quantize(g, mode, temperature) for g in self.latents.grids]

    def synthesize(self, grids: list[Tensor]) -> Tensor:
        """[1, channels, H, W] image (unclamped) from quantized grids, finest first."""
        return self.synthesis(self.upsampler(grids))

    def latent_bits(self, grids: list[Tensor]) -> Tensor:
        """The ARM's rate of the grids, in bits."""
        return self.arm.rate_bits(grids)

    def rd_forward(self, mode: QuantMode, temperature: float = 0.3) -> RDOutput:
        grids = self.quantized_grids(mode, temperature)
        return RDOutput(self.synthesize(grids), self.latent_bits(grids))

    # ------------------------------------------------------------------ coding
    def decoder_tensors(self) -> list[tuple[str, nn.Parameter]]:
        """(group, parameter) of every decoder weight, in the canonical stream order."""
        out: list[tuple[str, nn.Parameter]] = []
        for group, module in (("arm", self.arm), ("upsampler", self.upsampler), ("synthesis", self.synthesis)):
            out += [(group, p) for p in module.parameters()]
        return out

    def integer_latents(self) -> list[np.ndarray]:
        """The grids rounded to integers (clamped to the coder's range), finest first, [h, w] int64."""
        return [torch.round(g.detach()).clamp(-LATENT_MAX, LATENT_MAX).to("cpu", torch.int64)[0, 0].numpy()
                for g in self.latents.grids]

    def load_integer_latents(self, grids: list[np.ndarray]) -> None:
        """Set the grids to integer values (decoder side, or after encoding)."""
        with torch.no_grad():
            for param, g in zip(self.latents.grids, grids):
                param.copy_(torch.from_numpy(np.asarray(g, dtype=np.float32)).view_as(param))

    def macs_per_pixel(self) -> float:
        return complexity(self.config, self.height, self.width)["total"]
