"""SEANet encoder and decoder (EnCodec / SoundStream style), with streamable convolutions.

The convolutions pad themselves so that a waveform of any length maps to whole frames and
back: a convolution with kernel ``k``, stride ``s`` and dilation ``d`` pads
``(k - 1) * d - (s - 1)`` samples in all (on the left only when causal, otherwise split with
the larger half on the left), plus whatever extra samples on the right make the last window
full; a transposed convolution trims ``k - s`` samples (on the right when causal, in the
ratio ``trim_right_ratio``, otherwise split with the larger half on the left). Reflect
padding of a signal shorter than the padding first extends it with zeros. These are
EnCodec's rules, so a causal model streams: the frames of a prefix whose length is a
multiple of the hop are the first frames of the whole signal.

Module and parameter names follow EnCodec 0.1.1 (``model.{i}.conv.conv.weight``,
``model.{i}.block.{j}.conv.conv.bias``, ``model.{i}.lstm.weight_ih_l0``,
``model.{i}.convtr.convtr.weight``, ``...conv.norm.weight`` for ``time_group_norm``), so an
EnCodec encoder or decoder state dict loads with plain ``load_state_dict``. Weight
normalisation uses ``torch.nn.utils.parametrizations.weight_norm``: its parameters are
named ``parametrizations.weight.original0`` (the norm, EnCodec's ``weight_g``) and
``original1`` (the direction, ``weight_v``); `encodec_weight_names` / `ncodec_weight_names`
translate between the two, and torch's own load hook also accepts the old names.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["NORMS", "NormConv1d", "NormConvTranspose1d", "SEANetDecoder", "SEANetEncoder", "SEANetLSTM",
           "SEANetResnetBlock", "StreamableConv1d", "StreamableConvTranspose1d", "encodec_weight_names",
           "extra_padding", "ncodec_weight_names", "pad1d", "unpad1d"]

NORMS = ("none", "weight_norm", "time_group_norm")
PAD_MODES = ("reflect", "constant")


# ------------------------------------------------------------------ padding
def extra_padding(length: int, kernel_size: int, stride: int, padding_total: int = 0) -> int:
    """Samples to add on the right so that the last window of a strided convolution is full.

    Without them the transposed convolution could not give back every input sample.
    """
    frames = math.ceil((length - kernel_size + padding_total) / stride) + 1
    return (frames - 1) * stride + kernel_size - padding_total - length


def pad1d(x: Tensor, left: int, right: int, mode: str = "constant", value: float = 0.0) -> Tensor:
    """``F.pad`` on the last dim; reflect padding longer than the signal first appends zeros (then drops them)."""
    if left < 0 or right < 0:
        raise ValueError(f"negative padding ({left}, {right})")
    if mode != "reflect":
        return F.pad(x, (left, right), mode, value)
    length = x.shape[-1]
    widest = max(left, right)
    zeros = widest - length + 1 if length <= widest else 0  # reflection needs more samples than the pad
    if zeros:
        x = F.pad(x, (0, zeros))
    out = F.pad(x, (left, right), "reflect")
    return out[..., :out.shape[-1] - zeros]


def unpad1d(x: Tensor, left: int, right: int) -> Tensor:
    """Drop ``left`` and ``right`` samples from the last dim."""
    if left < 0 or right < 0 or left + right > x.shape[-1]:
        raise ValueError(f"cannot remove ({left}, {right}) samples from {x.shape[-1]}")
    return x[..., left:x.shape[-1] - right]


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _norm_module(channels: int, norm: str, causal: bool, norm_params: Mapping[str, Any]) -> nn.Module:
    """GroupNorm with one group over (channels, time) for ``time_group_norm``, else identity."""
    if norm == "time_group_norm":
        if causal:
            raise ValueError("time_group_norm looks at the whole signal: it cannot be causal")
        return nn.GroupNorm(1, channels, **norm_params)
    return nn.Identity()


# ------------------------------------------------------------- convolutions
class NormConv1d(nn.Module):
    """``nn.Conv1d`` (weight-normalised or not) followed by the chosen output normalisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True, causal: bool = False, norm: str = "none",
                 norm_params: Mapping[str, Any] | None = None):
        super().__init__()
        _check_norm(norm)
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups, bias=bias)
        self.conv = weight_norm(conv) if norm == "weight_norm" else conv
        self.norm = _norm_module(out_channels, norm, causal, norm_params or {})
        self.norm_type = norm

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class NormConvTranspose1d(nn.Module):
    """``nn.ConvTranspose1d`` (weight-normalised or not) followed by the chosen output normalisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, causal: bool = False,
                 norm: str = "none", norm_params: Mapping[str, Any] | None = None):
        super().__init__()
        _check_norm(norm)
        convtr = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        self.convtr = weight_norm(convtr) if norm == "weight_norm" else convtr
        self.norm = _norm_module(out_channels, norm, causal, norm_params or {})
        self.norm_type = norm

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.convtr(x))


class StreamableConv1d(nn.Module):
    """A 1-d convolution that pads itself (causally or centred) so every input sample reaches a full window."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True, causal: bool = False, norm: str = "none",
                 norm_params: Mapping[str, Any] | None = None, pad_mode: str = "reflect"):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.conv = NormConv1d(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, causal,
                               norm, norm_params)
        self.kernel_size, self.stride, self.dilation = int(kernel_size), int(stride), int(dilation)
        self.causal = bool(causal)
        self.pad_mode = pad_mode

    @property
    def padding_total(self) -> int:
        """Fixed padding: the receptive field beyond one stride."""
        return (self.kernel_size - 1) * self.dilation - (self.stride - 1)

    def forward(self, x: Tensor) -> Tensor:
        total = self.padding_total
        extra = extra_padding(x.shape[-1], self.kernel_size, self.stride, total)
        if self.causal:
            x = pad1d(x, total, extra, self.pad_mode)
        else:
            right = total // 2  # odd totals put the extra sample on the left
            x = pad1d(x, total - right, right + extra, self.pad_mode)
        return self.conv(x)


class StreamableConvTranspose1d(nn.Module):
    """A transposed 1-d convolution that trims its fixed padding (on the right when causal)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, causal: bool = False,
                 norm: str = "none", trim_right_ratio: float = 1.0, norm_params: Mapping[str, Any] | None = None):
        super().__init__()
        if not 0.0 <= trim_right_ratio <= 1.0:
            raise ValueError("trim_right_ratio must lie in [0, 1]")
        if not causal and trim_right_ratio != 1.0:
            raise ValueError("trim_right_ratio != 1 only makes sense for causal convolutions")
        self.convtr = NormConvTranspose1d(in_channels, out_channels, kernel_size, stride, causal, norm, norm_params)
        self.kernel_size, self.stride = int(kernel_size), int(stride)
        self.causal = bool(causal)
        self.trim_right_ratio = float(trim_right_ratio)

    def forward(self, x: Tensor) -> Tensor:
        # Only the fixed padding is trimmed here; the right padding the encoder added for full
        # windows is cut by the caller, who knows the signal's length.
        total = self.kernel_size - self.stride
        y = self.convtr(x)
        if self.causal:
            right = math.ceil(total * self.trim_right_ratio)
        else:
            right = total // 2
        return unpad1d(y, total - right, right)


class SEANetLSTM(nn.Module):
    """A stack of LSTMs over time on ``[B, C, T]`` (no state kept between calls), with a skip connection."""

    def __init__(self, dimension: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = bool(skip)
        self.lstm = nn.LSTM(dimension, dimension, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)  # [T, B, C]: the LSTM's sequence-first layout
        y, _ = self.lstm(seq)
        if self.skip:
            y = y + seq
        return y.permute(1, 2, 0)


def _activation(name: str, params: Mapping[str, Any] | None) -> nn.Module:
    """``torch.nn.<name>(**params)`` (ELU with alpha 1 by default)."""
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"unknown activation {name!r}")
    return cls(**dict(params if params is not None else ({"alpha": 1.0} if name == "ELU" else {})))


class SEANetResnetBlock(nn.Module):
    """Residual unit: (activation, conv) pairs narrowing to ``dim // compress`` channels, plus a skip."""

    def __init__(self, dim: int, kernel_sizes: Sequence[int] = (3, 1), dilations: Sequence[int] = (1, 1),
                 activation: str = "ELU", activation_params: Mapping[str, Any] | None = None,
                 norm: str = "weight_norm", norm_params: Mapping[str, Any] | None = None, causal: bool = False,
                 pad_mode: str = "reflect", compress: int = 2, true_skip: bool = True):
        super().__init__()
        if len(kernel_sizes) != len(dilations):
            raise ValueError("one dilation per kernel size")
        hidden = dim // compress
        layers: list[nn.Module] = []
        last = len(kernel_sizes) - 1
        for i, (kernel, dilation) in enumerate(zip(kernel_sizes, dilations)):
            layers.append(_activation(activation, activation_params))
            layers.append(StreamableConv1d(dim if i == 0 else hidden, dim if i == last else hidden, kernel,
                                           dilation=dilation, causal=causal, norm=norm, norm_params=norm_params,
                                           pad_mode=pad_mode))
        self.block = nn.Sequential(*layers)
        self.shortcut: nn.Module = (nn.Identity() if true_skip else
                                    StreamableConv1d(dim, dim, 1, causal=causal, norm=norm, norm_params=norm_params,
                                                     pad_mode=pad_mode))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class SEANetEncoder(nn.Module):
    """Waveform ``[B, channels, T]`` -> latent frames ``[B, dimension, ceil(T / hop_length)]``.

    ``ratios`` are given in the decoder's (upsampling) order, as EnCodec does; the encoder
    downsamples by them in reverse. Channels double at every downsampling step.
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), activation: str = "ELU",
                 activation_params: Mapping[str, Any] | None = None, norm: str = "weight_norm",
                 norm_params: Mapping[str, Any] | None = None, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, causal: bool = False,
                 pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2, lstm: int = 2):
        super().__init__()
        self.channels, self.dimension, self.n_filters = int(channels), int(dimension), int(n_filters)
        self.ratios = list(reversed([int(r) for r in ratios]))
        self.n_residual_layers = int(n_residual_layers)
        self.hop_length = math.prod(self.ratios)
        self.causal = bool(causal)
        conv = dict(norm=norm, norm_params=norm_params, causal=causal, pad_mode=pad_mode)
        width = n_filters
        layers: list[nn.Module] = [StreamableConv1d(channels, width, kernel_size, **conv)]
        for ratio in self.ratios:
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(width, (residual_kernel_size, 1), (dilation_base ** j, 1),
                                                activation, activation_params, compress=compress,
                                                true_skip=true_skip, **conv))
            layers.append(_activation(activation, activation_params))
            layers.append(StreamableConv1d(width, 2 * width, 2 * ratio, stride=ratio, **conv))
            width *= 2
        if lstm:
            layers.append(SEANetLSTM(width, num_layers=lstm))
        layers.append(_activation(activation, activation_params))
        layers.append(StreamableConv1d(width, dimension, last_kernel_size, **conv))
        self.model = nn.Sequential(*layers)

    def frames(self, samples: int) -> int:
        """Latent frames for ``samples`` input samples."""
        return math.ceil(samples / self.hop_length)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latent frames ``[B, dimension, N]`` -> waveform ``[B, channels, N * hop_length]`` (mirror of the encoder)."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), activation: str = "ELU",
                 activation_params: Mapping[str, Any] | None = None, final_activation: str | None = None,
                 final_activation_params: Mapping[str, Any] | None = None, norm: str = "weight_norm",
                 norm_params: Mapping[str, Any] | None = None, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, causal: bool = False,
                 pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2, lstm: int = 2,
                 trim_right_ratio: float = 1.0):
        super().__init__()
        self.channels, self.dimension, self.n_filters = int(channels), int(dimension), int(n_filters)
        self.ratios = [int(r) for r in ratios]
        self.n_residual_layers = int(n_residual_layers)
        self.hop_length = math.prod(self.ratios)
        self.causal = bool(causal)
        conv = dict(norm=norm, norm_params=norm_params, causal=causal, pad_mode=pad_mode)
        width = n_filters * 2 ** len(self.ratios)
        layers: list[nn.Module] = [StreamableConv1d(dimension, width, kernel_size, **conv)]
        if lstm:
            layers.append(SEANetLSTM(width, num_layers=lstm))
        for ratio in self.ratios:
            layers.append(_activation(activation, activation_params))
            layers.append(StreamableConvTranspose1d(width, width // 2, 2 * ratio, stride=ratio, causal=causal,
                                                    norm=norm, trim_right_ratio=trim_right_ratio,
                                                    norm_params=norm_params))
            width //= 2
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(width, (residual_kernel_size, 1), (dilation_base ** j, 1),
                                                activation, activation_params, compress=compress,
                                                true_skip=true_skip, **conv))
        layers.append(_activation(activation, activation_params))
        layers.append(StreamableConv1d(n_filters, channels, last_kernel_size, **conv))
        if final_activation is not None:
            layers.append(_activation(final_activation, final_activation_params or {}))
        self.model = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.model(z)


# --------------------------------------------------------- weight-norm names
_NEW_WN = re.compile(r"^(|.*\.)parametrizations\.weight\.original([01])$")
_OLD_WN = re.compile(r"^(|.*\.)weight_([gv])$")


def encodec_weight_names(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Weight-norm keys renamed the way ``torch.nn.utils.weight_norm`` saves them (``weight_g`` / ``weight_v``)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = _NEW_WN.match(key)
        out[f"{m.group(1)}weight_{'g' if m.group(2) == '0' else 'v'}" if m else key] = value
    return out


def ncodec_weight_names(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Old-style ``weight_g`` / ``weight_v`` keys renamed to ``parametrizations.weight.original0`` / ``original1``."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = _OLD_WN.match(key)
        out[f"{m.group(1)}parametrizations.weight.original{'0' if m.group(2) == 'g' else '1'}" if m else key] = value
    return out
