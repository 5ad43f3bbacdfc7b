"""DAC-compatible neural audio codec: Snake convolutional encoder, factorized residual VQ, decoder.

`DACModel` has the architecture of descript-audio-codec 1.0.0's ``DAC`` (Kumar et al. 2023,
"High-Fidelity Audio Compression with Improved RVQGAN") and gives DAC's codes and waveforms
for DAC's weights:

- encoder: a weight-normalised convolution (kernel 7) to ``encoder_dim`` channels, then per
  rate an encoder block (three residual units with dilations 1, 3, 9, a Snake activation and
  a strided convolution of kernel ``2 * rate`` that doubles the channels), a Snake and a
  kernel-3 convolution to ``latent_dim`` channels;
- residual VQ: ncodec's `ResidualVQ` of `VectorQuantizer` levels, each with factorized codes
  (a weight-normalised 1x1 convolution to ``codebook_dim`` = 8 channels, the nearest of
  ``codebook_size`` codes by cosine similarity, the raw codebook row projected back by
  another);
- decoder: a kernel-7 convolution to ``decoder_dim`` channels, per rate a decoder block (Snake,
  transposed convolution of kernel ``2 * rate`` halving the channels, three residual units),
  a Snake, a kernel-7 convolution to one channel and ``tanh``.

Every convolution pads like DAC's (``(kernel - 1) * dilation / 2``, strided ones
``ceil(rate / 2)``), so an input whose length is a multiple of the hop gives
``length / hop`` frames; `DACModel.encode` right-pads with zeros as DAC's ``preprocess``
does. Odd rates make the decoder's output a few samples shorter than ``frames * hop`` (DAC's
too: 8 samples for the 16 / 24 kHz models). `DACModel.decode_codes` with ``length`` returns
exactly ``length`` samples: trimmed as DAC's ``forward`` trims, and, where an input ended in
those last few samples of its final frame, padded with zeros (DAC returns the shorter
signal there).

Training goes through ``encoder``, ``quantizer(...)`` and ``decoder``: each level gives DAC's
straight-through codes and its commitment (0.25) and codebook (1.0) losses on the
unnormalised projected vectors. ncodec's `ResidualVQ` averages those over the levels where
DAC sums them, passes the next level a residual without gradient, and drops levels per batch
element with probability ``quantizer_dropout`` where DAC drops them for that fraction of the
batch; inference is the same.

Weights: a DAC state dict (``DAC.state_dict()`` or the ``"state_dict"`` of a DAC weights file)
loads with `DACModel.load_state_dict` or `load_dac_state_dict`; `DACModel.from_dac_checkpoint`
also builds the model from the file's ``metadata["kwargs"]``, and `to_dac_state_dict` writes
DAC's names back. Key translation:

==================================================  ==========================================
descript-audio-codec 1.0.0                          ncodec
==================================================  ==========================================
``<conv>.weight_g`` / ``<conv>.weight_v``           ``<conv>.parametrizations.weight.original0`` / ``original1``
``quantizer.quantizers.{i}.in_proj.<p>``            ``quantizer.levels.{i}.project_in.<p>`` (``<p>`` renamed as above)
``quantizer.quantizers.{i}.out_proj.<p>``           ``quantizer.levels.{i}.project_out.<p>``
``quantizer.quantizers.{i}.codebook.weight``        ``quantizer.levels.{i}.embed``
(none)                                              ``quantizer.levels.{i}.cluster_size`` / ``initted``,
                                                    ``quantizer.prior.*``, ``quantizer.levels.{i}.prior.*``
==================================================  ==========================================

Everything else (``encoder.block.*``, ``decoder.model.*``: convolutions and Snake ``alpha``)
has the same names and shapes. The entries DAC lacks are ncodec's own (codebook usage for
training, index statistics for the entropy coder); loading a DAC state dict keeps the
model's current ones.
"""
from __future__ import annotations

import inspect
import math
import re
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...quantizers.residual import ResidualVQ
from .seanet import encodec_weight_names, ncodec_weight_names

__all__ = ["DACDecoder", "DACDecoderBlock", "DACEncoder", "DACEncoderBlock", "DACModel", "DACResidualUnit",
           "DAC_CONFIGS", "Snake1d", "dac_to_ncodec_state_dict", "is_dac_state_dict", "load_dac_state_dict",
           "ncodec_to_dac_state_dict", "to_dac_state_dict"]

# The released models' settings (descript-audio-codec's conf/final/*.yml); every one has
# codebook_size 1024, codebook_dim 8, encoder_dim 64 and decoder_dim 1536.
DAC_CONFIGS: dict[str, dict[str, Any]] = {
    "dac_16khz": dict(sample_rate=16_000, encoder_rates=(2, 4, 5, 8), decoder_rates=(8, 5, 4, 2), n_codebooks=12),
    "dac_24khz": dict(sample_rate=24_000, encoder_rates=(2, 4, 5, 8), decoder_rates=(8, 5, 4, 2), n_codebooks=32),
    "dac_44khz": dict(sample_rate=44_100, encoder_rates=(2, 4, 8, 8), decoder_rates=(8, 8, 4, 2), n_codebooks=9),
    "dac_44khz_16kbps": dict(sample_rate=44_100, encoder_rates=(2, 4, 8, 8), decoder_rates=(8, 8, 4, 2),
                             n_codebooks=18, latent_dim=128),
}


# ------------------------------------------------------------------- layers
class Snake1d(nn.Module):
    """Snake activation ``x + sin(alpha * x)^2 / alpha`` with a learned ``alpha`` per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(shape[0], shape[1], -1)
        x = x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)
        return x.reshape(shape)


def wn_conv1d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
              padding: int = 0) -> nn.Conv1d:
    """A weight-normalised ``nn.Conv1d`` (norm over all but the output channel)."""
    return weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation))


def wn_conv_transpose1d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                        padding: int = 0) -> nn.ConvTranspose1d:
    """A weight-normalised ``nn.ConvTranspose1d`` (norm over all but the input channel, as torch's default)."""
    return weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, padding))


class DACResidualUnit(nn.Module):
    """Snake, dilated kernel-7 convolution, Snake, 1x1 convolution, plus the input."""

    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        self.block = nn.Sequential(Snake1d(dim), wn_conv1d(dim, dim, 7, dilation=dilation, padding=3 * dilation),
                                   Snake1d(dim), wn_conv1d(dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        crop = (x.shape[-1] - y.shape[-1]) // 2  # 0 with the padding above
        if crop > 0:
            x = x[..., crop:x.shape[-1] - crop]
        return x + y


class DACEncoderBlock(nn.Module):
    """Three residual units at ``dim // 2`` channels, then a strided convolution to ``dim`` channels."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        half = dim // 2
        self.block = nn.Sequential(DACResidualUnit(half, 1), DACResidualUnit(half, 3), DACResidualUnit(half, 9),
                                   Snake1d(half),
                                   wn_conv1d(half, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2)))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DACEncoder(nn.Module):
    """Waveform ``[B, 1, T]`` (T a multiple of the hop) -> latents ``[B, latent_dim, T / hop]``."""

    def __init__(self, encoder_dim: int = 64, rates: Sequence[int] = (2, 4, 8, 8), latent_dim: int = 1024):
        super().__init__()
        width = int(encoder_dim)
        layers: list[nn.Module] = [wn_conv1d(1, width, 7, padding=3)]
        for rate in rates:
            width *= 2
            layers.append(DACEncoderBlock(width, int(rate)))
        layers += [Snake1d(width), wn_conv1d(width, latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)
        self.enc_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DACDecoderBlock(nn.Module):
    """Snake, transposed convolution upsampling by ``stride`` to ``output_dim`` channels, three residual units."""

    def __init__(self, input_dim: int, output_dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(input_dim),
            wn_conv_transpose1d(input_dim, output_dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            DACResidualUnit(output_dim, 1), DACResidualUnit(output_dim, 3), DACResidualUnit(output_dim, 9))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DACDecoder(nn.Module):
    """Latents ``[B, latent_dim, N]`` -> waveform ``[B, 1, ~N * hop]`` in (-1, 1)."""

    def __init__(self, latent_dim: int, channels: int = 1536, rates: Sequence[int] = (8, 8, 4, 2), d_out: int = 1):
        super().__init__()
        layers: list[nn.Module] = [wn_conv1d(latent_dim, channels, 7, padding=3)]
        width = channels
        for i, rate in enumerate(rates):
            width = channels // 2 ** (i + 1)
            layers.append(DACDecoderBlock(channels // 2 ** i, width, int(rate)))
        layers += [Snake1d(width), wn_conv1d(width, d_out, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.model(z)


# -------------------------------------------------------------------- model
class DACModel(nn.Module):
    """Mono waveform ``[B, 1, T]`` <-> codes ``[B, K, ceil(T / hop)]`` of a factorized residual VQ (DAC)."""

    def __init__(self, encoder_dim: int = 64, encoder_rates: Sequence[int] = (2, 4, 8, 8),
                 latent_dim: int | None = None, decoder_dim: int = 1536, decoder_rates: Sequence[int] = (8, 8, 4, 2),
                 n_codebooks: int = 9, codebook_size: int = 1024, codebook_dim: int = 8,
                 quantizer_dropout: float = 0.0, sample_rate: int = 44_100, name: str = "unset"):
        super().__init__()
        if not isinstance(codebook_dim, int):
            raise ValueError("codebook_dim must be one int for every level (per-level sizes are not supported)")
        self.encoder_dim, self.decoder_dim = int(encoder_dim), int(decoder_dim)
        self.encoder_rates = [int(r) for r in encoder_rates]
        self.decoder_rates = [int(r) for r in decoder_rates]
        self.latent_dim = int(latent_dim if latent_dim is not None else encoder_dim * 2 ** len(self.encoder_rates))
        self.n_codebooks, self.codebook_size, self.codebook_dim = int(n_codebooks), int(codebook_size), codebook_dim
        self.sample_rate = int(sample_rate)
        self.channels = 1
        self.name = name
        self.hop_length = math.prod(self.encoder_rates)
        self.encoder = DACEncoder(self.encoder_dim, self.encoder_rates, self.latent_dim)
        # DAC's quantizer: learned codebooks (codebook and commitment losses 1 and 0.25), codes
        # chosen by cosine similarity but used unnormalised, no k-means start, no dead-code restart
        self.quantizer = ResidualVQ(self.latent_dim, self.n_codebooks, self.codebook_size,
                                    quantizer_dropout=quantizer_dropout, codebook_dim=codebook_dim, ema=False,
                                    kmeans_init=False, distance="cosine", normalize_codes=False,
                                    projection="conv", commitment_weight=0.25, codebook_weight=1.0,
                                    threshold_dead=0.0)
        for level in self.quantizer.levels:  # DAC's projections are weight-normalised 1x1 convolutions
            weight_norm(level.project_in)
            weight_norm(level.project_out)
        self.decoder = DACDecoder(self.latent_dim, self.decoder_dim, self.decoder_rates)
        for module in self.modules():  # DAC zeroes the biases of its (non-transposed) convolutions
            if isinstance(module, nn.Conv1d) and module.bias is not None:
                nn.init.zeros_(module.bias)
        self.eval()

    # ------------------------------------------------------------ building
    @classmethod
    def from_config(cls, name: str) -> DACModel:
        """One of the released models' architectures (`DAC_CONFIGS`), in eval mode."""
        if name not in DAC_CONFIGS:
            raise ValueError(f"unknown DAC configuration {name!r}; one of {sorted(DAC_CONFIGS)}")
        return cls(**DAC_CONFIGS[name], name=name)

    @classmethod
    def dac_16khz(cls) -> DACModel:
        """DAC 16 kHz: hop 320 (50 frames/s), 12 codebooks (6 kbps)."""
        return cls.from_config("dac_16khz")

    @classmethod
    def dac_24khz(cls) -> DACModel:
        """DAC 24 kHz: hop 320 (75 frames/s), 32 codebooks (24 kbps)."""
        return cls.from_config("dac_24khz")

    @classmethod
    def dac_44khz(cls) -> DACModel:
        """DAC 44.1 kHz: hop 512 (86.1 frames/s), 9 codebooks (7.75 kbps)."""
        return cls.from_config("dac_44khz")

    @classmethod
    def dac_44khz_16kbps(cls) -> DACModel:
        """DAC 44.1 kHz 16 kbps: hop 512, 128-channel latents, 18 codebooks (15.5 kbps)."""
        return cls.from_config("dac_44khz_16kbps")

    @classmethod
    def from_dac_checkpoint(cls, checkpoint: Mapping[str, Any], strict: bool = True) -> DACModel:
        """The model of a DAC weights file: ``torch.load`` of it, ``{"state_dict": ..., "metadata": {"kwargs": ...}}``."""
        kwargs = dict(checkpoint.get("metadata", {}).get("kwargs", {}))
        known = inspect.signature(cls).parameters
        model = cls(**{k: v for k, v in kwargs.items() if k in known and k != "name"})
        model.load_state_dict(checkpoint["state_dict"], strict=strict)
        return model

    # --------------------------------------------------------------- sizes
    @property
    def frame_rate(self) -> float:
        """Frames (code vectors) per second."""
        return self.sample_rate / self.hop_length

    def frames(self, samples: int) -> int:
        """Frames for ``samples`` input samples."""
        return math.ceil(samples / self.hop_length)

    def bandwidth(self, n_codebooks: int | None = None) -> float:
        """Nominal kbps of ``n_codebooks`` codebooks (all by default)."""
        n = self.n_codebooks if n_codebooks is None else int(n_codebooks)
        return n * math.log2(self.codebook_size) * self.frame_rate / 1000

    @property
    def target_bandwidths(self) -> list[float]:
        """The nominal kbps of the first 1, 2, ..., K codebooks (DAC codes at any prefix of its levels)."""
        return [self.bandwidth(n) for n in range(1, self.n_codebooks + 1)]

    def num_codebooks(self, bandwidth: float | None = None) -> int:
        """Codebooks that fit in ``bandwidth`` kbps (the most whose nominal rate is within 0.01 kbps of it;
        None or <= 0: all); ValueError when not even one fits."""
        if not bandwidth or bandwidth <= 0:
            return self.n_codebooks
        n = sum(1 for b in self.target_bandwidths if b <= float(bandwidth) + 0.01)
        if n == 0:
            raise ValueError(f"bandwidth {bandwidth} kbps is below one codebook ({self.bandwidth(1):.3f} kbps)")
        return n

    def preprocess(self, wav: Tensor) -> Tensor:
        """``wav`` right-padded with zeros to a multiple of the hop (DAC's ``preprocess``)."""
        if wav.ndim != 3 or wav.shape[1] != 1 or wav.shape[-1] == 0:
            raise ValueError(f"expected a mono waveform [B, 1, T > 0], got {tuple(wav.shape)}")
        return F.pad(wav, (0, self.frames(wav.shape[-1]) * self.hop_length - wav.shape[-1]))

    # -------------------------------------------------------------- coding
    @torch.no_grad()
    def encode(self, wav: Tensor, n_quantizers: int | None = None) -> Tensor:
        """Codes ``[B, K, ceil(T / hop)]`` (int64) of ``wav`` ``[B, 1, T]`` with the first ``n_quantizers`` levels."""
        n = self.n_codebooks if n_quantizers is None else int(n_quantizers)
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"n_quantizers must lie in 1..{self.n_codebooks}, got {n}")
        return self.quantizer.encode(self.encoder(self.preprocess(wav)), n)

    def quantized_latents(self, codes: Tensor) -> Tensor:
        """The sum of the levels' projected codes ``[B, latent_dim, N]`` (DAC's ``quantizer.from_codes(codes)[0]``)."""
        return self.quantizer.decode(codes)

    def decode_latents(self, z: Tensor) -> Tensor:
        """Waveform from quantized latents (DAC's ``decode``)."""
        return self.decoder(z)

    def decode_codes(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Waveform from codes ``[B, k, N]`` (any first k levels): the decoder's ``[B, 1, ~N * hop]``, or exactly
        ``length`` samples (see the module docs)."""
        if codes.ndim != 3:
            raise ValueError(f"codes must be [B, K, N], got {tuple(codes.shape)}")
        if length is not None and not 0 < length <= codes.shape[-1] * self.hop_length:
            raise ValueError(f"{codes.shape[-1]} frames cannot hold {length} samples")
        wav = self.decoder(self.quantizer.decode(codes))
        if length is not None:
            wav = F.pad(wav[..., :length], (0, max(0, length - wav.shape[-1])))
        return wav

    def forward(self, wav: Tensor, n_quantizers: int | None = None) -> Tensor:
        """Reconstruction of ``wav`` (encode then decode, same length); inference only: the codes carry no
        gradient (train through ``encoder``, ``quantizer(...)`` and ``decoder``)."""
        return self.decode_codes(self.encode(wav, n_quantizers), wav.shape[-1])

    # ------------------------------------------------------------- weights
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load an ncodec or a descript-audio-codec state dict (recognised by its key names, see the module docs)."""
        if is_dac_state_dict(state_dict):
            state_dict = dac_to_ncodec_state_dict(state_dict, keep=self.state_dict())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


# ------------------------------------------------------------ key translation
_DAC_VQ = re.compile(r"^quantizer\.quantizers\.(\d+)\.(in_proj|out_proj|codebook)\.(.+)$")
_NCODEC_VQ = re.compile(r"^quantizer\.levels\.(\d+)\.(?:(project_in|project_out)\.(.+)|(embed))$")
_PROJ_TO_NCODEC = {"in_proj": "project_in", "out_proj": "project_out"}
_PROJ_TO_DAC = {v: k for k, v in _PROJ_TO_NCODEC.items()}


def _ncodec_only(key: str) -> bool:
    """Whether ``key`` is a quantizer entry DAC does not have (codebook usage, priors)."""
    return key.startswith("quantizer.") and (".prior." in f".{key}" or key.endswith((".cluster_size", ".initted")))


def is_dac_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether the keys are DAC's (its quantizer paths, or old-style weight-norm names)."""
    return any(_DAC_VQ.match(k) or k.endswith((".weight_g", ".weight_v")) for k in state_dict)


def dac_to_ncodec_state_dict(state_dict: Mapping[str, Tensor], keep: Mapping[str, Tensor] | None = None
                             ) -> dict[str, Tensor]:
    """A DAC state dict in ncodec's names; ncodec-only entries (codebook usage, priors) are taken from ``keep``."""
    renamed: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = _DAC_VQ.match(key)
        if m is not None:
            level, part, rest = m.groups()
            if part == "codebook":
                if rest != "weight":
                    raise ValueError(f"unexpected DAC codebook entry {key!r}")
                key = f"quantizer.levels.{level}.embed"
            else:
                key = f"quantizer.levels.{level}.{_PROJ_TO_NCODEC[part]}.{rest}"
        renamed[key] = value
    out = ncodec_weight_names(renamed)
    for key, value in (keep or {}).items():
        if _ncodec_only(key) and key not in out:
            out[key] = value
    return out


def ncodec_to_dac_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An ncodec `DACModel` state dict in descript-audio-codec 1.0.0's names (ncodec-only entries dropped)."""
    out: dict[str, Tensor] = {}
    for key, value in encodec_weight_names({k: v for k, v in state_dict.items() if not _ncodec_only(k)}).items():
        m = _NCODEC_VQ.match(key)
        if m is not None:
            level, part, rest, embed = m.groups()
            key = (f"quantizer.quantizers.{level}.codebook.weight" if embed else
                   f"quantizer.quantizers.{level}.{_PROJ_TO_DAC[part]}.{rest}")
        out[key] = value
    return out


def load_dac_state_dict(model: DACModel, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
    """Load descript-audio-codec weights (``torch.load(path)["state_dict"]``) into ``model``."""
    return nn.Module.load_state_dict(model, dac_to_ncodec_state_dict(state_dict, keep=model.state_dict()),
                                     strict=strict)


def to_dac_state_dict(model: DACModel) -> dict[str, Tensor]:
    """``model``'s weights as descript-audio-codec 1.0.0's ``DAC`` would save them."""
    return ncodec_to_dac_state_dict(model.state_dict())
