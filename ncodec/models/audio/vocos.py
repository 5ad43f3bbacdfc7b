"""Frame-rate audio networks: a Vocos-style decoder (ConvNeXt blocks -> inverse STFT) and its mirror encoder.

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

`STFTEncoder` is the mirror: an STFT (Hann window, ``n_fft = 4 * hop``) whose bins, magnitude
compressed (``S / |S|^0.7``, real and imaginary parts), go through a linear embedding and
ConvNeXt blocks at the frame rate to the latent ``dimension``. With ``causal=True`` frame
``t`` sees the samples before ``(t + 1) * hop`` only, as a causal SEANet encoder's does. It
takes the place of `SEANetEncoder` (``[B, channels, T]`` -> ``[B, dimension, ceil(T / hop)]``).
Neither network runs a layer at the sample rate, so a codec built of the pair trains several
times faster on a CPU than SEANet's (``scripts/bench_train_step.py --audio``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvNeXtBlock", "STFTEncoder", "VocosDecoder", "conv_padding"]

#: magnitude compression of the encoder's STFT bins (``S * |S| ** (COMPRESSION - 1)``)
COMPRESSION = 0.3


def conv_padding(kernel_size: int, causal: bool) -> tuple[int, int]:
    """(left, right) padding that keeps a stride-1 convolution's length: all on the left when causal."""
    return (kernel_size - 1, 0) if causal else ((kernel_size - 1) // 2, kernel_size // 2)


class _FrameNet(nn.Module):
    """What the decoder and encoder share: STFT sizes (``n_fft = 4 * hop`` by default), the Hann window, and
    the ConvNeXt stack at the frame rate with its input and output LayerNorms."""

    def __init__(self, dimension: int, hop_length: int, channels: int, width: int, blocks: int, n_fft: int | None,
                 kernel_size: int, causal: bool):
        super().__init__()
        if hop_length < 1 or dimension < 1 or width < 1 or blocks < 0 or channels < 1:
            raise ValueError(f"{type(self).__name__} needs positive sizes")
        self.dimension, self.hop_length, self.channels = int(dimension), int(hop_length), int(channels)
        self.n_fft = int(n_fft or 4 * hop_length)
        if self.n_fft < hop_length:
            raise ValueError(f"n_fft ({self.n_fft}) must be at least the hop ({hop_length})")
        self.bins = self.n_fft // 2 + 1
        self.causal = bool(causal)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(width, kernel_size, causal) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(width, eps=1e-6)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def stack(self, x: Tensor) -> Tensor:
        """The ConvNeXt blocks on ``[B, width, N]``, then the final LayerNorm: ``[B, N, width]``."""
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2))


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, pointwise MLP (x3, GELU), layer scale, residual; ``[B, C, N]`` in and out."""

    def __init__(self, width: int, kernel_size: int = 7, causal: bool = False, layer_scale: float = 1e-2):
        super().__init__()
        self.pad = conv_padding(kernel_size, causal)
        self.depthwise = nn.Conv1d(width, width, kernel_size, groups=width)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.expand = nn.Linear(width, 3 * width)
        self.project = nn.Linear(3 * width, width)
        self.scale = nn.Parameter(torch.full((width,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(F.pad(x, self.pad)).transpose(1, 2)
        y = self.project(F.gelu(self.expand(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class VocosDecoder(_FrameNet):
    """Latent frames ``[B, dimension, N]`` -> waveform ``[B, channels, N * hop_length]`` through an inverse STFT."""

    def __init__(self, dimension: int, hop_length: int, channels: int = 1, width: int = 384, blocks: int = 8,
                 n_fft: int | None = None, kernel_size: int = 7, causal: bool = False):
        super().__init__(dimension, hop_length, channels, width, blocks, n_fft, kernel_size, causal)
        self.pad = conv_padding(kernel_size, causal)
        self.embed = nn.Conv1d(dimension, width, kernel_size)
        self.head = nn.Linear(width, 2 * self.bins * channels)

    @property
    def context(self) -> int:
        """Earlier latent frames a frame's spectrum depends on (the causal convolutions' reach)."""
        return (len(self.blocks) + 1) * (self.pad[0] + self.pad[1])

    def spectra(self, z: Tensor) -> Tensor:
        """Complex STFT frames ``[B * channels, bins, N]`` (float32) of latent frames ``[B, dimension, N]``."""
        b, _, frames = z.shape
        x = self.embed(F.pad(z, self.pad))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        out = self.head(self.stack(x))                                  # [B, N, 2 * bins * channels]
        out = out.view(b, frames, self.channels, 2, self.bins).permute(0, 2, 3, 4, 1).float()
        magnitude = torch.exp(out[:, :, 0].clamp(max=10.0))                # [B, C, bins, N]
        return torch.polar(magnitude, out[:, :, 1]).reshape(b * self.channels, self.bins, frames)

    def overlap_add(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        """The windowed inverse FFTs of ``spec`` ``[B, bins, N]`` overlap-added, and the squared windows likewise:
        two ``[B, n_fft + (N - 1) * hop]`` tensors whose ratio is the inverse STFT (frame ``t`` starts at
        ``t * hop``; with centred frames, output sample 0 is position ``n_fft // 2``)."""
        frames = spec.shape[-1]
        window = self.window.to(spec.device)
        pieces = torch.fft.irfft(spec, n=self.n_fft, dim=1) * window[:, None]          # [B, n_fft, N]
        size = (1, self.n_fft + (frames - 1) * self.hop_length)
        fold = dict(output_size=size, kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        signal = F.fold(pieces, **fold).flatten(1)
        envelope = F.fold(window.square()[None, :, None].expand(1, -1, frames), **fold).flatten(1)
        return signal, envelope

    def forward(self, z: Tensor) -> Tensor:
        b, _, frames = z.shape
        signal, envelope = self.overlap_add(self.spectra(z))
        start = self.n_fft // 2                                             # centred frames
        wav = signal[:, start:start + frames * self.hop_length] / envelope[:, start:start + frames * self.hop_length]
        return wav.view(b, self.channels, -1)


class STFTEncoder(_FrameNet):
    """Waveform ``[B, channels, T]`` -> latent frames ``[B, dimension, ceil(T / hop_length)]`` through an STFT."""

    def __init__(self, dimension: int, hop_length: int, channels: int = 1, width: int = 384, blocks: int = 8,
                 n_fft: int | None = None, kernel_size: int = 7, causal: bool = False):
        super().__init__(dimension, hop_length, channels, width, blocks, n_fft, kernel_size, causal)
        self.embed = nn.Linear(2 * self.bins * self.channels, width)
        self.project = nn.Linear(width, self.dimension)

    def frames(self, samples: int) -> int:
        """Latent frames for ``samples`` input samples."""
        return math.ceil(samples / self.hop_length)

    @property
    def context(self) -> int:
        """Earlier frames a frame's latent depends on: those its window overlaps and the convolutions' reach."""
        blocks = sum(b.pad[0] + b.pad[1] for b in self.blocks)
        return math.ceil((self.n_fft - self.hop_length) / self.hop_length) + blocks

    def spectrum(self, x: Tensor) -> Tensor:
        """Compressed STFT features ``[B, frames, 2 * bins * channels]`` of ``x`` ``[B, channels, T]`` (float32).

        Frame ``t`` covers ``[(t + 1) * hop - n_fft, (t + 1) * hop)`` when causal, else the
        window centred on ``(t + 1/2) * hop``; the signal is zero-padded at both ends.
        """
        b, c, length = x.shape
        frames = self.frames(length)
        lead = self.n_fft - self.hop_length if self.causal else (self.n_fft - self.hop_length) // 2
        tail = frames * self.hop_length + self.n_fft - self.hop_length - lead - length
        flat = F.pad(x.reshape(b * c, length).float(), (lead, tail))
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(flat, self.n_fft, self.hop_length, window=self.window.to(flat.device), center=False,
                              return_complex=True)[..., :frames]                   # [B*C, bins, frames]
            spec = spec * (spec.abs() + 1e-5) ** (COMPRESSION - 1)
            feats = torch.view_as_real(spec)                                        # [B*C, bins, frames, 2]
        return feats.view(b, c, self.bins, frames, 2).permute(0, 3, 1, 4, 2).reshape(b, frames, -1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.embed(self.spectrum(x))).transpose(1, 2)      # [B, width, frames]
        return self.project(self.stack(y)).transpose(1, 2)
