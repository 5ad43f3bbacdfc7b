"""Hierarchical latent grids, their upsampling, and the tiny synthesis network (Cool-chic / C3).

Level ``l`` of ``L`` is one channel at ``ceil(H / 2**l) x ceil(W / 2**l)``. The decoder
upsamples the grids to full resolution recursively: starting from the coarsest, the stack
of channels so far is upsampled 2x and the next finer grid is appended, so every channel
ends at H x W and level 0 is never upsampled. The 2x step is either bilinear or a learned
4x4 transposed convolution per step (initialised to bilinear, shared by the channels).
The synthesis maps the L channels at each pixel to the image through 1x1 convolutions and
ends with residual 3x3 convolutions on the output channels. `macs_per_pixel` counts the
multiply-accumulates the decoder spends per image pixel in each part.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BILINEAR_TAPS = (0.25, 0.75, 0.75, 0.25)


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Grid size of each level, finest first: ``ceil(H / 2**l) x ceil(W / 2**l)``."""
    return [(-(-height // (1 << lv)), -(-width // (1 << lv))) for lv in range(levels)]


class LatentGrids(nn.Module):
    """The L latent grids as parameters ``[1, 1, h_l, w_l]``, zero at the start (as in Cool-chic)."""

    def __init__(self, height: int, width: int, levels: int):
        super().__init__()
        self.shapes = level_shapes(height, width, levels)
        self.grids = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, h, w)) for h, w in self.shapes])

    def __len__(self) -> int:
        return len(self.grids)

    def num_latents(self) -> int:
        return sum(h * w for h, w in self.shapes)


class Upsampler(nn.Module):
    """Recursive 2x upsampling of the grids to full resolution: learned (4x4 transposed conv) or bilinear."""

    def __init__(self, levels: int, mode: str = "learned"):
        super().__init__()
        if mode not in ("learned", "bilinear"):
            raise ValueError(f"upsampler mode must be 'learned' or 'bilinear', got {mode!r}")
        self.mode = mode
        self.levels = levels
        taps = torch.tensor(BILINEAR_TAPS)
        kernel = torch.outer(taps, taps).view(1, 1, 4, 4)
        steps = levels - 1 if mode == "learned" else 0
        self.kernels = nn.ParameterList([nn.Parameter(kernel.clone()) for _ in range(steps)])

    def _up2(self, x: Tensor, step: int, size: tuple[int, int]) -> Tensor:
        """x [1, C, h, w] upsampled 2x and cropped to ``size`` (edges replicated, so borders stay bright)."""
        if self.mode == "bilinear":
            up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            return up[..., :size[0], :size[1]]
        c, h, w = x.shape[1:]
        padded = F.pad(x.reshape(c, 1, h, w), (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(padded, self.kernels[step], stride=2)
        return up[:, :, 3:3 + size[0], 3:3 + size[1]].reshape(1, c, size[0], size[1])

    def forward(self, grids: list[Tensor]) -> Tensor:
        """The grids (finest first, each [1, 1, h_l, w_l]) as one [1, L, H, W] tensor."""
        x = grids[-1]
        for lv in range(len(grids) - 2, -1, -1):
            target = grids[lv]
            x = torch.cat([target, self._up2(x, lv, tuple(target.shape[-2:]))], dim=1)  # type: ignore[arg-type]
        return x

    def macs_per_pixel(self) -> float:
        """Per full-resolution pixel: 4 taps per output sample, for each channel at each 2x step."""
        L = self.levels
        return sum(4.0 * (L - lv) * 4.0 ** -(lv - 1) for lv in range(1, L))


class Synthesis(nn.Module):
    """1x1 convolutions (ReLU between) from the L channels to the image, then residual 3x3 refinement."""

    def __init__(self, in_channels: int, out_channels: int = 3, hidden: int = 24, layers: int = 2,
                 residual: int = 2):
        super().__init__()
        widths = [in_channels] + [hidden] * layers + [out_channels]
        body: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            body.append(nn.Conv2d(a, b, 1))
            if i < len(widths) - 2:
                body.append(nn.ReLU())
        self.body = nn.Sequential(*body)
        self.refine = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1, padding_mode="replicate")
                                     for _ in range(residual)])
        with torch.no_grad():
            last = self.body[-1]
            assert isinstance(last, nn.Conv2d)
            last.bias.fill_(0.5)   # mid-grey before anything is learned
            for conv in self.refine:  # residual blocks start as the identity
                conv.weight.zero_()
                conv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        outs = []
        for image in x:   # [C, H, W] is already [C, H*W]: the 1x1 convs as W @ X, no transposed copies
            cols = image.reshape(image.shape[0], h * w)
            for layer in self.body:
                cols = torch.addmm(layer.bias[:, None], layer.weight.flatten(1), cols) \
                    if isinstance(layer, nn.Conv2d) else layer(cols)
            outs.append(cols.reshape(-1, h, w))
        x = torch.stack(outs)
        if self.refine:   # 3-channel 3x3 convolutions run ~2.5x faster channels-last on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        for i, conv in enumerate(self.refine):
            x = x + conv(F.relu(x) if i else x)
        return x.contiguous()

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per output pixel (weights per pixel of every convolution)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        return float(sum(m.weight.numel() for m in convs))


def bilinear_equivalence_error(h: int = 5, w: int = 7) -> float:
    """Max |learned-at-init - bilinear| on a random grid: the learned upsampler starts as bilinear."""
    x = torch.randn(1, 1, h, w)
    learned, bilinear = Upsampler(2, "learned"), Upsampler(2, "bilinear")
    size = (2 * h, 2 * w)
    with torch.no_grad():
        return float((learned._up2(x, 0, size) - bilinear._up2(x, 0, size)).abs().max())
