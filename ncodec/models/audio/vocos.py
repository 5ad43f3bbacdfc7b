"""A Vocos-style decoder: latent frames -> ConvNeXt blocks at the frame rate -> STFT bins -> inverse STFT.

Vocos (Siuzdak 2023, and WavTokenizer's decoder) keeps every layer at the frame rate and lets
the inverse STFT do the upsampling, where SEANet's decoder runs transposed convolutions up to
the sample rate. The heavy layers then see ``hop`` times fewer positions, which is what makes
it a candidate for training on a CPU (see ``scripts/bench_train_step.py --audio``).

- a convolution (kernel 7) from the latent ``dimension`` to ``width`` channels, a LayerNorm;
- ``blocks`` ConvNeXt blocks: depthwise convolution (kernel 7), LayerNorm, pointwise expansion to
  ``3 * width`` with GELU and back, a learned per-channel scale, a residual connection;
- a LayerNorm and a linear map to ``n_fft / 2 + 1`` log-magnitudes and phases per output channel;
- ``torch.istft`` (Hann window, ``n_fft = 4 * hop`` by default, centred frames) to
  ``frames * hop`` samples.

``causal=True`` pads the depthwise convolutions on the left only; the inverse STFT still
overlaps ``n_fft - hop`` samples, so a streaming decoder would emit each frame that late.
It takes the place of `SEANetDecoder` in a `SEANetCodecModel` (same call: ``[B, dimension, N]``
-> ``[B, channels, N * hop_length]``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvNeXtBlock", "VocosDecoder"]


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, pointwise MLP (x3, GELU), layer scale, residual; ``[B, C, N]`` in and out."""

    def __init__(self, width: int, kernel_size: int = 7, causal: bool = False, layer_scale: float = 1e-2):
        super().__init__()
        self.pad = (kernel_size - 1, 0) if causal else ((kernel_size - 1) // 2, kernel_size // 2)
        self.depthwise = nn.Conv1d(width, width, kernel_size, groups=width)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.expand = nn.Linear(width, 3 * width)
        self.project = nn.Linear(3 * width, width)
        self.scale = nn.Parameter(torch.full((width,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(F.pad(x, self.pad)).transpose(1, 2)
        y = self.project(F.gelu(self.expand(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class VocosDecoder(nn.Module):
    """Latent frames ``[B, dimension, N]`` -> waveform ``[B, channels, N * hop_length]`` through an inverse STFT."""

    def __init__(self, dimension: int, hop_length: int, channels: int = 1, width: int = 384, blocks: int = 8,
                 n_fft: int | None = None, kernel_size: int = 7, causal: bool = False):
        super().__init__()
        if hop_length < 1 or dimension < 1 or width < 1 or blocks < 0 or channels < 1:
            raise ValueError("VocosDecoder needs positive sizes")
        self.dimension, self.hop_length, self.channels = int(dimension), int(hop_length), int(channels)
        self.n_fft = int(n_fft or 4 * hop_length)
        if self.n_fft < hop_length:
            raise ValueError(f"n_fft ({self.n_fft}) must be at least the hop ({hop_length})")
        self.bins = self.n_fft // 2 + 1
        pad = (kernel_size - 1, 0) if causal else ((kernel_size - 1) // 2, kernel_size // 2)
        self.pad = pad
        self.embed = nn.Conv1d(dimension, width, kernel_size)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(width, kernel_size, causal) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, 2 * self.bins * channels)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        b, _, frames = z.shape
        x = self.embed(F.pad(z, self.pad))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.final_norm(x.transpose(1, 2)))            # [B, N, 2 * bins * channels]
        out = out.view(b, frames, self.channels, 2, self.bins).permute(0, 2, 3, 4, 1).float()
        magnitude = torch.exp(out[:, :, 0].clamp(max=10.0))                # [B, C, bins, N]
        phase = out[:, :, 1]
        spec = torch.polar(magnitude, phase).reshape(b * self.channels, self.bins, frames)
        wav = torch.istft(spec, self.n_fft, self.hop_length, window=self.window.to(spec.device), center=True,
                          length=frames * self.hop_length)
        return wav.view(b, self.channels, -1)
