"""A learned restoration network: removes a decoder's coding artefacts from its decoded image.

`RestorationNet` maps a decoded image (and how coarsely it was quantized) to a correction added
to it. It runs at half and quarter resolution (space-to-depth by 2, then a strided convolution),
so its receptive field covers the ringing of coarse wavelet levels at a few tens of GMAC for a
768x512 photo; convolutions and ReLUs only, which bf16 and channels-last speed up on CPU. The
first convolution stays in fp32 under autocast: bf16 rounds pixel values near white by half a
grey level, the size of the errors to undo at high rates, while its output features keep their
relative precision. The last layer starts at zero, so an untrained network leaves images as they are.
It knows nothing of streams or files: the `learned-wavelet` codec feeds it and decides how much
of its correction to keep.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RestorationNet", "describe", "step_feature"]

#: Base steps the conditioning input is normalised over (log2 from -1 to 8 maps to about -1 .. 1).
_LOG_STEP_CENTRE, _LOG_STEP_SPAN = 3.5, 4.5


def step_feature(step: float | Tensor) -> Tensor:
    """The conditioning value of a quantization step: log2(step), centred and scaled to about [-1, 1]."""
    s = torch.as_tensor(step, dtype=torch.float32)
    return (torch.log2(s.clamp_min(1e-3)) - _LOG_STEP_CENTRE) / _LOG_STEP_SPAN


class _Residual(nn.Module):
    """x + conv(relu(conv(x))): two 3x3 convolutions at one width."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class RestorationNet(nn.Module):
    """Decoded image in [0, 1] (N, C, H, W) and a per-image `step_feature` -> restored image.

    Two scales: ``width`` channels at half resolution around ``blocks`` residual blocks of
    ``deep_width`` channels at quarter resolution (a U-Net with one skip). Any H and W work
    (edge-padded to a multiple of 4, cropped back).
    """

    def __init__(self, channels: int = 3, width: int = 32, deep_width: int = 64, blocks: int = 2):
        super().__init__()
        self.channels, self.width, self.deep_width, self.blocks = channels, width, deep_width, blocks
        self.head = nn.Conv2d(4 * channels + 1, width, 3, padding=1)
        self.shallow_in = _Residual(width)
        self.down = nn.Conv2d(width, deep_width, 3, stride=2, padding=1)
        self.deep = nn.Sequential(*[_Residual(deep_width) for _ in range(blocks)])
        self.up = nn.Conv2d(deep_width, 4 * width, 1)
        self.shallow_out = _Residual(width)
        self.tail = nn.Conv2d(width, 4 * channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def correction(self, x: Tensor, step: Tensor) -> Tensor:
        """What the network adds to ``x`` (same shape); ``step``: one `step_feature` per image."""
        n, c, h, w = x.shape
        ph, pw = (-h) % 4, (-w) % 4
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        half = F.pixel_unshuffle(padded, 2)
        cond = step.to(half.dtype).reshape(n, 1, 1, 1).expand(n, 1, half.shape[2], half.shape[3])
        with torch.autocast(x.device.type, enabled=False):  # fp32 even under bf16 autocast: bf16 would round
            first = self.head(torch.cat([half - 0.5, cond], dim=1).float())  # the pixels by up to half a level
        skip = self.shallow_in(F.relu(first))
        deep = self.deep(F.relu(self.down(skip)))
        y = self.shallow_out(F.relu(skip + F.pixel_shuffle(self.up(deep), 2)))
        return F.pixel_shuffle(self.tail(F.relu(y)), 2)[..., :h, :w]

    def forward(self, x: Tensor, step: Tensor) -> Tensor:
        return x + self.correction(x, step)

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per full-resolution pixel (for cost tables)."""
        w, d, c = self.width, self.deep_width, self.channels
        half = (4 * c + 1) * w * 9 + 4 * w * w * 9 + d * 4 * w + 4 * c * w * 9   # head, two blocks, up, tail
        quarter = w * d * 9 + self.blocks * 2 * d * d * 9
        return half / 4 + quarter / 16

    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "width": self.width, "deep_width": self.deep_width, "blocks": self.blocks}


def describe(net: RestorationNet) -> str:
    """One line: sizes and cost."""
    params = sum(p.numel() for p in net.parameters())
    return (f"RestorationNet width {net.width}/{net.deep_width}, {net.blocks} deep blocks, {params / 1e3:.0f} k "
            f"parameters, {net.macs_per_pixel() / 1e3:.1f} kMAC/pixel ({net.macs_per_pixel() * 768 * 512 / 1e9:.1f} "
            f"GMAC for 768x512)")

